"""Ray Data executor: each stage is an actor pool (a min and a max size) sized by the stage's ``resources``.

- Each actor sets its stage up once and runs the same ``step`` as the local executor on every batch it is
  handed. Tasks travel pickled in one column, so stages stay plain Python; payloads are dropped after their
  last reader, so what crosses a stage boundary is only what later stages need.
- Where things run comes from the cluster, never from the driver: a stage that wants a GPU asks Ray for one
  when the cluster has GPUs (its actors land on those nodes), and runs on CPUs when it has none.
- Before any work, each stage's ``setup_on_node`` runs once on every node that can host its actors (weights
  are fetched into that node's --model-dir).
- A model stage's batch counts windows, as locally: it is handed enough tasks to fill ``batch_size`` windows
  and calls its engine on ``batch_size`` windows at a time.
- The driver gathers each video's tasks and writes its marker. Clips, previews and JSON are written by the
  workers, so OUTPUT must be a path every node can reach.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import warnings
from collections.abc import Sequence
from typing import Any

from vidcap.data import Video
from vidcap.errors import ConfigError
from vidcap.executors.base import DEFAULT_CLIPS_PER_TASK, Executor, Gather, droppable, share_gpus, step
from vidcap.media.sources import remove_copies
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


def _prepare_here(stage: Stage) -> tuple[str, str | None]:
    """A stage's node preparation, on the node this runs on: (node id, the problem or None)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    try:
        stage.setup_on_node()
    except ConfigError as exc:
        return node, str(exc)
    return node, None


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
        # Which nodes prepared which stage (stage name -> node ids), for the log and for tests.
        self.prepared: dict[str, list[str]] = {}

    def _init_ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--executor ray needs Ray Data: pip install -e '.[ray]'") from exc
        if not ray.is_initialized():
            os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
            # Ray's own start-up notices (deprecations, its token) are for Ray's developers, not vidcap's users.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                ray.init(address=self.address, num_cpus=self.num_cpus, ignore_reinit_error=True, log_to_driver=True,
                         logging_level=logging.WARNING)  # fmt: skip
        return ray

    def _cluster(self, ray: Any) -> tuple[float, float]:
        resources = ray.cluster_resources()
        return float(resources.get("CPU", 1)), float(resources.get("GPU", 0))

    def prepare_nodes(self, stages: Sequence[Stage]) -> list[tuple[Stage, ConfigError]]:
        """``setup_on_node`` once on every alive node that can host the stage's actors (GPU nodes for a stage
        that asks for a GPU, when the cluster has any)."""
        ray = self._init_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        _, gpus = self._cluster(ray)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        prepare = ray.remote(num_cpus=0)(_prepare_here)
        problems: list[tuple[Stage, ConfigError]] = []
        for stage in stages:
            wants_gpu = stage.resources.gpus > 0 and gpus > 0
            hosts = [n for n in nodes if n["Resources"].get("GPU", 0) > 0] if wants_gpu else nodes
            calls = [
                prepare.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                    stage
                )
                for n in hosts
            ]
            results = ray.get(calls)
            self.prepared[stage.name] = [node for node, _ in results]
            for _node, problem in results:
                if problem is not None:
                    problems.append((stage, ConfigError(problem)))
                    break
        return problems

    def run(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        if not videos:
            return []
        ray = self._init_ray()
        from ray.data import ActorPoolStrategy

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = False  # a finished task goes on at once
        cpus, gpus = self._cluster(ray)
        share_gpus(stages, gpus)
        drops = droppable(stages)
        ds = ray.data.from_items([{COLUMN: pickle.dumps(v)} for v in videos], override_num_blocks=len(videos))
        # Every pool starts with one actor, and actors hold their CPUs for life: each stage's actor asks for
        # at most an even share of the cluster, so that all pools can start even on a small node.
        share = cpus / (len(stages) + 1)
        for stage, drop in zip(stages, drops, strict=True):
            res = stage.resources
            # A GPU where the cluster has one; otherwise the stage runs on CPUs (a model on the CPU).
            wanted_gpus = res.gpus if gpus > 0 else 0.0
            if wanted_gpus > gpus:
                raise ConfigError(f"stage {stage.name} needs {wanted_gpus:g} GPU(s) and the Ray cluster has {gpus:g}")
            num_cpus = max(0.05, min(res.cpus, share))
            if wanted_gpus:
                most = math.floor(gpus / wanted_gpus + 1e-9)
            elif stage.batch_size is not None:
                most = 1  # one engine of a CPU model: more would split the cores it uses
            else:
                most = max(1, math.floor(cpus / num_cpus + 1e-9))
            if self.max_actors:
                most = min(most, self.max_actors)
            options: dict[str, Any] = {
                "batch_size": self.rows_per_batch(stage),
                "batch_format": "numpy",
                "num_cpus": num_cpus,
                "compute": ActorPoolStrategy(min_size=1, max_size=max(1, most)),
                "fn_constructor_args": (stage, drop, self.clips_per_task),
            }
            if wanted_gpus:
                options["num_gpus"] = wanted_gpus
            ds = ds.map_batches(_StageWorker, **options)
        writer = stages[-1] if isinstance(stages[-1], Writer) else None
        gather = Gather(writer, progress)
        try:
            for row in ds.iter_rows():
                gather.add(pickle.loads(row[COLUMN]))
        finally:
            self._remove_copies(ray, videos)
        if gather.unfinished:
            raise RuntimeError(f"{gather.unfinished} videos lost tasks on the way")
        self.engines = gather.engine_summary()
        return gather.reports

    def _remove_copies(self, ray: Any, videos: Sequence[Video]) -> None:
        """Copies of sources in object storage that a node fetched for a stage whose task went on elsewhere:
        removed on every node once the run's tasks are done."""
        runs = {v.path.parent.name for v in videos if v.url}
        if not runs:
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remove = ray.remote(num_cpus=0)(remove_copies)
        calls = [
            remove.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=True)).remote(runs)
            for n in ray.nodes()
            if n.get("Alive")
        ]
        try:
            ray.get(calls, timeout=60)
        except Exception as exc:  # a node gone: its copies go with a later run there (or its temp folder)
            logger.warning("could not remove the source copies on every node: %s", exc)

    def rows_per_batch(self, stage: Stage) -> int:
        """Tasks per Ray batch: for a model stage, enough tasks (of ``clips_per_task`` clips, a window or more
        each) to fill its ``batch_size`` windows; it calls its engine on ``batch_size`` windows at a time."""
        if stage.batch_size is None:
            return 1
        return max(1, math.ceil(stage.batch_size / (self.clips_per_task or 1)))
