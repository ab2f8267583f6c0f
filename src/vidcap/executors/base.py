"""What every executor shares: running a stage on tasks, splitting videos into tasks, dropping payloads after
their last reader, and gathering a video's tasks again (its marker, its report, the model statistics)."""

from __future__ import annotations

import copy
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vidcap.data import Video, record_error
from vidcap.errors import ConfigError, SourceError, describe, is_retryable
from vidcap.media.sources import ensure_local, release, split_copies
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages.base import PAYLOADS, Stage, Writer

logger = logging.getLogger(__name__)

# A video longer than this many clips travels as several tasks once it is split.
DEFAULT_CLIPS_PER_TASK = 2


def _record_failure(stage: Stage, video: Video, exc: Exception) -> None:
    """An exception is recorded on the task; expected kinds (source, disk, ffmpeg) get one log line. What the
    writer could not write (OUTPUT gone, a full disk) is redone next run, whatever the error's kind: the
    video has no marker then."""
    retry = is_retryable(exc) or isinstance(stage, Writer)
    if isinstance(exc, SourceError | OSError) or getattr(exc, "retryable", None) is not None:
        logger.error("%s: %s: %s", video.source, stage.name, describe(exc))
    else:
        logger.exception("%s: stage %s failed", video.source, stage.name)
    record_error(video, stage.name, describe(exc) if retry else str(exc), retry=retry)


def fetch_sources(stage: Stage, videos: list[Video]) -> tuple[list[Video], list[Video]]:
    """The tasks whose source the stage can read, and those whose source could not be had: a source in object
    storage is copied to this machine first (``reads`` names ``video.source``); a task whose copy cannot be made
    carries the reason past the stage."""
    if "video.source" not in stage.reads:
        return videos, []
    ready, failed = [], []
    for video in videos:
        try:
            if not video.errors:
                ensure_local(video)
            ready.append(video)
        except Exception as exc:
            _record_failure(stage, video, exc)
            failed.append(video)
    return ready, failed


def run_batch(stage: Stage, videos: list[Video]) -> list[Video]:
    """Run one stage on tasks (together, through its batch hook); an exception is recorded on the task,
    never raised. A failure of a whole batch is retried task by task, so it lands where it belongs."""
    start = time.perf_counter()
    ready, failed = fetch_sources(stage, videos)
    if failed:
        return (run_batch(stage, ready) if ready else []) + failed
    try:
        out = stage.process_batch(videos)
    except Exception as exc:
        if len(videos) > 1:
            return [task for video in videos for task in run_batch(stage, [video])]
        _record_failure(stage, videos[0], exc)
        out = list(videos)
    share = (time.perf_counter() - start) / len(videos)
    for video in out:
        video.timings[stage.name] = video.timings.get(stage.name, 0.0) + share
    return out


def step(stage: Stage, videos: list[Video], drop: frozenset[str], clips_per_task: int | None) -> list[Video]:
    """A stage's whole turn on some tasks: run it, split what became long, drop what nobody reads any more."""
    out = [task for video in run_batch(stage, videos) for task in split_task(video, clips_per_task)]
    for task in out:
        drop_payloads(task, drop)
    return out


def droppable(stages: Sequence[Stage]) -> list[frozenset[str]]:
    """For each stage, the payloads to drop once it is done with a task: every one no later stage reads
    (so also media a stage makes that nothing downstream uses, and everything after the last stage). Named
    frames (``frames:<name>``) are payloads like any other."""
    every = set(PAYLOADS) | {f"frames:{name}" for s in stages for name in s.frames}
    return [frozenset(every - set().union(*(s.reads for s in stages[i + 1 :]))) for i in range(len(stages))]


def drop_payloads(video: Video, payloads: frozenset[str]) -> None:
    """Let go of media no later stage needs, so memory follows the tasks in flight, not the run."""
    if "video.source" in payloads:
        release(video)
    frames = {name.removeprefix("frames:") for name in payloads if name.startswith("frames:")}
    fields = [name.removeprefix("window.") for name in payloads if name.startswith("window.")]
    for clip in [*video.clips, *video.filtered_clips]:
        if "clip.buffer" in payloads:
            clip.buffer = None
        for window in clip.windows:
            for name in fields:
                setattr(window, name, None)
            if frames:
                window.frames = {k: v for k, v in window.frames.items() if k not in frames}


