from __future__ import annotations

from pathlib import Path

import pytest

from vidcap.data import CAPTION_FAMILIES
from vidcap.errors import ConfigError
from vidcap.models.registry import CAPTION_MODELS, ENHANCE_MODELS, caption_model, enhance_model

SPEC_TABLE = {
    "qwen2.5": ("qwen", "Qwen/Qwen2.5-VL-7B-Instruct"),
    "qwen3": ("qwen", "Qwen/Qwen3-VL-8B-Instruct"),
    "nemotron": ("nemotron", "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16"),
    "nemotron-bf16": ("nemotron", "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16"),
    "nemotron-fp8": ("nemotron", "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-FP8"),
    "nemotron-nvfp4": ("nemotron", "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-NVFP4-QAD"),
    "nemotron-3-nano-omni": ("nemotron", "nvidia/Nemotron-3-Nano-Omni-30B-A3B-Reasoning"),
}


def test_caption_table_matches_spec() -> None:
    assert {v: (m.family, m.hf_id) for v, m in CAPTION_MODELS.items()} == SPEC_TABLE
    assert {m.family for m in CAPTION_MODELS.values()} <= set(CAPTION_FAMILIES)


def test_enhancement_table() -> None:
    assert ENHANCE_MODELS["qwen2.5"].hf_id == "Qwen/Qwen2.5-14B-Instruct"
    assert ENHANCE_MODELS["qwen3"].hf_id == "Qwen/Qwen3-14B"
    assert ENHANCE_MODELS["qwen3"].chat_template_kwargs == {"enable_thinking": False}


def test_unknown_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"qwen2\.5, qwen3, nemotron"):
        caption_model("llava")
    with pytest.raises(ConfigError, match="algorithm must be one of qwen_lm"):
        enhance_model("gpt", "qwen2.5")


def test_incomplete_sharded_download_is_not_complete(tmp_path: Path) -> None:
    import json

    from vidcap.models.download import is_complete

    (tmp_path / "config.json").write_text("{}")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"x")
    assert not is_complete(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"x")
    assert is_complete(tmp_path)


def test_nemotron_3_nano_omni_runs_with_thinking_off(tiny_nemotron_omni: Path) -> None:
    """Curator 1.4's Omni: on vllm and openai only, its template told to skip reasoning; the prompt as its
    tokenizer renders it (the engine test in tests/on_vllm runs it on vLLM)."""
    import json

    import numpy as np

    from vidcap.models.backends.hf import load_tokenizer
    from vidcap.models.inputs import input_format

    spec = caption_model("nemotron-3-nano-omni")
    assert spec.backends == ("vllm", "openai") and spec.chat_template_kwargs == {"enable_thinking": False}
    assert spec.misfit(json.loads((tiny_nemotron_omni / "config.json").read_text())) is None
    assert "Nemotron 3 Nano Omni" in str(caption_model("qwen2.5").misfit({"model_type": spec.model_type,
                                                                       "vision_config": {}}))  # fmt: skip
    frames = np.zeros((4, 512, 512, 3), np.uint8)
    request = input_format(spec, load_tokenizer(tiny_nemotron_omni)).build(
        "Describe.", frames, [0, 8, 16, 24], 25.0, 32
    )
    assert request.prompt is not None
    assert request.prompt.endswith("<|im_start|>assistant\n<think></think>") and "/no_think" not in request.prompt
    assert "<video>\nDescribe." in request.prompt
    from vidcap.stages import CaptionGenerationStage

    with pytest.raises(ConfigError, match="nemotron-3-nano-omni cannot run on the transformers backend"):
        CaptionGenerationStage(model_variant="nemotron-3-nano-omni", backend="transformers")
