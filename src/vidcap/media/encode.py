"""Encoding: clips with the ffmpeg CLI, window mp4s in-process with PyAV, previews with libwebp."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcap.media.ffmpeg import run_ffmpeg
from vidcap.media.scratch import scratch_dir

# Square pixels at the display aspect ratio (a 720x480 source with 32:27 pixels becomes 852x480), and even
# sizes for yuv420p encoders (641x359 becomes 640x358). Previews and model frames then need no correction.
SQUARE_EVEN_FILTER = "scale=trunc(iw*sar/2)*2:trunc(ih/2)*2,setsar=1"


def transcode_clip(
    source: Path,
    start_frame: int,
    num_frames: int,
    fps_fraction: str,
    *,
    encoder: str = "libx264",
    threads: int = 0,
    with_audio: bool = True,
    keyframe_interval: int | None = None,
    preset: str | None = None,
    timeout: float | None = None,
) -> tuple[bytes, list[str]]:
    """H.264 mp4 of frames ``[start_frame, start_frame + num_frames)`` of ``source``, and
    ffmpeg's complaints about the source (empty when it decoded cleanly).

    Constant frame rate at the source rate, so frame ``i`` of the clip sits at
    ``i / fps``: later stages count frames and the model sees true times.
    """
    fps = Fraction(fps_fraction)
    # Half a frame early so float rounding never drops the first wanted frame.
    start_s = max(0.0, float((start_frame - Fraction(1, 2)) / fps))
    duration_s = float(num_frames / fps)
    with scratch_dir() as tmp:
        out = tmp / "clip.mp4"
        # Slice threads only for decoding: how frame threads conceal a damaged source can depend on their
        # timing, and a rerun must give the same clip.
        args = ["-threads", str(threads), "-thread_type", "slice", "-ss", f"{start_s:.6f}", "-i", str(source)]
        args += ["-map", "0:v:0"] + (["-map", "0:a:0?", "-c:a", "aac"] if with_audio else ["-an"])
        args += ["-vf", SQUARE_EVEN_FILTER, "-fps_mode", "cfr", "-r", fps_fraction, "-pix_fmt", "yuv420p"]
        args += ["-c:v", encoder, "-threads", str(threads)]
        if preset:
            args += ["-preset", preset]
        if keyframe_interval:
            args += ["-force_key_frames", f"expr:eq(mod(n,{keyframe_interval}),0)"]
        args += ["-frames:v", str(num_frames), "-t", f"{duration_s:.6f}"]
        args += ["-map_metadata", "-1", "-movflags", "+faststart", str(out)]
        problems = run_ffmpeg(args, timeout=timeout)
        return out.read_bytes(), problems


class Mp4Writer:
    """Frames in, H.264 mp4 bytes out, in memory; pts are renumbered from 0."""

    def __init__(self, fps: Fraction, width: int, height: int, *, preset: str = "veryfast", threads: int = 0):
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, "w", format="mp4")
        self._stream = self._out.add_stream("libx264", rate=fps)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.options = {"preset": preset, "crf": "23"}
        self._stream.codec_context.thread_count = threads
        self._time_base = Fraction(1, 1) / fps
        self._count = 0

    def add(self, frame: av.VideoFrame) -> None:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pts = self._count
        frame.time_base = self._time_base
        frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose keyframes
        self._out.mux(self._stream.encode(frame))
        self._count += 1

    def finish(self) -> bytes:
        self._out.mux(self._stream.encode(None))
        self._out.close()
        return self._buf.getvalue()


def remux_mp4(template: av.video.stream.VideoStream, packets: list[av.Packet]) -> bytes:
    """An mp4 of ``packets`` copied as they are (no re-encode), timestamps moved to start at 0.

    Only right when the first packet is a keyframe and nothing refers outside the run.
    """
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream_from_template(template)
        pts0 = min(p.pts for p in packets if p.pts is not None)
        for src in packets:
            packet = av.Packet(bytes(src))
            packet.pts = None if src.pts is None else src.pts - pts0
            packet.dts = None if src.dts is None else src.dts - pts0
            packet.duration = src.duration
            packet.is_keyframe = src.is_keyframe
            packet.time_base = src.time_base
            packet.stream = stream
            out.mux(packet)
    return buf.getvalue()


def webp_output(dst: Path, *, compression_level: int, quality: int) -> list[str]:
    """ffmpeg output arguments for an animated WebP with libwebp; compression level 0 means lossless."""
    return [
        "-c:v", "libwebp",
        "-lossless", "1" if compression_level == 0 else "0",
        "-compression_level", str(compression_level),
        "-q:v", str(quality),
        "-loop", "0",
        str(dst),
    ]  # fmt: skip


def webp_command(
    src: Path,
    dst: Path,
    *,
    target_fps: float,
    target_height: int,
    compression_level: int,
    quality: int,
    threads: int,
) -> list[str]:
    """ffmpeg arguments for an animated WebP of a video file: every frame decoded, one per 1/fps s kept."""
    return [
        "-threads", str(threads),
        "-i", str(src),
        "-an",
        "-vf", f"fps={target_fps},scale=-1:{target_height}",
        *webp_output(dst, compression_level=compression_level, quality=quality),
    ]  # fmt: skip


def encode_webp(
    mp4_bytes: bytes,
    *,
    target_fps: float,
    target_height: int,
    compression_level: int,
    quality: int,
    threads: int,
    timeout: float | None = None,
) -> bytes:
    """Animated WebP preview of an mp4; raises FFmpegError (with the command) on failure."""
    with scratch_dir() as tmp:
        src, dst = tmp / "window.mp4", tmp / "preview.webp"
        src.write_bytes(mp4_bytes)
        command = webp_command(
            src,
            dst,
            target_fps=target_fps,
            target_height=target_height,
            compression_level=compression_level,
            quality=quality,
            threads=threads,
        )
        run_ffmpeg(command, timeout=timeout)
        return dst.read_bytes()


def encode_webp_frames(
    frames: np.ndarray,
    *,
    fps: float,
    compression_level: int,
    quality: int,
    threads: int,
    timeout: float | None = None,
) -> bytes:
    """Animated WebP of frames already picked and scaled ((n, h, w, 3) RGB) by ffmpeg's libwebp, fed raw on
    stdin: nothing to decode. Raises FFmpegError (with the command) on failure."""
    _, height, width, _ = frames.shape
    with scratch_dir() as tmp:
        dst = tmp / "preview.webp"
        command = [
            "-threads", str(threads),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", f"{fps:g}",
            "-i", "-",
            *webp_output(dst, compression_level=compression_level, quality=quality),
        ]  # fmt: skip
        run_ffmpeg(command, timeout=timeout, stdin=np.ascontiguousarray(frames).tobytes())
        return dst.read_bytes()
