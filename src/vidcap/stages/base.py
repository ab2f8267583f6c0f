"""The one small base class every stage builds on.

A stage is a dataclass of its settings (cheap, picklable; each field a ``param``
that says its flag, help and range) plus hooks: ``setup_on_node`` fetches
weights once per machine, ``setup`` loads heavy things once per worker,
``process`` handles one task (a video, or some clips of one), ``teardown`` frees
them. Model stages also take ``process_batch``: tasks from several videos at
once, so a model gets full batches. A stage declares as data what it takes:
``resources`` (cpus, gpus, GPU memory), ``frames`` (what it needs decoded from
each window), ``reads`` (the payloads it uses, dropped after their last
reader). Executors read these and never the reverse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vidcap.frames import FrameSpec
from vidcap.params import check_params, param_of, require_range

__all__ = ["PAYLOADS", "Reader", "Resources", "Stage", "Writer", "require_range"]

if TYPE_CHECKING:
    from vidcap.data import Video
    from vidcap.output.ledger import Plan
    from vidcap.report import RunResult


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage takes, as plain data: executors translate it for their engine. ``gpus`` is a
    wish: where no GPU exists the stage runs on the CPU. ``gpu_memory_gb`` is what its model needs, by which
    stages that share a GPU split it."""

    cpus: float = 1.0
    gpus: float = 0.0
    gpu_memory_gb: float = 0.0


# Payloads every task may carry besides named frames (``frames:<name>``, see vidcap.frames).
# ``video.source``: the source file itself, which a source in object storage needs copied to the stage's machine.
PAYLOADS = ("video.source", "clip.buffer", "window.mp4_bytes", "window.llm_input", "window.webp_bytes")


class Stage:
    name: ClassVar[str] = "stage"
    # The payloads this stage reads (of PAYLOADS, or ``frames:<name>``): each is dropped once its last reader is
    # done with a task.
    reads: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        if dataclasses.is_dataclass(self):
            check_params(self)

    @property
    def resources(self) -> Resources:
        """This stage's worker: its own needs, or what the run set (``set_resources``)."""
        return self.__dict__.get("_resources") or self.default_resources()

    def default_resources(self) -> Resources:
        return Resources()

    def set_resources(self, **changes: float) -> Stage:
        """Override this run's resources for the stage (cpus, gpus, gpu_memory_gb); returns the stage."""
        self.__dict__["_resources"] = dataclasses.replace(self.resources, **changes)
        return self

    @property
    def frames(self) -> dict[str, FrameSpec]:
        """The frames this stage needs from each window, by name (see vidcap.frames); the window step decodes
        each clip once for all of them. It reads them as ``frames:<name>``."""
        return {}

    @property
    def batch_size(self) -> int | None:
        """Windows this stage wants per ``process_batch`` call (model stages); None: one task at a time."""
        return None

    def share_gpu(self, share: float) -> None:
        """Run on ``share`` of one GPU (set by executors when GPU stages share devices)."""

    def bind(self, stages: list[Stage]) -> None:
        """Once, when the pipeline is built: check the stages around this one (ConfigError if they don't fit).
        A stage may read what others declare (their ``frames``), never change them."""

    def settings(self) -> dict[str, Any]:
        """The settings that shape this stage's output (not speed knobs): a changed value redoes videos."""
        if not dataclasses.is_dataclass(self):
            return {}
        out = {}
        for f in dataclasses.fields(self):
            p = param_of(f)
            if f.init and not (p is not None and p.runtime):
                out[f.name] = getattr(self, f.name)
        return out

    def prepare(self) -> None:
        """Once, on the driver, before any video: check settings and the environment (no model is loaded and
        nothing is fetched here: the driver of a cluster may have no GPU and no disk for weights).

        Raise ConfigError to stop the run with a sentence for the user.
        """

    def setup_on_node(self) -> None:
        """Once per machine the stage runs on, before its workers start there: fetch weights into the node's
        model folder. Raise ConfigError when that cannot be done."""

    def setup(self) -> None:
        """Once per worker, before its first video: load models and other heavy state."""

    def is_done(self, video: Video) -> bool:
        """True when this video's results are already whole on disk (resume)."""
        return False

    def process(self, video: Video) -> Video:
        """One task in, the same task out; a filter moves clips to ``video.filtered_clips``
        (``video.filter_clip``) with a reason, and executors split long videos into tasks."""
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

    def keep_out(self, folders: list[Path | str]) -> None:
        """Never take files under ``folders`` (a writer's own output) as input; refuse an input inside one."""


class Writer(Stage):
    """Last stage of a pipeline: puts each task's results on disk, and each video's marker once all its
    tasks are through (``complete``, on the driver); knows which videos are already done."""

    def plan(self, videos: list[Video], limit: int | None = None) -> Plan:
        raise NotImplementedError

    def complete(self, video: Video) -> None:
        """All tasks of ``video`` are written (``video`` holds them all again): mark it done."""
