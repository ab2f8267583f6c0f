"""ClipSplittingStage: cut each video into clips (fixed stride, scene cuts, or not at all)."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from vidcap.data import Clip, Video, record_error
from vidcap.errors import SettingError, SourceError
from vidcap.frames import FrameSpec, WidthSize
from vidcap.media.decode import decode_frames
from vidcap.params import param
from vidcap.stages.base import Stage
from vidcap.windowing import clip_uuid, filter_spans, fixed_stride_spans, whole_video_span

logger = logging.getLogger(__name__)

ALGORITHMS = ("fixed_stride", "scene", "none")
# What PySceneDetect's content detector looks at: every frame, about 256 pixels wide (its own default).
SCENE_FRAMES = FrameSpec("all", 0.0, WidthSize(256))
# One week: longer clips or strides are typing slips, not settings.
MAX_SECONDS = 7 * 24 * 3600.0


def detect_scene_spans(
    path: str, num_frames: int, fps: float, threshold: float, min_scene_len: int
) -> list[tuple[int, int]]:
    """Scene frame ranges ``[start, stop)`` from PySceneDetect's content detector.

    The frames are decoded here, in order, and numbered by that order: PySceneDetect's own readers number
    frames by their time, which is off for a variable-rate source or a clock that restarts.
    """
    from scenedetect import ContentDetector, FrameTimecode

    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
    rate = Fraction(fps).limit_denominator(1001)
    cuts: list[int] = []
    last = None
    # PySceneDetect's own default: about 256 pixels wide is enough to see a cut.
    for index, frame in enumerate(decode_frames(path, SCENE_FRAMES, pixel_format="bgr24")):
        last = FrameTimecode(index, rate)
        cuts += [c.frame_num for c in detector.process_frame(last, frame)]
    if last is not None:
        cuts += [c.frame_num for c in detector.post_process(last)]
    bounds = [0, *sorted({c for c in cuts if 0 < c < num_frames}), num_frames]
    return list(itertools.pairwise(bounds))


SPLIT = "Splitting and transcoding"


def limit_clips_param() -> Any:
    """``--limit-clips``, for every splitter: one field definition, one flag."""
    return param(0, flag="--limit-clips", low=0, high=10**9, integer=True, panel=SPLIT,
                 help="At most N clips per video (its first N); 0: no limit.")  # fmt: skip


@dataclass
class ClipSplittingStage(Stage):
    """Clips of a video: every ``clip_stride_s`` seconds for ``clip_len_s`` (fixed_stride), at PySceneDetect's
    content cuts (scene), or the whole video (none). TransNetV2 cuts are TransNetV2ClipExtractionStage."""

    algorithm: str = param("fixed_stride", choices=ALGORITHMS, help="How videos are cut into clips.")
    clip_len_s: float = param(
        10.0,
        flag="--fixed-stride-split-duration",
        low=1e-3,
        high=MAX_SECONDS,
        panel=SPLIT,
        help="Clip length and stride in seconds (fixed_stride).",
    )
    clip_stride_s: float = param(
        10.0,
        flag="--fixed-stride-split-duration",
        low=1e-3,
        high=MAX_SECONDS,
        panel=SPLIT,
        help="Clip length and stride in seconds (fixed_stride).",
    )
    min_clip_length_s: float = param(
        2.0,
        flag="--fixed-stride-min-clip-length",
        low=0.0,
        high=MAX_SECONDS,
        panel=SPLIT,
        help="Drop clips shorter than this many seconds.",
    )
    # Content-detector threshold for algorithm="scene" (PySceneDetect's default).
    scene_threshold: float = param(
        27.0,
        flag="--scene-threshold",
        low=1e-3,
        high=255,
        panel=SPLIT,
        help="Content-detector threshold for --splitting-algorithm scene.",
    )
    limit_clips: int = limit_clips_param()
    name: ClassVar[str] = "clip_splitting"
    reads: ClassVar[frozenset[str]] = frozenset({"video.source"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.algorithm == "fixed_stride" and self.clip_len_s < self.min_clip_length_s:
            raise SettingError(
                "clip_len_s",
                f"{{clip_len_s}} {self.clip_len_s:g} s is shorter than {{min_clip_length_s}} "
                f"{self.min_clip_length_s:g} s, so no clip could ever be kept: lengthen the one or shorten the other",
                also=("min_clip_length_s",),
            )

    def spans(self, video: Video) -> list[tuple[int, int]]:
        meta = video.metadata
        assert meta is not None
        if self.algorithm == "fixed_stride":
            return fixed_stride_spans(
                meta.num_frames, meta.fps, self.clip_len_s, self.clip_stride_s, self.min_clip_length_s
            )
        if self.algorithm == "scene":
            min_len = max(1, round(self.min_clip_length_s * meta.fps))
            found = detect_scene_spans(str(video.path), meta.num_frames, meta.fps, self.scene_threshold, min_len)
            return filter_spans(found or whole_video_span(meta.num_frames), meta.fps, self.min_clip_length_s)
        return whole_video_span(meta.num_frames)

    def process(self, video: Video) -> Video:
        if video.metadata is None:
            return video
        fps = video.metadata.fps
        source = video.source  # names that are not UTF-8 still give valid ids and JSON
        timeline = video.timeline
        video.clips = [
            Clip(
                uuid=clip_uuid(source, start, stop),
                source_video=source,
                start_frame=start,
                stop_frame=stop,
                fps=fps,
                # True seconds from the first frame (a variable-rate source drifts from index / fps).
                span=timeline.span_seconds(start, stop) if timeline is not None else (start / fps, stop / fps),
            )
            for start, stop in self.spans(video)[: self.limit_clips or None]
        ]
        if video.clips and video.metadata.ends_early:
            # The clips are made of what is there; the last one is where the file stops short.
            record_error(video.clips[-1], "source", video.metadata.ends_early, retry=False)
        if not video.clips:
            # Raised as the source's fault, so the summary says why this video gave nothing.
            raise SourceError(
                f"no clip of at least {self.min_clip_length_s:g} s in a {video.metadata.duration_s:.2f} s video "
                f"({video.metadata.num_frames} frames)"
            )
        return video
