"""MotionFilterStage: scores how much each clip moves, from its decoder's motion vectors, and takes out the
clips that barely move (NeMo Curator's semantics, thresholds and flag names)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from vidcap.data import Video
from vidcap.media.motion import MotionError, decode_motion, motion_scores
from vidcap.params import param
from vidcap.stages.base import Resources, Stage

logger = logging.getLogger(__name__)

FILTERS = "Filters"


@dataclass
class MotionFilterStage(Stage):
    """Motion vectors at ``target_fps`` over the first ``target_duration_ratio`` of each clip give two scores,
    kept on the clip; a clip below either threshold is filtered (to filtered_clips/, with its scores and the
    reason) unless ``score_only``. A clip whose motion cannot be measured scores -1 and is filtered too."""

    score_only: bool = param(False, help="Score every clip and keep them all.")
    global_mean_threshold: float = param(
        0.00098,
        flag="--motion-global-mean-threshold",
        low=0.0,
        high=1.0,
        panel=FILTERS,
        help="A clip whose average motion (relative to the frame's width + height) is below this barely moves.",
    )
    per_patch_min_256_threshold: float = param(
        0.000001,
        flag="--motion-per-patch-min-256-threshold",
        low=0.0,
        high=1.0,
        panel=FILTERS,
        help="A clip with a 256x256-pixel patch that moves less than this on average barely moves there.",
    )
    target_fps: float = param(
        2.0,
        flag="--motion-decode-target-fps",
        low=1e-3,
        high=1000.0,
        panel=FILTERS,
        help="Frames per second whose motion vectors are read.",
    )
    target_duration_ratio: float = param(
        0.5,
        flag="--motion-decode-target-duration-ratio",
        low=1e-3,
        high=1.0,
        panel=FILTERS,
        help="Share of the clip (from its start) that is read.",
    )
    num_cpus_per_worker: float = param(
        2.0,
        flag="--motion-decode-cpus-per-worker",
        low=0.01,
        high=1024.0,
        runtime=True,
        panel=FILTERS,
        help="Decoder threads per clip.",
    )
    name: ClassVar[str] = "motion_filter"
    reads: ClassVar[frozenset[str]] = frozenset({"clip.buffer"})

    def default_resources(self) -> Resources:
        return Resources(cpus=self.num_cpus_per_worker)

    def process(self, video: Video) -> Video:
        for clip in list(video.clips):
            if clip.buffer is None:
                continue
            try:
                vectors, size = decode_motion(clip.buffer, self.target_fps, self.target_duration_ratio,
                                              max(1, int(self.num_cpus_per_worker)))  # fmt: skip
                scores = motion_scores(vectors, size)
                clip.scores["motion"] = scores.as_dict()
                low = []
                if scores.global_mean < self.global_mean_threshold:
                    low.append(f"global mean {scores.global_mean:.6g} < {self.global_mean_threshold:g}")
                if scores.per_patch_min_256 < self.per_patch_min_256_threshold:
                    low.append(f"least-moving 256-pixel patch {scores.per_patch_min_256:.6g} < "
                               f"{self.per_patch_min_256_threshold:g}")  # fmt: skip
                reason = "little motion: " + "; ".join(low) if low else None
            except MotionError as exc:
                clip.scores["motion"] = {"global_mean": -1.0, "per_patch_min_256": -1.0}
                reason = f"motion not measured: {exc}"
                logger.warning("%s: clip %s: %s", video.source, clip.uuid, reason)
            if reason is not None and not self.score_only:
                video.filter_clip(clip, self.name, reason)
        return video
