"""CaptionPreparationStage: the window step. Cuts each clip into windows and decodes it once for every frame
need that later stages declared (previews, captions, ...); model-agnostic."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import ClassVar

from vidcap.data import Clip, Video, Window, record_error
from vidcap.errors import ConfigError, describe, is_retryable
from vidcap.frames import FrameSpec
from vidcap.media.decode import Need, WindowPlan, decode_windows
from vidcap.models.prompts import CAPTION_PROMPTS
from vidcap.models.registry import CAPTION_ALIASES, CAPTION_MODELS, caption_variant
from vidcap.params import param
from vidcap.stages.base import Resources, Stage
from vidcap.windowing import MIN_WINDOW_FRAMES, compute_windows, sample_frame_indices

logger = logging.getLogger(__name__)

# Frames per window: beyond this a window is minutes of video, more than any model takes in.
MAX_WINDOW = 100_000
CAPTIONS = "Captions"


def _sized(spec: FrameSpec, count: int, width: int, height: int) -> tuple[int, int]:
    return spec.size(width, height, count)


@dataclass
class CaptionPreparationStage(Stage):
    """Windows of ``window_size`` native frames per clip (NeMo Curator's rule), and the frames each later stage
    asked for (its ``frames``), from one forward decode of the clip.

    ``model_variant``, ``prompt_variant``, ``prompt_text`` are NeMo Curator's place for them: a
    CaptionGenerationStage that leaves its own unset takes them from here. ``sampling_fps`` gives every window's
    sampled frame indices in its record.
    """

    model_variant: str | None = param(
        None, choices=lambda: [*CAPTION_MODELS, *CAPTION_ALIASES], help="Captioning model (NeMo Curator's place)."
    )
    prompt_variant: str | None = param(
        None, choices=lambda: [*CAPTION_PROMPTS], help="Captioning prompt (NeMo Curator's place)."
    )
    prompt_text: str | None = param(None, help="Your own captioning prompt (NeMo Curator's place).")
    sampling_fps: float = param(2.0, low=1e-3, high=1000, help="Frames per second a captioning model is given.")
    window_size: int = param(
        256,
        flag="--captioning-window-size",
        low=MIN_WINDOW_FRAMES,
        high=MAX_WINDOW,
        integer=True,
        panel=CAPTIONS,
        help="Frames per caption window (at least 4).",
    )
    remainder_threshold: int = param(
        128,
        flag="--captioning-remainder-threshold",
        low=0,
        high=MAX_WINDOW,
        integer=True,
        panel=CAPTIONS,
        help="A leftover of at least this many frames becomes its own window.",
    )
    # Also cut each window's own mp4 (a packet copy where it starts on a keyframe): for stages of yours that read
    # window.mp4_bytes. vidcap's own stages take decoded frames.
    keep_mp4: bool = param(False, help="Also cut each window's mp4 (window.mp4_bytes).")
    verbose: bool = param(False, runtime=True, help="Log each clip's windows.")
    num_cpus_per_worker: float = param(2.0, low=0.01, high=1024, runtime=True, help="Cores per worker.")
    # NeMo Curator's generate_previews: there it asks for window mp4s (its previews are made from them).
    generate_previews: bool | None = param(None, help="NeMo Curator's: cut window mp4s (keep_mp4).")
    # NeMo Curator's preprocess_dtype (the frames' dtype before the model's processor): frames stay uint8 here.
    preprocess_dtype: str | None = param(
        None,
        choices=("float32", "float16", "bfloat16", "uint8"),
        help="NeMo Curator's: accepted; frames stay uint8 until the processor.",
    )
    # What the stages after this one declared they need from each window (filled when the pipeline is built).
    needs: dict[str, FrameSpec] = field(default_factory=dict, init=False, repr=False)
    name: ClassVar[str] = "caption_preparation"
    reads: ClassVar[frozenset[str]] = frozenset({"clip.buffer"})

    def __post_init__(self) -> None:
        if self.model_variant is not None:
            self.model_variant = caption_variant(self.model_variant)
        super().__post_init__()
        if self.generate_previews:
            self.keep_mp4 = True

    def default_resources(self) -> Resources:
        return Resources(cpus=self.num_cpus_per_worker)

    def bind(self, stages: list[Stage]) -> None:
        """Gather every frame need of the stages after this one: one decode serves them all."""
        later = stages[stages.index(self) + 1 :]
        self.needs = {}
        for stage in later:
            for name, spec in stage.frames.items():
                if name in self.needs and self.needs[name] != spec:
                    raise ConfigError(f"two stages need frames named {name!r} with different rules: "
                                      f"{self.needs[name]} and {spec}")  # fmt: skip
                self.needs[name] = spec

    def process(self, video: Video) -> Video:
        for clip in video.clips:
            if clip.buffer is None:
                continue
            try:
                self._prepare_clip(video, clip)
            except Exception as exc:  # one clip's bad buffer must not cost the video's other clips
                logger.error("%s: clip %s: cannot prepare windows: %s", video.source, clip.uuid, describe(exc))
                record_error(clip, self.name, describe(exc), retry=is_retryable(exc))
                clip.windows = []
        return video

    def _prepare_clip(self, video: Video, clip: Clip) -> None:
        total = clip.decoded_frames if clip.decoded_frames is not None else clip.num_frames
        spans = compute_windows(total, self.window_size, self.remainder_threshold)
        if not spans:
            logger.info("%s: clip %s has %d frames, too few for a window", video.source, clip.uuid, total)
            return
        clip.windows = [
            Window(start_frame=s, end_frame=e, frame_indices=sample_frame_indices(s, e, clip.fps, self.sampling_fps))
            for s, e in spans
        ]
        if not (self.needs or self.keep_mp4):
            return
        plans = [
            WindowPlan(
                w.start_frame,
                w.end_frame,
                {n: spec.indices(w.start_frame, w.end_frame, clip.fps) for n, spec in self.needs.items()},
            )
            for w in clip.windows
        ]
        # A size rule may depend on how many frames a window has (a model's pixel budget): the clip's largest.
        most = {n: max(len(set(p.picks[n])) for p in plans) for n in self.needs}
        needs = {n: Need(partial(_sized, spec, most[n]), spec.interpolation) for n, spec in self.needs.items()}
        fps = Fraction(video.metadata.fps_fraction) if video.metadata else Fraction(clip.fps)
        assert clip.buffer is not None
        results, decoded = decode_windows(clip.buffer, plans, needs, fps=fps, keep_mp4=self.keep_mp4)
        for window, res in zip(clip.windows, results, strict=True):
            if res.error is not None:
                # The clip was decoded cleanly once when it was made: a window it cannot fill is the source's.
                record_error(window, self.name, res.error, retry=False)
                window.caption_status = "error"
                window.caption_error = res.error
                continue
            window.frames = res.frames
            window.mp4_bytes = res.mp4_bytes
        if self.verbose:
            logger.info(
                "%s: clip %s: %d frames decoded, %d windows", video.source, clip.uuid, decoded, len(clip.windows)
            )
