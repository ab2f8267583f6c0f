"""Ray Data executor: each stage is an actor pool (a min and a max size) sized by the stage's ``resources``.

Each actor sets its stage up once and runs the same ``step`` as the local executor on every batch it is
handed: model stages get batches of tasks that fill their ``batch_size`` in windows, the others one task
at a time. Tasks travel pickled in one column, so stages stay plain Python; payloads are dropped after
their last reader, so what crosses a stage boundary is only what later stages need. The driver gathers
each video's tasks and writes its marker. Clips, previews and JSON are written by the workers, so OUTPUT
must be a path every node can reach (a shared file system).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Sequence
from typing import Any

from vidcap.data import Video
from vidcap.errors import ConfigError
from vidcap.executors.base import DEFAULT_CLIPS_PER_TASK, Executor, Gather, droppable, share_gpus, step
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages.base import Stage, Writer

logger = logging.getLogger(__name__)

COLUMN = "task"


class _StageWorker:
    """One actor of a stage's pool: sets the stage up once, then runs it on every batch of tasks it is handed."""

    def __init__(self, stage: Stage, drop: frozenset[str], clips_per_task: int | None) -> None:
        self.stage = stage
        self.drop = drop
        self.clips_per_task = clips_per_task
        stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        tasks = [pickle.loads(blob) for blob in batch[COLUMN]]
        out = step(self.stage, tasks, self.drop, self.clips_per_task)
        return {COLUMN: [pickle.dumps(task) for task in out]}


class RayExecutor(Executor):
    """``max_actors``: a cap on any stage's pool; ``clips_per_task`` as for the local executor."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        max_actors: int | None = None,
        clips_per_task: int | None = DEFAULT_CLIPS_PER_TASK,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.max_actors = max_actors
        self.clips_per_task = clips_per_task
        self.engines = {}

    def _init_ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--executor ray needs Ray Data: pip install -e '.[ray]'") from exc
        if not ray.is_initialized():
            os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
            ray.init(address=self.address, num_cpus=self.num_cpus, ignore_reinit_error=True, log_to_driver=True)
        return ray

    def run(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        if not videos:
            return []
        ray = self._init_ray()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = False  # a finished task goes on at once
        cluster = ray.cluster_resources()
        cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
        share_gpus(stages, gpus)
        drops = droppable(stages)
        ds = ray.data.from_items([{COLUMN: pickle.dumps(v)} for v in videos], override_num_blocks=len(videos))
        # Every pool starts with one actor, and actors hold their CPUs for life: each stage's actor asks for
        # at most an even share of the cluster, so that all pools can start even on a small node.
        share = cpus / (len(stages) + 1)
        for stage, drop in zip(stages, drops, strict=True):
            res = stage.resources
            if res.gpus > gpus:
                raise ConfigError(f"stage {stage.name} needs {res.gpus} GPU(s) and the Ray cluster has {gpus:g}")
            num_cpus = max(0.05, min(res.cpus, share))
            most = math.floor(gpus / res.gpus + 1e-9) if res.gpus else max(1, math.floor(cpus / num_cpus + 1e-9))
            if self.max_actors:
                most = min(most, self.max_actors)
            options: dict[str, Any] = {
                # A model stage's batch: as many tasks as make one engine batch (each brings a window or more).
                "batch_size": stage.batch_size or 1,
                "batch_format": "numpy",
                "num_cpus": num_cpus,
                "concurrency": (1, max(1, most)),
                "fn_constructor_args": (stage, drop, self.clips_per_task),
            }
            if res.gpus:
                options["num_gpus"] = res.gpus
            ds = ds.map_batches(_StageWorker, **options)
        writer = stages[-1] if isinstance(stages[-1], Writer) else None
        gather = Gather(writer, progress)
        for row in ds.iter_rows():
            gather.add(pickle.loads(row[COLUMN]))
        if gather.unfinished:
            raise RuntimeError(f"{gather.unfinished} videos lost tasks on the way")
        self.engines = gather.engine_summary()
        return gather.reports
