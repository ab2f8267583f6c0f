"""A pipeline is a plain list of stages: a reader first, then the steps, a writer last."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from vidcap.data import Video
from vidcap.errors import ConfigError, RunFilesError, SettingError
from vidcap.executors.base import Executor
from vidcap.output.ledger import Plan
from vidcap.progress import LogProgress, Progress
from vidcap.report import RunResult
from vidcap.stages.base import Reader, Stage, Writer

logger = logging.getLogger(__name__)


def labelled(error: ConfigError, stage: Stage) -> ConfigError:
    """A setting error in the words of whoever built the stage (the CLI's flags), when it said them."""
    labels = getattr(stage, "labels", None)
    return error.renamed(labels) if isinstance(error, SettingError) and labels else error


def show_log() -> None:
    """Progress and problems reach the user of the Python API even when the program configured no logging:
    vidcap's own messages then go to stderr (a program that configures logging keeps its own way)."""
    ours = logging.getLogger("vidcap")
    if ours.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    ours.addHandler(handler)
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.INFO)


def bind(stages: list[Stage]) -> list[Stage]:
    """Let each stage check and settle against the others (``Stage.bind``), last stage first: a stage that
    gathers what later ones declare (the window step's frame needs) sees them settled. Pipeline does this; call
    it yourself to run stages by hand."""
    for stage in reversed(stages):
        try:
            stage.bind(stages)
        except ConfigError as exc:
            raise labelled(exc, stage) from None
    return stages


class Pipeline:
    def __init__(self, stages: Sequence[Stage], limit: int | None = None) -> None:
        if not stages or not isinstance(stages[0], Reader):
            raise ConfigError("a pipeline starts with a reader stage, e.g. VideoReaderStage(input_path)")
        for i, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise TypeError(f"pipeline step {i} is {stage!r}, not a stage")
            if i and isinstance(stage, Reader):
                raise ValueError(f"{type(stage).__name__} is step {i}: a reader can only be the first stage")
            if isinstance(stage, Writer) and i != len(stages) - 1:
                raise ValueError(
                    f"{type(stage).__name__} is step {i} of {len(stages)}: a writer must be the last stage, "
                    f"after {', '.join(type(s).__name__ for s in stages[i + 1 :])}"
                )
        self.stages = list(stages)
        self.limit = limit
        bind(self.stages)

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        return {s.name: s.settings() for s in self.stages}

    @property
    def reader(self) -> Reader:
        return self.stages[0]  # type: ignore[return-value]

    @property
    def writer(self) -> Writer | None:
        last = self.stages[-1]
        return last if isinstance(last, Writer) else None

    def prepare(self, executor: Executor | None = None) -> None:
        """Every stage's checks, then each machine's preparation (weights), before anything is written; all
        problems are reported together.

        The writer goes last, so OUTPUT is not even created when something else is wrong.
        """
        from vidcap.executors.local import LocalExecutor

        problems: list[str] = []
        for stage in self.stages:
            if stage is self.writer:
                continue
            try:
                stage.prepare()
            except ConfigError as exc:
                problems.append(str(labelled(exc, stage)))
        if not problems:
            problems = [
                str(labelled(exc, stage)) for stage, exc in (executor or LocalExecutor()).prepare_nodes(self.stages)
            ]
        if problems:
            raise ConfigError("\n".join(problems))
        if self.writer is not None:
            try:
                self.writer.prepare()
            except ConfigError as exc:
                raise labelled(exc, self.writer) from None

    def plan(self, videos: list[Video]) -> Plan:
        """Videos to process and videos skipped because they are already done."""
        if self.writer is not None:
            return self.writer.plan(videos, self.limit)
        return Plan(videos[: self.limit] if self.limit is not None else list(videos), [])

    def run(self, executor: Executor | None = None, progress: Progress | None = None) -> RunResult:
        """Check every stage, skip finished videos, process the rest, then let stages write run outputs.

        ``progress`` hears about the plan and each finished video; by default progress goes to the log.
        """
        from vidcap.executors.local import LocalExecutor

        start = time.perf_counter()
        if progress is None:
            show_log()
        progress = progress or LogProgress()
        videos = self.reader.discover()  # a bad INPUT stops here, before OUTPUT is touched
        if not videos:
            logger.warning("no videos found in %s", getattr(self.reader, "input_path", "the input"))
            return RunResult(reports=[], discovered=0, stages=[s.name for s in self.stages], settings=self.settings)
        executor = executor or LocalExecutor()
        self.prepare(executor)
        plan = self.plan(videos)
        logger.info("%s", plan.describe())
        progress.start(len(plan.todo))
        reports = executor.run(self.stages, plan.todo, progress)
        result = RunResult(
            reports=reports,
            discovered=len(videos),
            skipped=plan.done,
            wall_s=time.perf_counter() - start,
            stages=[s.name for s in self.stages],
            settings=self.settings,
            plan=plan,
            engines=dict(getattr(executor, "engines", {})),
        )
        progress.finish()
        for stage in self.stages:
            try:
                stage.finish(result)
            except RunFilesError as exc:
                logger.error("%s", exc)
                result.run_files_error = str(exc)
        return result
