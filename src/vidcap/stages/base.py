"""The one small base class every stage builds on.

A stage is a dataclass of its settings (cheap, picklable) plus three hooks:
``setup`` loads heavy things once per worker, ``process`` handles one task (a
video, or some clips of one), ``teardown`` frees them. Model stages also take
``process_batch``: tasks from several videos at once, so a model gets full
batches. Executors read ``resources``, ``batch_size`` and ``reads`` (which
payloads a stage uses, so they are dropped after their last reader) and never
the reverse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vidcap.errors import SettingError

if TYPE_CHECKING:
    from vidcap.data import Video
    from vidcap.output.ledger import Plan
    from vidcap.report import RunResult


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0


# Payloads a stage may read (see Stage.reads): the media a task carries between stages.
PAYLOADS = (
    "clip.buffer",
    "window.mp4_bytes",
    "window.preview_frames",
    "window.frames",
    "window.llm_input",
    "window.webp_bytes",
)


class Stage:
    name: ClassVar[str] = "stage"
    # Fields that change speed or logging, never results; left out of ``settings``.
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"verbose", "num_cpus_per_worker"})
    # The payloads (of PAYLOADS) this stage reads: each is dropped once its last reader is done with a task.
    reads: ClassVar[frozenset[str]] = frozenset()

    @property
    def resources(self) -> Resources:
        return Resources()

    @property
    def batch_size(self) -> int | None:
        """Windows this stage wants per ``process_batch`` call (model stages); None: one task at a time."""
        return None

    @property
    def gpu_weight(self) -> float:
        """How much of a shared GPU this stage should get relative to other GPU stages."""
        return self.resources.gpus

    def share_gpu(self, share: float) -> None:
        """Run on ``share`` of one GPU (set by executors when GPU stages share devices)."""

    def bind(self, stages: list[Stage]) -> None:
        """Once, when the pipeline is built: check the stages around this one (ConfigError if they don't fit)."""

    def settings(self) -> dict[str, Any]:
        """The settings that shape this stage's output (not speed knobs): a changed value redoes videos."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.init and f.name not in self.runtime_fields
        }

    def prepare(self) -> None:
        """Once, on the driver, before any video: check the environment, fetch weights.

        Raise ConfigError to stop the run with a sentence for the user.
        """

    def setup(self) -> None:
        """Once per worker, before its first video: load models and other heavy state."""

    def is_done(self, video: Video) -> bool:
        """True when this video's results are already whole on disk (resume)."""
        return False

    def process(self, video: Video) -> Video:
        """One task in, the same task out (executors split long videos into tasks, not stages)."""
        raise NotImplementedError

    def process_batch(self, videos: list[Video]) -> list[Video]:
        """Several tasks at once; by default one after the other."""
        return [self.process(video) for video in videos]

    def teardown(self) -> None:
        """Once per worker after its last video."""

    def finish(self, result: RunResult) -> None:
        """Once, on the driver, after every video: write run-level outputs."""


class Reader(Stage):
    """First stage of a pipeline: finds the videos to process."""

    def discover(self) -> list[Video]:
        raise NotImplementedError

    def keep_out(self, folders: list[Path]) -> None:
        """Never take files under ``folders`` (a writer's own output) as input; refuse an input inside one."""


class Writer(Stage):
    """Last stage of a pipeline: puts each task's results on disk, and each video's marker once all its
    tasks are through (``complete``, on the driver); knows which videos are already done."""

    def plan(self, videos: list[Video], limit: int | None = None) -> Plan:
        raise NotImplementedError

    def complete(self, video: Video) -> None:
        """All tasks of ``video`` are written (``video`` holds them all again): mark it done."""


def require_range(name: str, value: float, low: float, high: float, *, integer: bool = False) -> None:
    """Raise SettingError unless ``value`` is a finite number with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise SettingError(name, f"{{{name}}} must be {'a whole' if integer else 'a'} number, got {value!r}")
    if not math.isfinite(value) or value < low or value > high:
        raise SettingError(name, f"{{{name}}} must be between {low:g} and {high:g}, got {value}")
