"""The per-video run loop shared by every executor."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from vidcap.data import Video, record_error
from vidcap.errors import SourceError, describe, is_retryable
from vidcap.paths import display_text
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages.base import Stage

logger = logging.getLogger(__name__)


def run_stage(stage: Stage, video: Video) -> Video:
    """Run one stage on one video; an exception is recorded on the video, never raised.

    Expected failures (the source, the disk, ffmpeg) are one log line; a traceback is kept for
    surprises, where it helps a bug report.
    """
    start = time.perf_counter()
    try:
        video = stage.process(video)
    except Exception as exc:  # one bad video must not stop the others
        retry = is_retryable(exc)
        if isinstance(exc, SourceError | OSError) or getattr(exc, "retryable", None) is not None:
            logger.error("%s: %s: %s", display_text(str(video.path)), stage.name, describe(exc))
        else:
            logger.exception("%s: stage %s failed", display_text(str(video.path)), stage.name)
        record_error(video, stage.name, describe(exc) if retry else str(exc), retry=retry)
    video.timings[stage.name] = video.timings.get(stage.name, 0.0) + time.perf_counter() - start
    return video


def run_video(stages: Sequence[Stage], video: Video) -> VideoReport:
    for stage in stages:
        video = run_stage(stage, video)
    return VideoReport.from_video(video)


def share_gpus(stages: Sequence[Stage], available: float) -> None:
    """When the GPU stages together ask for more GPUs than there are, split them by each stage's weight
    (its model's memory need), so that e.g. a captioning and an enhancement engine fit on one GPU."""
    gpu_stages = [s for s in stages if s.resources.gpus > 0]
    if not gpu_stages or available <= 0 or sum(s.resources.gpus for s in gpu_stages) <= available:
        return
    total = sum(s.gpu_weight for s in gpu_stages)
    for stage in gpu_stages:
        stage.share_gpu(available * stage.gpu_weight / total)
        logger.info("%s gets %.2f of the GPU", stage.name, stage.resources.gpus)


class Executor:
    """Runs ``stages`` over ``videos``: ``Pipeline`` has called ``prepare`` on the driver; the executor
    calls ``setup`` once per worker, and ``teardown`` where its engine allows."""

    def run(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        """Every video through every stage; ``progress.done`` hears of each video as it finishes."""
        raise NotImplementedError
