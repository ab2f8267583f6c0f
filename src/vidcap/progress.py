"""How a run is going: videos and windows done, failures, time left.

Executors report each finished video; a ``Progress`` turns that into a bar
(the CLI) or into log lines (the Python API, every few seconds).
"""

from __future__ import annotations

import logging
import time

from vidcap.report import VideoReport

logger = logging.getLogger("vidcap.progress")


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts what a run has done; subclasses show it."""

    def __init__(self) -> None:
        self.total = 0
        self.videos = 0
        self.windows = 0
        self.failed = 0
        self.started = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()

    def done(self, report: VideoReport) -> None:
        self.videos += 1
        self.windows += report.windows
        self.failed += report.status != "ok"

    def finish(self) -> None:
        """The run's videos are all through (run-level files come next)."""

    def eta_s(self) -> float | None:
        """Seconds left, from the pace so far (None before the first video is done)."""
        if not self.videos:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.videos * (self.total - self.videos)

    def line(self) -> str:
        text = f"{self.videos}/{self.total} videos, {self.windows} windows"
        if self.failed:
            text += f", {self.failed} with errors"
        text += f", {duration(time.monotonic() - self.started)}"
        eta = self.eta_s()
        if eta is not None and self.videos < self.total:
            text += f", about {duration(eta)} left"
        return text


class LogProgress(Progress):
    """Progress as log lines: at the start, then at most every ``every_s`` seconds, and at the end."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last = 0.0

    def start(self, total: int) -> None:
        super().start(total)
        self._last = time.monotonic()
        logger.info("progress: %s", self.line())

    def done(self, report: VideoReport) -> None:
        super().done(report)
        now = time.monotonic()
        if now - self._last >= self.every_s or self.videos == self.total:
            self._last = now
            logger.info("progress: %s", self.line())
