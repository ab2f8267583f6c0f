"""What every generation backend offers, and the batch-splitting retry they share."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from vidcap.models.inputs import LLMInput, TextInput

logger = logging.getLogger(__name__)

Request = LLMInput | TextInput
T = TypeVar("T")


@dataclass(frozen=True)
class SamplingSettings:
    """Near-greedy decoding used for captions and enhancement alike."""

    temperature: float = 0.1
    top_p: float = 0.001
    repetition_penalty: float = 1.05
    min_tokens: int = 16


SAMPLING = SamplingSettings()


@dataclass
class Generation:
    text: str
    # None when the backend cannot say (a server that sends no usage).
    prompt_tokens: int | None
    output_tokens: int | None
    # False when the token limit cut the text off.
    finished: bool
    # What a reviewer should know about how this answer was got (e.g. the server chose the frame times).
    notes: tuple[str, ...] = ()


Result = Generation | Exception


class Backend:
    """Turns a batch of requests into generations; one instance per worker, loaded once."""

    name = "backend"

    def generate(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        """One result per request: a Generation, or the exception that request alone hit.

        Raising means the whole batch failed (e.g. out of memory).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Free the model (GPU memory, connections)."""


def generate_isolated(backend: Backend, requests: Sequence[Request], max_tokens: int) -> list[Result]:
    """Generate for a batch; when the batch fails (out of memory, a bad input) retry it in halves.

    A request that fails on its own gets its exception back in its slot; the others are unaffected.
    """
    if not requests:
        return []
    try:
        out = list(backend.generate(requests, max_tokens))
        if len(out) != len(requests):
            raise RuntimeError(f"backend returned {len(out)} results for {len(requests)} requests")
        return out
    except Exception as exc:
        if len(requests) == 1:
            return [exc]
        logger.warning("%s: batch of %d failed (%s); retrying in halves", backend.name, len(requests), exc)
        _free_accelerator_memory()
        half = len(requests) // 2
        return generate_isolated(backend, requests[:half], max_tokens) + generate_isolated(
            backend, requests[half:], max_tokens
        )


class EngineThread:
    """One thread that does everything an engine does (load, generate, close), so that a call can be given a
    deadline: a call that overruns it is left behind (Python cannot stop it) and its caller goes on. The thread
    is a daemon, so a hung engine never keeps the process from ending."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], dict[str, Any], threading.Event]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job, box, done = self._jobs.get()
            try:
                box["out"] = job()
            except BaseException as exc:  # handed to the caller
                box["err"] = exc
            done.set()

    def call(self, job: Callable[[], T], timeout: float | None = None) -> T:
        """``job()`` on the engine's thread; TimeoutError when it has not returned after ``timeout`` seconds."""
        box: dict[str, Any] = {}
        done = threading.Event()
        self._jobs.put((job, box, done))
        if not done.wait(timeout):
            raise TimeoutError(f"no answer within {timeout:.0f} s")
        if "err" in box:
            raise box["err"]
        return box["out"]


# A batch may take this long, plus this much per token asked for, before the engine counts as hung. Generous:
# a 7B model on a CPU is slow; a hung one never answers.
WATCHDOG_FLOOR_S = 600.0
WATCHDOG_PER_TOKEN_S = 0.25


def watchdog_seconds(requests: int, max_tokens: int) -> float:
    return WATCHDOG_FLOOR_S + WATCHDOG_PER_TOKEN_S * requests * max_tokens


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
