"""Reading a video's metadata with PyAV, and saying clearly why a file can't be read."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av

from vidcap.data import VideoMetadata
from vidcap.errors import TRANSIENT_ERRNOS, SourceError


class VideoReadError(SourceError):
    """A source video that cannot be used; the message is the reason shown to users."""


def _machine_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def count_packets(path: Path) -> int:
    """Frames of the first video stream, counted by demuxing (no decoding): for containers whose header
    holds no frame count or duration (a WebM or MKV recorded as a stream)."""
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size > 0)


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def probe_video(path: Path) -> VideoMetadata:
    """Metadata of ``path``; raises VideoReadError with a readable reason.

    The first frame is decoded too: a header that parses is not yet a video.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        if _machine_fault(exc):
            raise
        raise VideoReadError(f"cannot open file: {exc.strerror or exc}") from exc
    if size == 0:
        raise VideoReadError("empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        if _machine_fault(exc):
            raise
        raise VideoReadError(f"not a readable video container ({_short(exc)})") from exc
    with container:
        if not container.streams.video:
            if container.streams.audio:
                raise VideoReadError("no video stream (audio only)")
            raise VideoReadError("no streams found (the container is truncated or damaged)")
        stream = container.streams.video[0]
        rate = _rate(stream)
        if rate is None:
            raise VideoReadError("video stream has no frame rate")
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = stream.frames
        stream.thread_type = "AUTO"
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, OSError) as exc:
            if _machine_fault(exc):
                raise
            raise VideoReadError(f"video stream cannot be decoded ({_short(exc)})") from exc
        if first is None:
            raise VideoReadError("video stream has no decodable frame")
        rotation = round(first.rotation) % 360 if first.rotation else 0
        sar = Fraction(stream.sample_aspect_ratio or 1) or Fraction(1)
        # The display size: non-square pixels widened (as the clips are), then turned upright.
        width, height = round(first.width * sar), first.height
        if rotation in (90, 270):
            width, height = height, width
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt or ""
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    if not frames:
        # No index (mkv, webm, a recording streamed to disk): count the frames rather than trust a
        # missing or estimated duration.
        try:
            frames = count_packets(path)
        except (av.FFmpegError, OSError) as exc:
            if _machine_fault(exc):
                raise
            frames = round(duration * float(rate))
    if frames <= 0:
        raise VideoReadError("video stream has no frames")
    if duration <= 0:
        duration = frames / float(rate)
    return VideoMetadata(
        width=width,
        height=height,
        fps=float(rate),
        num_frames=int(frames),
        duration_s=duration,
        video_codec=codec,
        pixel_format=pix_fmt,
        audio_codec=audio,
        size_bytes=size,
        fps_fraction=f"{rate.numerator}/{rate.denominator}",
        rotation=rotation,
        sample_aspect_ratio=f"{sar.numerator}/{sar.denominator}",
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # PyAV prefixes "[Errno N]" and appends the file name; the caller names the file already.
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text.split(": '")[0]
