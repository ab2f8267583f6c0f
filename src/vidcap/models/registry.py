"""Every model vidcap can run, in one table. Stages look a variant up here; nothing else branches on names."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vidcap.data import ENHANCEMENT_ALGORITHMS as ENHANCE_ALGORITHMS
from vidcap.errors import SettingError


@dataclass(frozen=True)
class PixelBudget:
    """How large a frame may be for the vision tower (qwen-vl-utils' conventions)."""

    # Sides are multiples of this (patch size x spatial merge).
    factor: int
    min_pixels: int
    # Per-frame ceiling, and the ceiling for all frames of one video together.
    max_pixels: int
    total_pixels: int
    temporal_patch: int = 2
    # Whether total_pixels bounds the sum over every frame (Qwen3-VL's processor, and the encoder cache vLLM
    # sizes from it) or over temporal patches (qwen-vl-utils' rule for Qwen2.5-VL: a frame pair counts once).
    total_over_frames: bool = False
    # Every frame at exactly this (width, height), whatever the source's shape: for a model whose
    # processor squashes frames to one size anyway, so they are resized once, not twice.
    fixed_size: tuple[int, int] | None = None

    def max_tokens(self) -> int:
        """Visual tokens of the largest window within this budget (one per factor x factor pixels per patch)."""
        pixels = self.total_pixels * (1 if self.total_over_frames else self.temporal_patch)
        return pixels // (self.factor**2) // self.temporal_patch


@dataclass(frozen=True)
class CaptionModel:
    variant: str
    family: str  # key of Window.caption
    hf_id: str
    # The checkpoint's config.json "model_type": a folder of another kind is refused before loading.
    model_type: str
    input_format: str  # key of vidcap.models.inputs.INPUT_FORMATS
    precision: str
    gpu_memory_gb: int  # rough need with a modest KV cache, for `vidcap models`
    backends: tuple[str, ...]
    budget: PixelBudget
    # vLLM quantization method when these weights are used, and with --captioning-use-fp8-weights.
    quantization: str | None = None
    fp8_quantization: str | None = None
    trust_remote_code: bool = False
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    # Extra stop strings for generation (beyond the tokenizer's end token).
    stop: tuple[str, ...] = ()
    # How vLLM's processor for this family reads a window's metadata (see backends.vllm_engine.video_metadata).
    vllm_video: str = "frame_times"
    # Passed to the chat template (and to an OpenAI server), e.g. to turn a reasoning model's thinking off.
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    # Processor options for frames that arrive sampled and sized: don't resample, don't resize again.
    # Sent to transformers, to vLLM, and to an OpenAI server that takes per-request processor options.
    video_kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def misfit(self, config: dict[str, Any]) -> str | None:
        """Why a checkpoint with this config.json cannot serve this variant (None when it can)."""
        kind = config.get("model_type")
        if kind == self.model_type or self.model_type in (config.get("architectures") or []):
            return None
        other = next((m for m in CAPTION_MODELS.values() if m.model_type == kind), None)
        if other is not None:
            return (
                f"holds a {family_name(str(kind))} model, which {{model_variant}} {self.variant} cannot run: "
                f"pass {{model_variant}} {other.variant}"
            )
        if "vision_config" not in config:
            return (
                f"holds a text-only language model ({kind}), not a vision-language model; captioning with "
                f"{self.variant} needs {family_name(self.model_type)} weights (a text LM is for caption enhancement)"
            )
        return f"holds a {kind} model; {{model_variant}} {self.variant} needs {family_name(self.model_type)} weights"


@dataclass(frozen=True)
class EnhanceModel:
    variant: str
    hf_id: str
    precision: str
    gpu_memory_gb: int
    backends: tuple[str, ...]
    # Passed to the chat template, e.g. to turn Qwen3's thinking off.
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    fp8_quantization: str | None = "fp8"

    def misfit(self, config: dict[str, Any]) -> str | None:
        """Why a checkpoint with this config.json cannot rewrite captions (None when it can)."""
        kind = config.get("model_type")
        if "vision_config" in config or any(m.model_type == kind for m in CAPTION_MODELS.values()):
            return (
                f"holds a vision-language model ({family_name(str(kind))}); enhancement rewrites text with a "
                f"text LM such as {self.hf_id} (a vision-language model is for captioning)"
            )
        architectures = config.get("architectures") or []
        if architectures and not any(str(a).endswith("ForCausalLM") for a in architectures):
            return f"holds a {architectures[0]}, not a causal language model that can rewrite text"
        return None


QWEN25_BUDGET = PixelBudget(factor=28, min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28, total_pixels=24576 * 28 * 28)
QWEN3_BUDGET = PixelBudget(
    factor=32, min_pixels=128 * 32 * 32, max_pixels=768 * 32 * 32, total_pixels=24576 * 32 * 32, total_over_frames=True
)
# Nemotron Nano VL's processor squashes each video frame to one 512x512 tile (vLLM's video_to_pixel_values).
# Nano v2 gives each frame its own tile (no temporal patches).
NEMOTRON_BUDGET = PixelBudget(
    factor=32,
    min_pixels=512 * 512,
    max_pixels=512 * 512,
    total_pixels=128 * 512 * 512,
    temporal_patch=1,
    total_over_frames=True,
    fixed_size=(512, 512),
)

QWEN_VIDEO_KWARGS = {"do_sample_frames": False, "do_resize": False}

ALL_BACKENDS = ("vllm", "transformers", "openai")
NEMOTRON_BACKENDS = ("vllm", "openai")

_NEMOTRON = dict(
    family="nemotron",
    model_type="NemotronH_Nano_VL_V2",
    input_format="nemotron_vl",
    budget=NEMOTRON_BUDGET,
    trust_remote_code=True,
    # Efficient video sampling (token pruning) off: every sampled frame reaches the model.
    engine_kwargs={"video_pruning_rate": 0.0},
    stop=("</s>", "<|endoftext|>", "<SPECIAL_12>", "</think>"),
    vllm_video="milliseconds",
)

NEMOTRON_BF16 = CaptionModel(
    variant="nemotron",
    hf_id="nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16",
    precision="bf16",
    gpu_memory_gb=32,
    backends=NEMOTRON_BACKENDS,
    fp8_quantization="fp8",
    **_NEMOTRON,  # type: ignore[arg-type]
)
# The BF16 checkpoint loads as bfloat16 whatever its config says (vLLM's vision path casts to bf16 anyway).
NEMOTRON_BF16 = replace(NEMOTRON_BF16, engine_kwargs={**NEMOTRON_BF16.engine_kwargs, "dtype": "bfloat16"})

CAPTION_MODELS: dict[str, CaptionModel] = {
    m.variant: m
    for m in [
        CaptionModel(
            variant="qwen2.5",
            family="qwen",
            hf_id="Qwen/Qwen2.5-VL-7B-Instruct",
            model_type="qwen2_5_vl",
            input_format="qwen_vl",
            precision="bf16",
            gpu_memory_gb=24,
            backends=ALL_BACKENDS,
            budget=QWEN25_BUDGET,
            fp8_quantization="fp8",
            vllm_video="sampled_rate",
            video_kwargs=QWEN_VIDEO_KWARGS,
        ),
        CaptionModel(
            variant="qwen3",
            family="qwen",
            hf_id="Qwen/Qwen3-VL-8B-Instruct",
            model_type="qwen3_vl",
            input_format="qwen_vl",
            precision="bf16",
            gpu_memory_gb=26,
            backends=ALL_BACKENDS,
            budget=QWEN3_BUDGET,
            fp8_quantization="fp8",
            video_kwargs=QWEN_VIDEO_KWARGS,
        ),
        NEMOTRON_BF16,
        replace(NEMOTRON_BF16, variant="nemotron-bf16"),  # the same weights under both names
        CaptionModel(
            variant="nemotron-fp8",
            hf_id="nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-FP8",
            precision="fp8",
            gpu_memory_gb=20,
            backends=NEMOTRON_BACKENDS,
            quantization="modelopt",
            **_NEMOTRON,  # type: ignore[arg-type]
        ),
        # NeMo Curator 1.4's addition: the same vLLM model code as Nano v2 VL (NemotronH_Nano_VL_V2), a 30B-A3B
        # hybrid MoE language model. It reasons unless told not to: thinking off for captions.
        CaptionModel(
            variant="nemotron-3-nano-omni",
            hf_id="nvidia/Nemotron-3-Nano-Omni-30B-A3B-Reasoning",
            precision="bf16",
            gpu_memory_gb=72,
            backends=NEMOTRON_BACKENDS,
            fp8_quantization="fp8",
            chat_template_kwargs={"enable_thinking": False},
            note="reasoning model: thinking off for captions",
            **{
                **_NEMOTRON,
                "model_type": "NemotronH_Nano_Omni_Reasoning_V3",
                "input_format": "nemotron_omni",
                "engine_kwargs": NEMOTRON_BF16.engine_kwargs,
            },  # type: ignore[arg-type]
        ),
        CaptionModel(
            variant="nemotron-nvfp4",
            hf_id="nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-NVFP4-QAD",
            precision="nvfp4",
            gpu_memory_gb=14,
            backends=NEMOTRON_BACKENDS,
            quantization="modelopt_fp4",
            note="NVFP4 kernels need a Blackwell GPU",
            **_NEMOTRON,  # type: ignore[arg-type]
        ),
    ]
}

ENHANCE_MODELS: dict[str, EnhanceModel] = {
    m.variant: m
    for m in [
        EnhanceModel(
            variant="qwen2.5",
            hf_id="Qwen/Qwen2.5-14B-Instruct",
            precision="bf16",
            gpu_memory_gb=34,
            backends=ALL_BACKENDS,
        ),
        EnhanceModel(
            variant="qwen3",
            hf_id="Qwen/Qwen3-14B",
            precision="bf16",
            gpu_memory_gb=34,
            backends=ALL_BACKENDS,
            chat_template_kwargs={"enable_thinking": False},
        ),
    ]
}


# Older NeMo Curator scripts' names for vidcap's variants (their --captioning-algorithm qwen is Qwen2.5-VL-7B);
# Curator 1.4 names its variants as vidcap does.
CAPTION_ALIASES: dict[str, str] = {"qwen": "qwen2.5"}
ENHANCE_ALIASES: dict[str, str] = {"qwen": "qwen_lm"}  # --enhance-captions-algorithm
ENHANCE_MODEL_ALIASES: dict[str, str] = {"qwen": "qwen2.5"}  # CaptionEnhancementStage(model_variant=)


def caption_variant(name: str) -> str:
    """A variant by vidcap's or NeMo Curator's name, as vidcap names it."""
    return CAPTION_ALIASES.get(name, name)


def caption_model(variant: str) -> CaptionModel:
    try:
        return CAPTION_MODELS[caption_variant(variant)]
    except KeyError:
        raise SettingError(
            "model_variant",
            f"captioning model variant {{model_variant}} must be one of {', '.join(CAPTION_MODELS)}, got {variant!r}",
        ) from None


def enhance_model(algorithm: str, variant: str) -> EnhanceModel:
    algorithm = ENHANCE_ALIASES.get(algorithm, algorithm)
    if algorithm not in ENHANCE_ALGORITHMS:
        raise SettingError(
            "algorithm",
            f"enhancement {{algorithm}} must be one of {', '.join(ENHANCE_ALGORITHMS)}, got {algorithm!r}",
        )
    try:
        return ENHANCE_MODELS[variant]
    except KeyError:
        raise SettingError(
            "model_variant",
            f"enhancement model variant {{model_variant}} must be one of {', '.join(ENHANCE_MODELS)}, got {variant!r}",
        ) from None


def family_name(model_type: str) -> str:
    """A readable name for a config.json model_type, for messages."""
    names = {"qwen2_5_vl": "Qwen2.5-VL", "qwen3_vl": "Qwen3-VL", "NemotronH_Nano_VL_V2": "Nemotron Nano VL v2",
             "NemotronH_Nano_Omni_Reasoning_V3": "Nemotron 3 Nano Omni"}  # fmt: skip
    return names.get(model_type, model_type)
