"""A pipeline is a plain list of stages: a reader first, then the steps, a writer last."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vidcap.data import Video
from vidcap.executors.base import Executor, OnReport
from vidcap.report import VideoReport
from vidcap.stages.base import ConfigError, Reader, Stage

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    reports: list[VideoReport]
    discovered: int
    skipped: list[Video] = field(default_factory=list)
    wall_s: float = 0.0
    stages: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


class Pipeline:
    def __init__(self, stages: Sequence[Stage], limit: int | None = None) -> None:
        if not stages or not isinstance(stages[0], Reader):
            raise ConfigError("a pipeline starts with a reader stage, e.g. VideoReaderStage(input_path)")
        self.stages = list(stages)
        self.limit = limit
        for stage in self.stages:
            stage.bind(self.stages)

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        return {s.name: s.settings() for s in self.stages}

    @property
    def reader(self) -> Reader:
        return self.stages[0]  # type: ignore[return-value]

    def plan(self, videos: list[Video] | None = None) -> tuple[list[Video], list[Video]]:
        """Videos to process and videos skipped because a stage reports them done."""
        videos = self.reader.discover() if videos is None else videos
        todo: list[Video] = []
        done: list[Video] = []
        for video in videos:
            (done if any(s.is_done(video) for s in self.stages) else todo).append(video)
        if self.limit is not None:
            todo = todo[: self.limit]
        return todo, done

    def run(
        self,
        executor: Executor | None = None,
        on_report: OnReport | None = None,
        on_plan: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        """Check every stage, skip finished videos, process the rest, then let stages write run outputs."""
        from vidcap.executors.local import LocalExecutor

        start = time.perf_counter()
        videos = self.reader.discover()  # a bad INPUT stops here, before OUTPUT is touched
        if not videos:
            logger.warning("no videos found in %s", getattr(self.reader, "input_path", "the input"))
            return RunResult(reports=[], discovered=0, stages=[s.name for s in self.stages], settings=self.settings)
        for stage in self.stages:
            stage.prepare()
        todo, done = self.plan(videos)
        logger.info("%d videos to process, %d already done", len(todo), len(done))
        if on_plan is not None:
            on_plan(len(todo), len(done))
        reports = (executor or LocalExecutor()).run(self.stages, todo, on_report)
        result = RunResult(
            reports=reports,
            discovered=len(todo) + len(done),
            skipped=done,
            wall_s=time.perf_counter() - start,
            stages=[s.name for s in self.stages],
            settings=self.settings,
        )
        for stage in self.stages:
            stage.finish(result)
        return result
