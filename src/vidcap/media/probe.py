"""Reading a video's metadata with PyAV, and saying clearly why a file can't be read."""

from __future__ import annotations

import io
import re
from fractions import Fraction
from pathlib import Path

import av

from vidcap.data import VideoMetadata
from vidcap.errors import TRANSIENT_ERRNOS, SourceError
from vidcap.media.timeline import Timeline, scan


class VideoReadError(SourceError):
    """A source video that cannot be used; the message is the reason shown to users."""


def source_fingerprint(path: Path) -> dict[str, int]:
    """Size, mtime and inode: a source that differs from its marker's is processed again."""
    try:
        st = path.stat()
    except OSError:
        return {"size": -1, "mtime_ns": -1}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _machine_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def probe_video(path: Path) -> VideoMetadata:
    """Metadata of ``path``; raises VideoReadError with a readable reason."""
    return probe_source(path)[0]


def probe_source(path: Path) -> tuple[VideoMetadata, Timeline]:
    """Metadata of ``path`` and where each of its frames is; raises VideoReadError with a readable reason.

    The first frame is decoded too: a header that parses is not yet a video. Frames are counted by demuxing
    (``Timeline``), never taken from the header, which may be missing (a recording streamed to disk) or
    promise more than the file holds (a download cut short).
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
            header_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            header_s = container.duration / av.time_base
        else:
            header_s = 0.0
        header_frames = int(stream.frames or 0)
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
        bit_rate = int(stream.bit_rate or container.bit_rate or 0) or None
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    try:
        timeline = scan(path, float(rate))
    except (av.FFmpegError, OSError) as exc:
        if _machine_fault(exc):
            raise
        raise VideoReadError(f"video stream cannot be demuxed ({_short(exc)})") from exc
    if timeline.num_frames <= 0:
        raise VideoReadError("video stream has no frames")
    promised = header_frames or round(header_s * float(rate))
    ends_early = None
    if promised - timeline.num_frames > max(2, promised // 100):
        # Cut short: frames shown after a gap at the very end are frames whose neighbours never arrived.
        timeline = timeline.first(timeline.contiguous_head())
    frames = timeline.num_frames
    duration = float(timeline.times[-1] - timeline.times[0]) + (timeline.frame_duration or 1 / float(rate))
    if promised - frames > max(2, promised // 100):
        ends_early = f"source ends early at {duration:.2f} s: its header promises {promised} frames, {frames} are there"
    meta = VideoMetadata(
        width=width,
        height=height,
        fps=float(rate),
        num_frames=frames,
        duration_s=duration,
        video_codec=codec,
        pixel_format=pix_fmt,
        audio_codec=audio,
        size_bytes=size,
        fps_fraction=f"{rate.numerator}/{rate.denominator}",
        rotation=rotation,
        sample_aspect_ratio=f"{sar.numerator}/{sar.denominator}",
        ends_early=ends_early,
        bit_rate=bit_rate,
    )
    return meta, timeline


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # PyAV prefixes "[Errno N]" and appends the file name; the caller names the file already.
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text.split(": '")[0]


def clip_file_info(buffer: bytes) -> dict[str, object]:
    """What NeMo Curator records about a clip file it wrote: its own size, rate and codec (its frame count is
    the clip record's num_frames, counted when the clip was decoded)."""
    with av.open(io.BytesIO(buffer), mode="r") as container:
        stream = container.streams.video[0]
        rate = _rate(stream)
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "framerate": float(rate) if rate else None,
            "video_codec": stream.codec_context.name,
            "num_bytes": len(buffer),
        }
