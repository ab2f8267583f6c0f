"""CaptionPreparationStage: windows per clip, the frames the model sees, model-ready inputs, window mp4s."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from vidcap.data import Clip, Video, Window, record_error
from vidcap.errors import describe, is_retryable
from vidcap.media.decode import WindowPlan, decode_windows
from vidcap.models.inputs import frame_size, input_format
from vidcap.models.prompts import CAPTION_PROMPTS, pick
from vidcap.models.registry import caption_model
from vidcap.stages.base import Resources, Stage, require_range
from vidcap.windowing import (
    MIN_WINDOW_FRAMES,
    compute_windows,
    preview_frame_indices,
    preview_size,
    sample_frame_indices,
)

logger = logging.getLogger(__name__)

# Frames per window: beyond this a window is minutes of video, more than any model takes in.
MAX_WINDOW = 100_000


@dataclass
class CaptionPreparationStage(Stage):
    model_variant: str = "qwen2.5"
    prompt_variant: str = "default"
    prompt_text: str | None = None
    sampling_fps: float = 2.0
    window_size: int = 256
    remainder_threshold: int = 128
    keep_mp4: bool = False
    verbose: bool = False
    # Decode the sampled frames and build llm_input; off when only windows (and previews) are wanted.
    sample_frames: bool = True
    num_cpus_per_worker: float = 2.0
    # Frames per second and height of the preview frames to take in the same decode (set by a PreviewStage
    # downstream, through bind; None: no preview frames).
    preview: tuple[float, int] | None = field(default=None, init=False)
    name: ClassVar[str] = "caption_preparation"
    reads: ClassVar[frozenset[str]] = frozenset({"clip.buffer"})

    def __post_init__(self) -> None:
        require_range("window_size", self.window_size, MIN_WINDOW_FRAMES, MAX_WINDOW, integer=True)
        require_range("remainder_threshold", self.remainder_threshold, 0, MAX_WINDOW, integer=True)
        require_range("sampling_fps", self.sampling_fps, 1e-3, 1000)
        require_range("num_cpus_per_worker", self.num_cpus_per_worker, 0.01, 1024)
        self.spec = caption_model(self.model_variant)
        self.instruction = self.prompt_text or pick(CAPTION_PROMPTS, self.prompt_variant, "captioning")
        # No weights needed here: frames are sized by the registry's pixel budget; the chat
        # template is applied by CaptionGenerationStage, which loads the model's processor.
        self.format = input_format(self.spec)

    def settings(self) -> dict[str, Any]:
        """Without model frames, the model and its prompt shape nothing here: a changed --captioning-algorithm in a
        run without captions must not redo finished videos."""
        out = super().settings()
        if not self.sample_frames:
            for name in ("model_variant", "prompt_variant", "prompt_text", "sampling_fps"):
                out.pop(name, None)
        return out

    @property
    def preview_height(self) -> int | None:
        return self.preview[1] if self.preview else None

    @property
    def resources(self) -> Resources:
        return Resources(cpus=self.num_cpus_per_worker)

    def process(self, video: Video) -> Video:
        for clip in video.clips:
            if clip.buffer is None:
                continue
            try:
                self._prepare_clip(video, clip)
            except Exception as exc:  # one clip's bad buffer must not cost the video's other clips
                logger.error("%s: clip %s: cannot prepare windows: %s", video.path, clip.uuid, describe(exc))
                record_error(clip, self.name, describe(exc), retry=is_retryable(exc))
                clip.windows = []
        return video

    def _prepare_clip(self, video: Video, clip: Clip) -> None:
        total = clip.decoded_frames if clip.decoded_frames is not None else clip.num_frames
        spans = compute_windows(total, self.window_size, self.remainder_threshold)
        if not spans:
            logger.info("%s: clip %s has %d frames, too few for a window", video.path, clip.uuid, total)
            return
        clip.windows = [
            Window(start_frame=s, end_frame=e, frame_indices=sample_frame_indices(s, e, clip.fps, self.sampling_fps))
            for s, e in spans
        ]
        if not (self.sample_frames or self.keep_mp4 or self.preview):
            return
        plans = [
            WindowPlan(
                w.start_frame,
                w.end_frame,
                w.frame_indices if self.sample_frames else [],
                preview_frame_indices(w.start_frame, w.end_frame, clip.fps, self.preview[0]) if self.preview else [],
            )
            for w in clip.windows
        ]
        most = max(len(w.frame_indices) for w in clip.windows)

        def sizer(width: int, height: int) -> tuple[int, int]:
            return frame_size(self.spec.budget, width, height, most)

        fps = Fraction(video.metadata.fps_fraction) if video.metadata else Fraction(clip.fps)
        assert clip.buffer is not None
        results, decoded = decode_windows(
            clip.buffer,
            plans,
            fps=fps,
            keep_mp4=self.keep_mp4,
            sizer=sizer if self.sample_frames else None,
            preview_size=(lambda w, h: preview_size(w, h, height)) if (height := self.preview_height) else None,
        )
        for window, res in zip(clip.windows, results, strict=True):
            if res.error is not None:
                # The clip was decoded cleanly once when it was made: a window it cannot fill is the source's.
                record_error(window, self.name, res.error, retry=False)
                window.caption_status = "error"
                window.caption_error = res.error
                continue
            window.frames = res.frames
            window.mp4_bytes = res.mp4_bytes
            window.preview_frames = res.preview_frames
            window.preview_repeats = res.preview_repeats
            if self.sample_frames and res.frames is not None:
                window.llm_input = self.format.build(
                    self.instruction,
                    res.frames,
                    [i - window.start_frame for i in window.frame_indices],
                    clip.fps,
                    window.num_frames,
                )
        if self.verbose:
            logger.info("%s: clip %s: %d frames decoded, %d windows", video.path, clip.uuid, decoded, len(clip.windows))
