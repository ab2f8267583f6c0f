"""Test videos, made on the spot with ffmpeg or PyAV."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Frame i of an index video is flat grey at this level, so a decoded frame tells its index.
INDEX_PERIOD = 50
INDEX_STEP = 4


def index_level(i: int) -> int:
    return 16 + (i % INDEX_PERIOD) * INDEX_STEP


def level_to_index_mod(level: float) -> int:
    return round((level - 16) / INDEX_STEP) % INDEX_PERIOD


def make_video(
    path: Path,
    *,
    seconds: float,
    width: int = 320,
    height: int = 180,
    fps: float | str = 30,
    audio: bool = False,
    extra: list[str] | None = None,
) -> Path:
    """A moving test pattern (and a tone) encoded with libx264 by the ffmpeg CLI."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *(extra or []), str(path)]
    subprocess.run(cmd, check=True)
    return path


def make_index_video(path: Path, *, frames: int, fps: int = 30, width: int = 64, height: int = 48) -> Path:
    """Flat grey frames whose level encodes the frame index (lossless H.264)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(frames):
            img = np.full((height, width, 3), index_level(i), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def count_decoded_frames(data: bytes | Path) -> int:
    import io

    src = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(src) as c:
        return sum(1 for _ in c.decode(video=0))


def set_rotation(path: Path, degrees: int) -> Path:
    """Write a display rotation into the mp4's track header, as a phone does."""
    import struct

    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd") - 4
    offset = box + (48 if data[box + 8] == 0 else 60)  # the matrix, after the version-dependent fields
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    matrix = [cos << 16, sin << 16, 0, -sin << 16, cos << 16, 0, 0, 0, 1 << 30]
    data[offset : offset + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
    return path


def damage(path: Path, start_fraction: float, length: int, seed: int = 1) -> Path:
    """Overwrite ``length`` bytes from ``start_fraction`` of the file with noise."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    start = int(len(data) * start_fraction)
    data[start : start + length] = rng.integers(0, 256, min(length, len(data) - start), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path
