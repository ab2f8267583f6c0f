"""Reading a video's metadata with PyAV, and saying clearly why a file can't be read."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av

from vidcap.data import VideoMetadata


class VideoReadError(Exception):
    """A source video that cannot be used; the message is the reason shown to users."""


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
        raise VideoReadError(f"cannot open file: {exc.strerror or exc}") from exc
    if size == 0:
        raise VideoReadError("empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
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
        frames = stream.frames or round(duration * float(rate))
        stream.thread_type = "AUTO"
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, OSError) as exc:
            raise VideoReadError(f"video stream cannot be decoded ({_short(exc)})") from exc
        if first is None:
            raise VideoReadError("video stream has no decodable frame")
        if frames <= 0:
            frames = 1
            duration = float(1 / rate)
        rotation = round(first.rotation) % 360 if first.rotation else 0
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoMetadata(
            width=width,
            height=height,
            fps=float(rate),
            num_frames=int(frames),
            duration_s=duration if duration > 0 else frames / float(rate),
            video_codec=stream.codec_context.name,
            pixel_format=stream.codec_context.pix_fmt or "",
            audio_codec=audio,
            size_bytes=size,
            fps_fraction=f"{rate.numerator}/{rate.denominator}",
            rotation=rotation,
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # PyAV prefixes "[Errno N]" and appends the file name; the caller names the file already.
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text.split(": '")[0]
