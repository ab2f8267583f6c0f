"""The local executor under stress: tight byte limits with batch stages, slow and failing stages, a stage
that cannot start, thousands of tasks. Each run either finishes or stops with a sentence, in bounded time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vidcap.data import Clip, Video
from vidcap.errors import StartError
from vidcap.executors.local import LocalExecutor
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages import Resources, Stage

MB = 1024 * 1024


@dataclass
class Make(Stage):
    """Gives each task a clip carrying ``size`` bytes of media."""

    size: int
    name: ClassVar[str] = "make"

    def default_resources(self) -> Resources:
        return Resources(cpus=1.0)

    def process(self, video: Video) -> Video:
        video.clips = [Clip(uuid=f"{video.relative_path}-c", source_video=str(video.path), start_frame=0,
                            stop_frame=1, fps=1.0, span=(0.0, 1.0), buffer=b"\0" * self.size)]  # fmt: skip
        return video


@dataclass
class Batch(Stage):
    """Takes tasks in batches, like a model stage; may be slow, may fail some tasks."""

    size: int = 4
    delay_s: float = 0.0
    fail_every: int = 0
    calls: list[int] = field(default_factory=list)
    name: ClassVar[str] = "batch"

    @property
    def batch_size(self) -> int:
        return self.size

    def process_batch(self, videos: list[Video]) -> list[Video]:
        self.calls.append(len(videos))
        time.sleep(self.delay_s)
        if self.fail_every and any(int(v.relative_path) % self.fail_every == 0 for v in videos):
            raise RuntimeError("this batch holds a task this stage cannot do")
        return videos


@dataclass
class Sink(Stage):
    """Reads the media (so it travels up to here) and may be slow."""

    delay_s: float = 0.0
    name: ClassVar[str] = "sink"
    reads: ClassVar[frozenset[str]] = frozenset({"clip.buffer"})

    def process(self, video: Video) -> Video:
        time.sleep(self.delay_s)
        return video


@dataclass
class BrokenSetup(Stage):
    name: ClassVar[str] = "broken"

    def setup(self) -> None:
        raise StartError("the model could not load: no such weights")

    def process(self, video: Video) -> Video:
        return video


@dataclass
class Careful(Stage):
    """Slow steps; notes any teardown that comes while a step is still running."""

    inside: int = 0
    torn_down_inside: list[int] = field(default_factory=list)
    lock: Any = field(default_factory=threading.Lock)
    name: ClassVar[str] = "careful"

    def process(self, video: Video) -> Video:
        with self.lock:
            self.inside += 1
        time.sleep(0.3)
        with self.lock:
            self.inside -= 1
        return video

    def teardown(self) -> None:
        self.torn_down_inside.append(self.inside)


@dataclass
class FailAt(Stage):
    """Raises in the run's own thread's way: like Ctrl-C reaching the driver, once ``after`` tasks are through."""

    after: int
    seen: int = 0
    name: ClassVar[str] = "fail_at"

    def process(self, video: Video) -> Video:
        self.seen += 1
        if self.seen == self.after:
            raise KeyboardInterrupt
        return video


def videos(n: int) -> list[Video]:
    return [Video(path=Path(f"/nowhere/{i}.mp4"), relative_path=str(i)) for i in range(n)]


def run_within(seconds: float, stages: list[Stage], tasks: list[Video], **executor: Any) -> list[VideoReport]:
    """Run in a thread; fail the test (not hang it) when the run takes longer than ``seconds``."""
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["reports"] = LocalExecutor(**executor).run(stages, tasks, Progress())
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the run did not finish within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["reports"]


@pytest.mark.parametrize("count", [4, 8, 24])
def test_a_batch_larger_than_the_queue_does_not_deadlock(count: int) -> None:
    """6 MB tasks, batches of 4, 10 MB queues: the batch's second task must wait for room that only the
    consumers of its first task can make, and they sleep once everything before has gone through."""
    for _ in range(3):
        reports = run_within(60, [Make(6 * MB), Batch(size=4), Sink()], videos(count), cpus=2,
                             queue_bytes=10 * MB)  # fmt: skip
        assert len(reports) == count and all(r.status == "ok" for r in reports)


@pytest.mark.parametrize("queue_mb", [1, 7, 50])
def test_tight_queues_with_slow_batches_and_failures(queue_mb: int) -> None:
    batch = Batch(size=3, delay_s=0.02, fail_every=5)
    reports = run_within(90, [Make(2 * MB), batch, Sink(delay_s=0.005)], videos(60), cpus=2,
                         queue_bytes=queue_mb * MB)  # fmt: skip
    assert len(reports) == 60
    failed = sorted(int(r.relative_path) for r in reports if r.status == "failed")
    assert failed == list(range(0, 60, 5))  # a failing batch is retried task by task: only those fail
    assert all("cannot do" in r.errors[0]["reason"] for r in reports if r.status == "failed")
    assert max(batch.calls) <= 3


def test_thousands_of_tasks() -> None:
    reports = run_within(120, [Make(1000), Batch(size=16), Sink()], videos(3000), cpus=2, queue_bytes=64 * 1024)
    assert len(reports) == 3000 and {r.status for r in reports} == {"ok"}


def test_a_stage_that_cannot_start_stops_the_run_with_its_sentence() -> None:
    with pytest.raises(StartError, match="no such weights"):
        run_within(30, [Make(100), BrokenSetup(), Sink()], videos(50), cpus=2)


def test_teardown_waits_for_steps_in_progress() -> None:
    careful = Careful()
    with pytest.raises(KeyboardInterrupt):
        run_within(30, [Make(100), careful, FailAt(after=2)], videos(20), cpus=2)
    assert careful.torn_down_inside == [0], "a stage was torn down while a worker was inside its step"
