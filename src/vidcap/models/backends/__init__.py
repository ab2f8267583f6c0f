"""Generation backends and the one place that picks and builds them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidcap.errors import ConfigError, SettingError
from vidcap.models.backends.base import Backend, Generation, generate_isolated
from vidcap.models.inputs import InputFormat
from vidcap.models.registry import CaptionModel, EnhanceModel

BACKEND_CHOICES = ("auto", "vllm", "transformers", "openai")

__all__ = [
    "BACKEND_CHOICES",
    "Backend",
    "EngineOptions",
    "Generation",
    "build_backend",
    "generate_isolated",
    "resolve_backend",
]


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def vllm_usable() -> bool:
    return importlib.util.find_spec("vllm") is not None and cuda_available()


def resolve_backend(name: str, spec: CaptionModel | EnhanceModel, what: str) -> str:
    """The concrete backend for ``name`` ("auto": vLLM when importable with a GPU, else transformers)."""
    if name not in BACKEND_CHOICES:
        raise SettingError("backend", f"{what} {{backend}} must be one of {', '.join(BACKEND_CHOICES)}, got {name!r}")
    if name == "auto":
        name = "vllm" if vllm_usable() else "transformers"
    if name not in spec.backends:
        raise SettingError(
            "backend",
            f"{what} {spec.variant} cannot run on the {name} backend; {{backend}} takes one of: "
            f"{', '.join(spec.backends)}",
        )
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"the vllm backend for the {what} needs vLLM on a CUDA machine: pip install -e '.[vllm]'")
    if name in ("transformers",) and importlib.util.find_spec("transformers") is None:
        raise ConfigError(f"the transformers backend for the {what} needs: pip install -e '.[models]'")
    if name == "openai" and importlib.util.find_spec("openai") is None:
        raise ConfigError(f"the openai backend for the {what} needs: pip install -e '.[models]'")
    return name


@dataclass(frozen=True)
class EngineOptions:
    """How a model stage wants its backend run (the parts that are not the model itself)."""

    fp8: bool = False
    gpu_share: float = 1.0
    max_output_tokens: int = 512
    openai_base_url: str | None = None
    openai_concurrency: int = 8
    openai_timeout_s: float = 300.0
    openai_media: str = "auto"
    # Requests per engine call (a model stage's batch), for what the engine reserves.
    batch_size: int = 16
    # vLLM's cache of processed multimodal inputs (a window is seen once: off by default).
    mm_cache: bool = False


def build_backend(
    name: str,
    spec: CaptionModel | EnhanceModel,
    *,
    model_path: Path | None,
    model_name: str,
    options: EngineOptions,
    vision: InputFormat | None = None,
    tokenizer: Any | None = None,
) -> Backend:
    """Load the backend in this worker; heavy imports happen here, not at module import."""
    if name == "openai":
        from vidcap.models.backends.openai_api import OpenAIBackend
        from vidcap.models.backends.vllm_engine import video_metadata

        def video_options(inp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            # Frame times as vLLM reads them, every frame kept (vLLM keeps 32 unless told), no resizing.
            assert isinstance(spec, CaptionModel)
            return {**video_metadata(inp, spec.vllm_video), "num_frames": -1}, dict(spec.video_kwargs)

        return OpenAIBackend(
            model_name,
            options.openai_base_url,
            concurrency=options.openai_concurrency,
            timeout_s=options.openai_timeout_s,
            stop=getattr(spec, "stop", ()),
            chat_template_kwargs=getattr(spec, "chat_template_kwargs", None),
            media=options.openai_media,
            video_options=video_options if isinstance(spec, CaptionModel) else None,
            largest_window_tokens=spec.budget.max_tokens() if isinstance(spec, CaptionModel) else None,
        )
    assert model_path is not None
    if name == "vllm":
        from vidcap.models.backends.vllm_engine import VLLMBackend

        return VLLMBackend(
            spec, model_path, fp8=options.fp8, gpu_share=options.gpu_share,
            max_output_tokens=options.max_output_tokens, batch=options.batch_size,
            overrides={"mm_processor_cache_gb": 0} if isinstance(spec, CaptionModel) and not options.mm_cache else None,
        )  # fmt: skip
    from vidcap.models.backends.hf import TransformersBackend

    return TransformersBackend(model_path, vision=vision, tokenizer=tokenizer)
