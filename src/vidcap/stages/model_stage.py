"""What the two model stages share: resolving backend and weights before work, and batching."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from vidcap.data import Window
from vidcap.errors import describe
from vidcap.models.backends import Backend, Generation, cuda_available, generate_isolated, resolve_backend
from vidcap.models.backends.base import Request
from vidcap.models.download import resolve_weights
from vidcap.models.registry import CaptionModel, EnhanceModel
from vidcap.stages.base import Resources

logger = logging.getLogger(__name__)

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def resolve_model(
    backend: str, spec: CaptionModel | EnhanceModel, model: str | None, model_dir: str, *, what: str, flag: str
) -> tuple[str, Path | None]:
    """(backend name, local weights folder or None for an endpoint); fetches weights on first use."""
    name = resolve_backend(backend, spec, what)
    if name == "openai":
        return name, None
    return name, resolve_weights(model, spec.hf_id, model_dir, what=f"{what} {spec.variant}", flag=flag)


def model_resources(backend: str) -> Resources:
    """A GPU for vLLM or a CUDA transformers model; a CPU for endpoints and CPU inference."""
    if backend == "vllm" or (backend in ("auto", "transformers") and cuda_available()):
        return Resources(cpus=1.0, gpus=1.0)
    return Resources(cpus=1.0)


def run_batches(
    backend: Backend,
    windows: Sequence[Window],
    requests: Sequence[Request],
    *,
    batch_size: int,
    max_tokens: int,
    on_result: Callable[[Window, Generation], None],
    on_error: Callable[[Window, str], None],
) -> None:
    """Generate for every window in batches; a failure is recorded on its window only."""
    for pairs in chunks(list(zip(windows, requests, strict=True)), batch_size):
        results = generate_isolated(backend, [r for _, r in pairs], max_tokens)
        for (window, _), result in zip(pairs, results, strict=True):
            if isinstance(result, Generation):
                on_result(window, result)
            else:
                on_error(window, describe(result))
