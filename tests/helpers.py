"""Test videos, made on the spot with ffmpeg or PyAV."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq

from vidcap import paths

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
    path.parent.mkdir(parents=True, exist_ok=True)
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


# -- sources that carry their frame number in their pixels --------------------------------------------------

NUMBER_BITS = 12  # up to 4095 frames


def numbered_frame(i: int, width: int, height: int, background: tuple[int, int, int] = (60, 90, 140)) -> np.ndarray:
    """A frame showing ``i`` as 12 black/white blocks in a strip along its top; below it a flat background
    (so a scene detector sees shots, not the counting)."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background
    strip = max(8, height // 6)
    for bit in range(NUMBER_BITS):
        x0, x1 = bit * width // NUMBER_BITS, (bit + 1) * width // NUMBER_BITS
        img[:strip, x0:x1] = 235 if (i >> bit) & 1 else 16
    return img


def read_number(img: np.ndarray) -> int:
    """The frame number drawn by ``numbered_frame``, from any scaled copy of the frame (RGB or grey)."""
    height, width = img.shape[:2]
    y = max(1, height // 12)  # the middle of the strip
    n = 0
    for bit in range(NUMBER_BITS):
        x = int((bit + 0.5) * width / NUMBER_BITS)
        if float(np.mean(img[y, x])) > 128:
            n |= 1 << bit
    return n


def make_numbered_video(
    path: Path,
    *,
    frames: int,
    fps: float | str | Fraction,
    width: int = 128,
    height: int = 96,
    times: list[float] | None = None,
    shots: list[int] | None = None,
    audio: bool = False,
    first: int = 0,
) -> Path:
    """A video whose frame i shows the number i (see ``numbered_frame``), encoded by PyAV: H.264 with B-frames
    (mp4, mkv, mov, ts) or VP9 (webm). ``times``: each frame's time in seconds (a variable-rate source).
    ``shots``: the first frame of each new shot; every shot has its own background. ``audio``: a tone.
    ``first``: the number the first frame shows."""
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    path.parent.mkdir(parents=True, exist_ok=True)
    webm = path.suffix == ".webm"
    fmt = {".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts"}.get(path.suffix.lower())
    colours = [(60, 90, 140), (200, 80, 40), (40, 160, 70), (150, 60, 170), (220, 200, 60), (30, 30, 30)]
    cuts = sorted(shots or [])
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libvpx-vp9" if webm else "libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        time_base = Fraction(1, 90000) if times is not None else 1 / rate
        stream.time_base = time_base
        if times is not None:
            stream.codec_context.time_base = time_base  # the encoder's clock must resolve each frame's time
        if webm:
            stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0"}
        else:
            # B-frames where the rate is constant; x264 cannot order them by irregular times.
            stream.codec_context.options = {"preset": "fast", "crf": "18", **({"bf": "0"} if times else {})}
        tone = _Tone(out, "libopus" if webm else "aac") if audio else None
        for i in range(frames):
            shot = sum(1 for c in cuts if c <= i)
            img = numbered_frame(first + i, width, height, colours[shot % len(colours)])
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i if times is None else round(times[i] / time_base)
            frame.time_base = time_base
            out.mux(stream.encode(frame))
            if tone is not None:  # interleaved, as a camera writes it
                tone.until(float(frame.pts * time_base) + 1 / float(rate))
        out.mux(stream.encode(None))
        if tone is not None:
            tone.close()
    return path


class _Tone:
    """A 440 Hz tone, encoded as the video goes."""

    def __init__(self, out: av.container.OutputContainer, codec: str, rate: int = 48000) -> None:
        self.out, self.rate, self.t = out, rate, 0
        self.stream = out.add_stream(codec, rate=rate)
        self.stream.layout = "mono"

    def until(self, seconds: float) -> None:
        chunk = 960
        while self.t + chunk <= seconds * self.rate:
            samples = np.sin(2 * np.pi * 440 * (self.t + np.arange(chunk)) / self.rate).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = self.rate, self.t, Fraction(1, self.rate)
            self.out.mux(self.stream.encode(frame))
            self.t += chunk

    def close(self) -> None:
        self.out.mux(self.stream.encode(None))


def frame_numbers(data: bytes | Path) -> list[int]:
    """The number each decoded frame of a video shows, in order."""
    import io

    src = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(src) as c:
        return [read_number(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def webp_numbers(path: Path) -> list[int]:
    """The number each frame of an animated WebP shows, in order."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return [read_number(np.asarray(f.convert("RGB"))) for f in ImageSequence.Iterator(im)]


def read_marker(path: Path) -> dict:
    """vidcap's own fields of a processed_videos JSON (NeMo Curator's fields sit on top, vidcap's under "vidcap")."""
    data = json.loads(Path(path).read_text())
    assert isinstance(data.get("vidcap"), dict), f"{path} holds no vidcap marker: {sorted(data)}"
    return data["vidcap"]


def read_meta(path: Path, out: Path) -> dict:
    """A clip's meta with what names its own run (clip_location, the clip file's size) checked against ``out``
    and left out, so that runs into different OUTPUTs compare equal (see ``comparable``)."""
    return comparable(out, json.loads(Path(path).read_text()))


def comparable(out: Path, data: dict, given: str | None = None) -> dict:
    """A JSON output of a run, with what names the run's own OUTPUT checked and left out, so that runs into
    different OUTPUTs (or a rerun) compare equal: a meta's clip_location; a marker's timings, fingerprint and
    the sizes of its metas (they hold clip_location). A marker's own fields come up as ``vidcap.<name>``.
    ``given``: OUTPUT as the run was given it, when ``out`` is a copy (of a bucket's prefix)."""
    if "clip_location" in data:
        assert data.pop("clip_location") == f"{given or out}/{data['clip_path']}"
    if data.get("clip_path") and "num_bytes" in data:
        # The clip file's own size, checked here: x264 with 2+ threads may spend a few bytes differently from
        # run to run under load (same frames), so sizes are not compared across runs.
        assert data.pop("num_bytes") == (out / data["clip_path"]).stat().st_size
    data.update({f"vidcap.{k}": v for k, v in data.pop("vidcap", {}).items()})
    for key in ("timings_s", "fingerprint", "vidcap.timings_s", "vidcap.fingerprint"):
        data.pop(key, None)
    if "vidcap.outputs" in data:
        data["vidcap.outputs"] = {k: None if k.startswith("metas/") else n for k, n in data["vidcap.outputs"].items()}
    return data


def snapshot(out: Path, given: str | None = None) -> dict[str, Any]:
    """Everything in OUTPUT, with run-specific fields (timings, this run's counters, source mtimes) left out.
    ``given`` as for ``comparable``."""
    files: dict[str, Any] = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.name == paths.LOCK_FILE:
            continue
        rel = path.relative_to(out).as_posix()
        if path.suffix == ".json":
            data = comparable(out, json.loads(path.read_text()), given)
            if rel == paths.SUMMARY_JSON:
                data["videos"].pop("processed_this_run")
                data["videos"].pop("skipped_already_done")
                data.pop("videos_per_stage_this_run")
                data.pop("engines")  # this run's model calls
                data["settings"].pop("clip_writer")  # these two name this run's OUTPUT
                data["settings"].pop("video_reader")
            files[rel] = data
        elif path.suffix == ".parquet":
            files[rel] = pq.read_table(path).to_pylist()
        else:
            files[rel] = path.read_bytes()
    return files
