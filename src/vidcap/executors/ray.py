"""Ray Data executor: each stage becomes a Ray Data map step sized by the stage's ``resources``.

Stages that override ``setup`` (models) run in actor pools so they load once
per worker; the rest run as plain tasks, which free their CPUs between videos
(actors hold theirs for life, and one actor per stage would not fit a small
node). Videos travel between stages pickled in one column, so stages stay plain
Python; the last step turns each video into its small report before it comes
back to the driver. Clips, previews and JSON are written by the workers,
so OUTPUT must be a path every node can reach (a shared file system).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence
from typing import Any

from vidcap.data import Video
from vidcap.errors import ConfigError
from vidcap.executors.base import Executor, run_stage, share_gpus
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages.base import Stage

logger = logging.getLogger(__name__)

COLUMN = "video"


class _StageWorker:
    """One actor: sets the stage up once, then runs it on every video it is handed."""

    def __init__(self, stage: Stage, last: bool) -> None:
        self.stage = stage
        self.last = last
        stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for blob in batch[COLUMN]:
            video: Video = run_stage(self.stage, pickle.loads(blob))
            out.append(pickle.dumps(VideoReport.from_video(video) if self.last else video))
        return {COLUMN: out}


def _run_as_task(batch: dict[str, Any], stage: Stage, last: bool) -> dict[str, Any]:
    return _StageWorker(stage, last)(batch)


def _has_setup(stage: Stage) -> bool:
    return type(stage).setup is not Stage.setup


class RayExecutor(Executor):
    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_actors: int = 4) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.max_actors = max_actors

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
        cluster = ray.cluster_resources()
        cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
        share_gpus(stages, gpus)
        ds = ray.data.from_items([{COLUMN: pickle.dumps(v)} for v in videos], override_num_blocks=len(videos))
        # Actors hold their CPUs for the whole run and start at once: every stage must still be able to
        # get a worker, so no stage asks for more than an even share of the cluster.
        share = cpus / (sum(1 for s in stages if _has_setup(s)) + 1)
        for i, stage in enumerate(stages):
            res = stage.resources
            if res.gpus > gpus:
                raise ConfigError(f"stage {stage.name} needs {res.gpus} GPU(s) and the Ray cluster has {gpus:g}")
            last = i == len(stages) - 1
            common: dict[str, Any] = {
                "batch_size": 1,
                "batch_format": "numpy",
                "num_cpus": max(0.05, min(res.cpus, share)),
            }
            if res.gpus:
                common["num_gpus"] = res.gpus
            if _has_setup(stage):
                ds = ds.map_batches(
                    _StageWorker, fn_constructor_args=(stage, last), concurrency=(1, self.max_actors), **common
                )
            else:
                ds = ds.map_batches(_run_as_task, fn_kwargs={"stage": stage, "last": last}, **common)
        reports = []
        for row in ds.iter_rows():
            report: VideoReport = pickle.loads(row[COLUMN])
            reports.append(report)
            progress.done(report)
        return reports