def split_task(video: Video, clips_per_task: int | None) -> list[Video]:
    """A video with many clips becomes tasks of ``clips_per_task`` clips each (once, after splitting)."""
    if clips_per_task is None or video.parts > 1 or len(video.clips) <= clips_per_task:
        return [video]
    chunks = [video.clips[i : i + clips_per_task] for i in range(0, len(video.clips), clips_per_task)]
    tasks = []
    for part, clips in enumerate(chunks):
        task = copy.copy(video)  # shares metadata; lists and dicts below are the task's own
        task.clips = clips
        task.filtered_clips = list(video.filtered_clips) if part == 0 else []
        task.errors, task.retry_errors = dict(video.errors), set(video.retry_errors)
        task.timings, task.outputs, task.model_calls = dict(video.timings), {}, []
        task.part, task.parts = part, len(chunks)
        tasks.append(task)
    split_copies(video, tasks)
    return tasks


def share_gpus(stages: Sequence[Stage], available: float) -> None:
    """When the GPU stages together ask for more GPUs than there are, split them by each stage's weight
    (its model's memory need), so that e.g. a captioning and an enhancement engine fit on one GPU."""
    gpu_stages = [s for s in stages if s.resources.gpus > 0]
    if not gpu_stages or available <= 0 or sum(s.resources.gpus for s in gpu_stages) <= available:
        return
    weights = [s.resources.gpu_memory_gb or s.resources.gpus for s in gpu_stages]
    total = sum(weights)
    for stage, weight in zip(gpu_stages, weights, strict=True):
        stage.share_gpu(available * weight / total)
        logger.info("%s gets %.2f of the GPU", stage.name, stage.resources.gpus)


@dataclass
class EngineStats:
    """What one model stage asked of its engine during a run."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    busy_s: float = 0.0
    # The backend that ran (auto resolved: vllm, transformers or openai).
    backend: str = ""

    def add(self, requests: int, seconds: float, backend: str = "") -> None:
        self.backend = backend or self.backend
        self.requests += requests
        self.batches += 1
        self.largest_batch = max(self.largest_batch, requests)
        self.busy_s += seconds

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "requests": self.requests,
            "batches": self.batches,
            "largest_batch": self.largest_batch,
            "busy_s": round(self.busy_s, 3),
        }


@dataclass
class Gather:
    """Collects finished tasks on the driver; when all tasks of a video are in, joins them, has the writer
    mark the video done, and hands its report to ``progress``."""

    writer: Writer | None
    progress: Progress
    reports: list[VideoReport] = field(default_factory=list)
    engines: dict[str, EngineStats] = field(default_factory=lambda: defaultdict(EngineStats))
    _parts: dict[tuple[str, str], list[Video]] = field(default_factory=dict)

    def add(self, task: Video) -> None:
        for stage, requests, seconds, backend in task.model_calls:
            self.engines[stage].add(requests, seconds, backend)
        key = (task.source, task.relative_path)  # not the path: each task of a source in a bucket has its own copy
        parts = self._parts.setdefault(key, [])
        parts.append(task)
        if len(parts) < task.parts:
            return
        video = join(sorted(self._parts.pop(key), key=lambda t: t.part))
        if self.writer is not None:
            try:
                self.writer.complete(video)
            except OSError as exc:  # e.g. a full disk: the video has no marker and is redone next time
                _record_failure(self.writer, video, exc)
        report = VideoReport.from_video(video)
        self.reports.append(report)
        self.progress.done(report)

    @property
    def unfinished(self) -> int:
        return len(self._parts)

    def engine_summary(self) -> dict[str, dict[str, Any]]:
        return {name: s.summary() for name, s in sorted(self.engines.items())}


def join(parts: list[Video]) -> Video:
    """One video again from its tasks (in order): clips, errors, timings, files."""
    video = copy.copy(parts[0])
    video.clips = [c for p in parts for c in p.clips]
    video.filtered_clips = [c for p in parts for c in p.filtered_clips]
    video.errors, video.retry_errors = {}, set()
    video.timings, video.outputs, video.model_calls = {}, {}, []
    for part in parts:
        for key, reason in part.errors.items():
            if key not in video.errors:
                record_error(video, key, reason, retry=key in part.retry_errors)
        for stage, seconds in part.timings.items():
            video.timings[stage] = video.timings.get(stage, 0.0) + seconds
        video.outputs.update(part.outputs)
    video.chunks = len(parts)
    video.part, video.parts = 0, 1
    return video


class Executor:
    """Runs ``stages`` over ``videos``: ``Pipeline`` has called ``prepare`` on the driver; the executor
    calls ``setup`` once per worker, and ``teardown`` where its engine allows."""

    engines: dict[str, dict[str, Any]]

    def prepare_nodes(self, stages: Sequence[Stage]) -> list[tuple[Stage, ConfigError]]:
        """Each stage's ``setup_on_node`` on every machine that will run it (here: this one), before any work;
        the problems found, by stage."""
        problems = []
        for stage in stages:
            try:
                stage.setup_on_node()
            except ConfigError as exc:
                problems.append((stage, exc))
        return problems

    def run(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        """Every video through every stage; ``progress.done`` hears of each video as it finishes."""
        raise NotImplementedError
