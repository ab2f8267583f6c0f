"""What every generation backend offers, and the batch-splitting retry they share."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from vidcap.models.inputs import LLMInput, TextInput

logger = logging.getLogger(__name__)

Request = LLMInput | TextInput


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
    prompt_tokens: int
    output_tokens: int
    # False when the token limit cut the text off.
    finished: bool


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


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
