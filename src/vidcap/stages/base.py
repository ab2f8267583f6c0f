"""The one small base class every stage builds on.

A stage is a dataclass of its settings (cheap, picklable) plus three hooks:
``setup`` loads heavy things once per worker, ``process`` handles one video,
``teardown`` frees them. Executors read ``resources`` and never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from vidcap.errors import ConfigError

if TYPE_CHECKING:
    from vidcap.data import Video
    from vidcap.pipeline import RunResult


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0


class Stage:
    name: ClassVar[str] = "stage"

    @property
    def resources(self) -> Resources:
        return Resources()

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
        raise NotImplementedError

    def teardown(self) -> None:
        """Once per worker after its last video."""

    def finish(self, result: RunResult) -> None:
        """Once, on the driver, after every video: write run-level outputs."""


class Reader(Stage):
    """First stage of a pipeline: finds the videos to process."""

    def discover(self) -> list[Video]:
        raise NotImplementedError


def require_range(name: str, value: float, low: float, high: float | None = None) -> None:
    """Raise ConfigError unless ``low <= value (<= high)``."""
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bounds}, got {value}")
