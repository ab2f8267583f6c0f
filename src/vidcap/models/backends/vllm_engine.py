"""vLLM backend (GPU): one engine per worker. vllm is imported only when an engine is built,
so the request building below runs and is tested anywhere."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidcap.models.backends.base import SAMPLING, Backend, Generation, Request, Result
from vidcap.models.inputs import LLMInput
from vidcap.models.registry import CaptionModel, EnhanceModel

logger = logging.getLogger(__name__)

MAX_MODEL_LEN = 32768
# Of the GPU memory this engine may take (its share of the GPU), what vLLM may reserve.
GPU_MEMORY_UTILIZATION = 0.85


def engine_kwargs(
    spec: CaptionModel | EnhanceModel, model_path: Path, *, fp8: bool, gpu_share: float = 1.0
) -> dict[str, Any]:
    """Arguments for ``vllm.LLM``: quantisation from the variant's weights, or fp8 when asked;
    memory from this engine's share of the GPU."""
    gpu_memory_utilization = round(GPU_MEMORY_UTILIZATION * gpu_share, 3)
    quantization = getattr(spec, "quantization", None) or (spec.fp8_quantization if fp8 else None)
    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "quantization": quantization,
        "max_model_len": MAX_MODEL_LEN,
        "gpu_memory_utilization": gpu_memory_utilization,
        "trust_remote_code": getattr(spec, "trust_remote_code", False),
    }
    if isinstance(spec, CaptionModel):
        kwargs["limit_mm_per_prompt"] = {"image": 0, "video": 1}
        kwargs.update(spec.engine_kwargs)
    return kwargs


def sampling_kwargs(max_tokens: int, stop: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "temperature": SAMPLING.temperature,
        "top_p": SAMPLING.top_p,
        "repetition_penalty": SAMPLING.repetition_penalty,
        "min_tokens": min(SAMPLING.min_tokens, max_tokens),
        "max_tokens": max_tokens,
        "stop": list(stop) or None,
    }


def build_request(request: Request, spec: CaptionModel | EnhanceModel) -> dict[str, Any]:
    """One ``LLM.generate`` prompt dict: the templated prompt and, for a window, its frames."""
    if request.prompt is None:
        raise ValueError("vLLM needs the chat-templated prompt; the input was built without the model's processor")
    if not isinstance(request, LLMInput):
        return {"prompt": request.prompt}
    assert isinstance(spec, CaptionModel)
    if spec.video_with_metadata:
        # Frame times come from these indices at the source rate; nothing is resampled.
        metadata = {**request.video_metadata(), "do_sample_frames": False}
        return {"prompt": request.prompt, "multi_modal_data": {"video": (request.frames, metadata)}}
    return {
        "prompt": request.prompt,
        "multi_modal_data": {"video": request.frames},
        "mm_processor_kwargs": {"fps": request.sampled_fps, "do_sample_frames": False},
    }


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(
        self, spec: CaptionModel | EnhanceModel, model_path: Path, *, fp8: bool = False, gpu_share: float = 1.0
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError("the vllm backend needs vLLM on a CUDA machine: pip install -e '.[vllm]'") from exc
        self.spec = spec
        kwargs = engine_kwargs(spec, model_path, fp8=fp8, gpu_share=gpu_share)
        logger.info("vllm: building engine %s", {k: v for k, v in kwargs.items() if k != "model"})
        self.llm = LLM(**kwargs)

    def generate(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        from vllm import SamplingParams

        params = SamplingParams(**sampling_kwargs(max_tokens, getattr(self.spec, "stop", ())))
        outputs = self.llm.generate([build_request(r, self.spec) for r in requests], params, use_tqdm=False)
        results: list[Result] = []
        for out in outputs:
            best = out.outputs[0]
            results.append(
                Generation(
                    text=best.text.strip(),
                    prompt_tokens=len(out.prompt_token_ids or []),
                    output_tokens=len(best.token_ids),
                    finished=best.finish_reason != "length",
                )
            )
        return results

    def close(self) -> None:
        del self.llm
