"""The data that flows between stages.

Video -> Clip -> Window, each with its own ``errors`` so that a failure is kept
where it happened and everything else goes on. A task is a ``Video`` with some
of its clips: after splitting, a long video travels as several tasks (``part``
of ``parts``), and the run gathers them again before the video's marker is
written. Payloads (clip bytes, window mp4s, frames, model inputs, WebP bytes)
are dropped once the last stage that reads them is done with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidcap.frames import FrameSet

if TYPE_CHECKING:
    from vidcap.media.timeline import Timeline

# Keys of Window.caption and Window.enhanced_caption; each becomes a manifest column.
CAPTION_FAMILIES = ("qwen", "nemotron")
ENHANCEMENT_ALGORITHMS = ("qwen_lm",)


@dataclass
class VideoMetadata:
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    video_codec: str
    pixel_format: str
    audio_codec: str | None
    size_bytes: int
    # Exact frame rate as "num/den" so encoders keep e.g. 30000/1001 exactly.
    fps_fraction: str = ""
    # Degrees from the display matrix; decoders hand out unrotated frames.
    rotation: int = 0
    # Pixel shape ("num/den"); width above is the display width (stored width x this ratio).
    sample_aspect_ratio: str = "1/1"
    # Set when the file holds fewer frames than its header promises (a download cut short).
    ends_early: str | None = None
    # Bits per second of the video stream (or the file), when the container says.
    bit_rate: int | None = None

    def __post_init__(self) -> None:
        if not self.fps_fraction:
            rate = Fraction(self.fps).limit_denominator(1001)
            self.fps_fraction = f"{rate.numerator}/{rate.denominator}"


@dataclass
class Window:
    """A run of native clip frames captioned as one unit (``end_frame`` inclusive)."""

    start_frame: int
    end_frame: int
    # Clip-relative indices of the frames a captioning model sees (sampled at the preparation's sampling_fps).
    frame_indices: list[int] = field(default_factory=list)
    # Frames each later stage declared it needs (its ``frames``), by name: one decode of the clip fills them.
    frames: dict[str, FrameSet] = field(default_factory=dict)
    mp4_bytes: bytes | None = None
    # The model-ready input, built by the generation stage from frames["caption"] just before the model call.
    llm_input: Any = None
    caption: dict[str, str] = field(default_factory=dict)
    enhanced_caption: dict[str, str] = field(default_factory=dict)
    webp_bytes: bytes | None = None
    caption_status: str = "skipped"  # ok | truncated | error | skipped
    caption_error: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    # Empty, or one phrase over and over: kept, but flagged for review.
    caption_degenerate: bool = False
    # What a reviewer should know about how the caption was made (e.g. the server chose the frame times).
    notes: list[str] = field(default_factory=list)
    # The model variant that wrote caption[family] (NeMo Curator 1.4 keys captions by it: "qwen2.5_caption").
    caption_variant: str | None = None
    # The enhanced caption's own status and token counts, as for the caption.
    enhancement_status: str = "skipped"  # ok | truncated | error | skipped
    enhancement_error: str | None = None
    enhancement_prompt_tokens: int | None = None
    enhancement_output_tokens: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    # Keys of ``errors`` that a rerun may fix (see vidcap.errors.is_retryable).
    retry_errors: set[str] = field(default_factory=set)
    # Where the writer put this window's preview (relative to OUTPUT).
    preview_location: str | None = None

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    @property
    def payload_bytes(self) -> int:
        frames = sum(f.nbytes for f in self.frames.values())
        model = getattr(self.llm_input, "frames", None)
        shared = any(model is f.frames for f in self.frames.values())
        model_bytes = model.nbytes if model is not None and not shared else 0
        return frames + model_bytes + len(self.mp4_bytes or b"") + len(self.webp_bytes or b"")


@dataclass
class Clip:
    """A span of the source video; ``stop_frame`` is exclusive, like ``range``."""

    uuid: str
    source_video: str
    start_frame: int
    stop_frame: int
    fps: float
    span: tuple[float, float]
    buffer: bytes | None = None
    windows: list[Window] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    retry_errors: set[str] = field(default_factory=set)
    # Frames actually found in ``buffer`` (set when it is decoded or probed).
    decoded_frames: int | None = None
    # Where the writer put the clip (relative to OUTPUT).
    location: str | None = None
    # Scores stages gave the clip (e.g. motion's global_mean, per_patch_min_256), kept in its record.
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    # Why a filter took the clip out (stage -> reason); such a clip is in Video.filtered_clips.
    filtered: dict[str, str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.stop_frame - self.start_frame

    def window_times(self, window: Window) -> tuple[float, float]:
        """Source-video seconds covered by a window of this clip."""
        start = self.span[0] + window.start_frame / self.fps
        return start, self.span[0] + (window.end_frame + 1) / self.fps


@dataclass
class Video:
    # The file stages read: the source itself, or this task's copy of a source in object storage (``url``).
    path: Path
    relative_path: str
    metadata: VideoMetadata | None = None
    # Where each source frame is (times, packets), from the probe: clips are cut by it, frame for frame.
    timeline: Timeline | None = None
    # The source's size and mtime when it was probed: a file replaced during the run is redone.
    fingerprint: dict[str, Any] | None = None
    clips: list[Clip] = field(default_factory=list)
    # Clips a filter took out, with the reason on each (written to filtered_clips/, never captioned).
    filtered_clips: list[Clip] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    retry_errors: set[str] = field(default_factory=set)
    # Seconds spent per stage on this video, filled by the run loop.
    timings: dict[str, float] = field(default_factory=dict)
    # This task is part ``part`` of ``parts`` of its video (a video is one task until it is split).
    part: int = 0
    parts: int = 1
    # How many tasks the video travelled as (NeMo Curator's clip chunks), set when they are gathered again.
    chunks: int = 1
    # Files written for it (relative path -> bytes), by the writer.
    outputs: dict[str, int] = field(default_factory=dict)
    # Model calls made on behalf of the batch this task was in: (stage, requests, seconds, backend) each.
    model_calls: list[tuple[str, int, float, str]] = field(default_factory=list)
    # The source's URL when INPUT is object storage (``s3://bucket/videos/a.mp4``).
    url: str | None = None

    @property
    def source(self) -> str:
        """The source as the user names it (in logs, markers, records): its URL, or its path as valid text."""
        from vidcap.paths import display_text

        return self.url or display_text(str(self.path))

    @property
    def payload_bytes(self) -> int:
        """Bytes of media this task carries (what the queues between stages are bounded by)."""
        clips = [*self.clips, *self.filtered_clips]
        return sum(len(c.buffer or b"") + sum(w.payload_bytes for w in c.windows) for c in clips)

    def filter_clip(self, clip: Clip, stage: str, reason: str) -> None:
        """Take ``clip`` out of the stages that follow, with the reason: it is written to filtered_clips/."""
        clip.filtered[stage] = reason
        self.clips.remove(clip)
        self.filtered_clips.append(clip)

    def all_errors(self) -> list[dict[str, Any]]:
        """Every error of the video, its clips and windows, flattened for reports; ``retry`` says whether
        a rerun may fix it."""
        out = _errors(self, {})
        for clip in [*self.clips, *self.filtered_clips]:
            out += _errors(clip, {"clip": clip.uuid})
            for w in clip.windows:
                out += _errors(w, {"clip": clip.uuid, "window": f"{w.start_frame}_{w.end_frame}"})
        return out


def _errors(item: Video | Clip | Window, where: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "reason": reason, **where, "retry": stage in item.retry_errors}
        for stage, reason in item.errors.items()
    ]


def record_error(item: Video | Clip | Window, key: str, reason: str, *, retry: bool) -> None:
    """Put an error on the video, clip or window it belongs to, with whether a rerun may fix it (secrets an
    error message may quote are blanked out first: errors reach the log, metas and summary.json)."""
    from vidcap.errors import redact

    item.errors[key] = redact(reason)
    if retry:
        item.retry_errors.add(key)
    else:
        item.retry_errors.discard(key)
