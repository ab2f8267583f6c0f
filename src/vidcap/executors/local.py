"""In-process executor: a pool of workers per stage; tasks of a few clips flow through queues bounded by bytes.

- Each stage's pool is as wide as the machine's cores allow for its ``resources`` (a stage asking 4 cores per
  worker gets cores / 4 workers). Pools are not rationed against each other: stages that wait on ffmpeg's
  start-up, on reading back or on each other leave cores idle that another stage then uses (a shared core
  budget was tried, and cost 25-35% on 2 cores). Threads suffice: the heavy work happens in ffmpeg
  processes, in PyAV and torch, which release the GIL.
- A model stage takes tasks from several videos until its batch is full, and goes ahead with what it has
  as soon as nothing upstream is left to bring more.
- A video's tasks are gathered again on this thread, which writes its marker when the last one is done.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence

from vidcap.data import Video
from vidcap.executors.base import DEFAULT_CLIPS_PER_TASK, Executor, Gather, droppable, share_gpus, step
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages.base import Stage, Writer

logger = logging.getLogger(__name__)

# Media held in one queue between two stages before its producers wait.
DEFAULT_QUEUE_BYTES = 256 * 1024 * 1024


def _gpus_here(stages: Sequence[Stage]) -> float:
    """One GPU when some stage wants one and CUDA is there (torch is imported only then). This process is where
    the stages run, so asking CUDA here is asking the machine that does the work."""
    if not any(s.resources.gpus for s in stages):
        return 0.0
    from vidcap.models.backends import cuda_device_count

    count = cuda_device_count()
    if count > 1:
        logger.warning(
            "%d GPUs here: the local executor runs one engine per model stage, in this process, on the first GPU "
            "(one process cannot keep several vLLM engines); --executor ray runs one engine per GPU", count,
        )  # fmt: skip
    return 1.0 if count else 0.0


class Flow:
    """The queues between stages, and the tasks each stage holds, under one lock.

    Stage ``i`` reads queue ``i`` and writes queue ``i + 1``; the last queue holds finished tasks. A stage
    has nothing more to expect once no earlier stage holds or is about to get a task.
    """

    def __init__(self, stages: int, queue_bytes: int) -> None:
        self.cond = threading.Condition()
        self.queues: list[deque[Video]] = [deque() for _ in range(stages + 1)]
        self.bytes = [0] * (stages + 1)
        self.active = [0] * (stages + 1)
        self.feeding = True
        self.failed: BaseException | None = None
        self.limit = queue_bytes

    def upstream_busy(self, i: int) -> bool:
        return self.feeding or any(self.queues[j] or self.active[j] for j in range(i))

    def put(self, i: int, tasks: list[Video]) -> None:
        """Into queue ``i``, waiting while it holds more than its share of bytes (an empty queue takes any).

        Every task put wakes the waiting: a batch of several tasks may have to wait for room after its first
        one, and only the consumers of that first one can make the room.
        """
        with self.cond:
            for task in tasks:
                size = task.payload_bytes
                last = i == len(self.queues) - 1
                while not last and self.failed is None and self.queues[i] and self.bytes[i] + size > self.limit:
                    self.cond.wait()
                self.queues[i].append(task)
                self.bytes[i] += size
                self.cond.notify_all()

    def take(self, i: int) -> Video | None:
        """The next task of queue ``i``, waiting while an earlier stage may still bring one; None when none will."""
        with self.cond:
            while not self.queues[i]:
                if self.failed is not None or not self.upstream_busy(i):
                    return None
                self.cond.wait()
            task = self.queues[i].popleft()
            self.bytes[i] -= task.payload_bytes
            self.active[i] += 1
            self.cond.notify_all()
            return task

    def done(self, i: int, count: int) -> None:
        with self.cond:
            self.active[i] -= count
            self.cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.failed is None:
                self.failed = exc
            self.cond.notify_all()

    def fed(self) -> None:
        with self.cond:
            self.feeding = False
            self.cond.notify_all()


class LocalExecutor(Executor):
    """``cpus``: cores to size pools for (default: all). ``max_workers``: a cap on any stage's pool.
    ``clips_per_task``: how many clips one task carries (None: whole videos). ``queue_bytes``: media per queue
    between stages. ``serial``: one video at a time through every stage, in this thread."""

    def __init__(
        self,
        cpus: float | None = None,
        max_workers: int | None = None,
        clips_per_task: int | None = DEFAULT_CLIPS_PER_TASK,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        serial: bool = False,
    ) -> None:
        self.cpus = float(cpus or os.cpu_count() or 1)
        self.max_workers = max_workers
        self.clips_per_task = clips_per_task
        self.queue_bytes = queue_bytes
        self.serial = serial
        self.engines = {}

    def pool_size(self, stage: Stage) -> int:
        """Workers for a stage: as many as its share of cores allows; one engine for a model stage."""
        if stage.batch_size is not None or stage.resources.gpus:
            size = 1  # several engines of one model in one process do not pay; Ray runs one per GPU
        else:
            size = max(1, math.floor(self.cpus / max(stage.resources.cpus, 0.01) + 1e-9))
        return min(size, self.max_workers) if self.max_workers else size

    def run(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        if not videos:
            return []  # nothing to do: no model is loaded
        # Every stage runs in this process on the first GPU: model stages share it.
        share_gpus(stages, _gpus_here(stages))
        writer = stages[-1] if isinstance(stages[-1], Writer) else None
        gather = Gather(writer, progress)
        workers: list[threading.Thread] = []
        try:
            if self.serial:
                self._run_serial(stages, videos, gather)
            else:
                self._run_pools(stages, videos, gather, workers)
        finally:
            # Workers stop taking tasks on a failure or an interrupt; a stage is torn down only once none of its
            # workers is inside a step (an engine closed mid-generate takes the process with it).
            busy = _join(workers, JOIN_S)
            for stage in stages:
                if stage.name in busy:
                    logger.warning("%s: a worker is still busy; its engine is left to end with the process", stage.name)
                else:
                    stage.teardown()
        self.engines = gather.engine_summary()
        return gather.reports

    def _run_serial(self, stages: Sequence[Stage], videos: Sequence[Video], gather: Gather) -> None:
        drops = droppable(stages)
        for stage in stages:
            stage.setup()
        for video in videos:
            tasks = [video]
            for stage, drop in zip(stages, drops, strict=True):
                tasks = step(stage, tasks, drop, self.clips_per_task)
            for task in tasks:
                gather.add(task)

    def _run_pools(
        self, stages: Sequence[Stage], videos: Sequence[Video], gather: Gather, workers: list[threading.Thread]
    ) -> None:
        flow = Flow(len(stages), self.queue_bytes)
        drops = droppable(stages)
        # Setups run one at a time: two models loading at once double the peak memory, and importing
        # transformers from two threads at once can fail half-way.
        setup_lock = threading.Lock()
        ready = [threading.Event() for _ in stages]

        def work(i: int, stage: Stage) -> None:
            try:
                if not ready[i].is_set():
                    with setup_lock:
                        if not ready[i].is_set():
                            stage.setup()
                            ready[i].set()
                batch = stage.batch_size
                while True:
                    first = flow.take(i)
                    if first is None:
                        return
                    tasks = [first]
                    if batch is not None:  # fill the batch while upstream still has something to give
                        windows = _windows(first)
                        while windows < batch and (more := flow.take(i)) is not None:
                            tasks.append(more)
                            windows += _windows(more)
                    out = step(stage, tasks, drops[i], self.clips_per_task)
                    flow.put(i + 1, out)
                    flow.done(i, len(tasks))
            except BaseException as exc:  # e.g. a model that cannot load: the run stops with its reason
                flow.fail(exc)

        threads = [
            threading.Thread(target=work, args=(i, s), name=f"vidcap-{s.name}-{k}", daemon=True)
            for i, s in enumerate(stages)
            for k in range(self.pool_size(s))
        ]
        workers += threads
        logger.debug("workers: %s", Counter(t.name.rsplit("-", 1)[0] for t in threads))

        def feed() -> None:
            for video in videos:
                flow.put(0, [video])
                if flow.failed is not None:
                    break
            flow.fed()

        feeder = threading.Thread(target=feed, name="vidcap-feed", daemon=True)
        workers.append(feeder)
        for t in [*threads, feeder]:
            t.start()
        try:
            while (task := flow.take(len(stages))) is not None:
                gather.add(task)
                flow.done(len(stages), 1)
        except BaseException as exc:  # e.g. Ctrl-C: the workers take no more tasks
            flow.fail(exc)
            raise
        if flow.failed is not None:
            raise flow.failed
        if gather.unfinished:
            raise RuntimeError(f"{gather.unfinished} videos lost tasks on the way")


# Seconds to wait for workers to finish the step they are in, once the run stops (a failure, Ctrl-C).
JOIN_S = 10.0


def _join(threads: list[threading.Thread], seconds: float) -> set[str]:
    """Wait up to ``seconds`` in all for ``threads``; the stage names of those still running."""
    deadline = time.monotonic() + seconds
    started = [t for t in threads if t.ident is not None]
    for t in started:
        t.join(max(0.0, deadline - time.monotonic()))
    return {t.name.removeprefix("vidcap-").rsplit("-", 1)[0] for t in started if t.is_alive()}


def _windows(task: Video) -> int:
    return max(1, sum(len(c.windows) for c in task.clips))
