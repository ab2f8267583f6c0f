"""In-process executor: each stage runs in its own thread, videos stream through bounded queues.

While one video is being captioned the next is already being decoded and the
previous one previewed and written, so the CPU stages feed the GPU instead of
waiting for it. ffmpeg, PyAV and torch release the GIL for their heavy work.
Each stage is set up in its own thread, so CPU work starts while a model loads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from vidcap.data import Video
from vidcap.executors.base import Executor, run_stage, run_video, share_gpus
from vidcap.progress import Progress
from vidcap.report import VideoReport
from vidcap.stages.base import Stage

logger = logging.getLogger(__name__)

_DONE = object()


def _gpus_here(stages: Sequence[Stage]) -> float:
    """One GPU when some stage wants one and CUDA is there (torch is imported only then)."""
    if not any(s.resources.gpus for s in stages):
        return 0.0
    from vidcap.models.backends import cuda_available

    return 1.0 if cuda_available() else 0.0


class LocalExecutor(Executor):
    def __init__(self, queue_size: int = 2, threaded: bool = True) -> None:
        # queue_size bounds the videos held between two stages (memory).
        self.queue_size = queue_size
        self.threaded = threaded

    def run(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        if not videos:
            return []  # nothing to do: no model is loaded
        # Every stage runs in this process on the first GPU: model stages share it.
        share_gpus(stages, _gpus_here(stages))
        try:
            if self.threaded and len(stages) > 1:
                return self._run_threaded(stages, videos, progress)
            for stage in stages:
                stage.setup()
            return self._run_serial(stages, videos, progress)
        finally:
            for stage in stages:
                stage.teardown()

    def _run_serial(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        reports: list[VideoReport] = []
        for video in videos:
            report = run_video(stages, video)
            progress.done(report)
            reports.append(report)
        return reports

    def _run_threaded(self, stages: Sequence[Stage], videos: Sequence[Video], progress: Progress) -> list[VideoReport]:
        queues: list[queue.Queue] = [queue.Queue(maxsize=self.queue_size) for _ in stages]
        queues.append(queue.Queue())
        failures: list[BaseException] = []
        # Setups run one at a time: two models loading at once double the peak memory, and importing
        # transformers from two threads at once can fail half-way.
        setup_lock = threading.Lock()

        def work(i: int, stage: Stage) -> None:
            inbox, outbox = queues[i], queues[i + 1]
            try:
                with setup_lock:
                    stage.setup()
            except BaseException as exc:  # e.g. a model that cannot load: the run stops with its reason
                failures.append(exc)
            while True:
                item = inbox.get()
                if item is _DONE:
                    outbox.put(_DONE)
                    return
                if failures:
                    outbox.put(item)  # drain without work once something is broken
                    continue
                try:
                    outbox.put(run_stage(stage, item))
                except BaseException as exc:  # keep the pipeline draining
                    failures.append(exc)
                    outbox.put(item)

        threads = [
            threading.Thread(target=work, args=(i, s), name=f"vidcap-{s.name}", daemon=True)
            for i, s in enumerate(stages)
        ]
        for t in threads:
            t.start()

        def feed() -> None:
            for video in videos:
                queues[0].put(video)
            queues[0].put(_DONE)

        feeder = threading.Thread(target=feed, name="vidcap-feed", daemon=True)
        feeder.start()
        reports: list[VideoReport] = []
        while (item := queues[-1].get()) is not _DONE:
            if failures:
                continue
            report = VideoReport.from_video(item)
            progress.done(report)
            reports.append(report)
        for t in [feeder, *threads]:
            t.join()
        if failures:
            raise failures[0]
        return reports
