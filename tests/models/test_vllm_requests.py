"""What the vllm backend would send, checked without vLLM installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vidcap.models.backends.vllm_engine import VLLMBackend, build_request, engine_kwargs, sampling_kwargs
from vidcap.models.inputs import TextInput, input_format
from vidcap.models.registry import caption_model, enhance_model


def _input(variant: str, processor: object | None = None):  # type: ignore[no-untyped-def]
    frames = np.zeros((4, 64, 96, 3), dtype=np.uint8)
    return input_format(caption_model(variant), processor).build("Describe.", frames, [0, 20, 40, 59], 30.0, 60)


def test_qwen3_sends_frames_with_their_metadata(tiny_qwen3: Path) -> None:
    from transformers import AutoProcessor

    inp = _input("qwen3", AutoProcessor.from_pretrained(str(tiny_qwen3)))
    req = build_request(inp, caption_model("qwen3"))
    assert req["prompt"] == inp.prompt and "<|video_pad|>" in req["prompt"]
    frames, meta = req["multi_modal_data"]["video"]
    assert frames is inp.frames
    assert meta["fps"] == 30.0 and meta["frames_indices"] == [0, 20, 40, 59]
    assert meta["total_num_frames"] == 60 and meta["do_sample_frames"] is False
    assert "mm_processor_kwargs" not in req


def test_qwen25_sends_frames_and_their_rate(tiny_qwen25: Path) -> None:
    from transformers import AutoProcessor

    inp = _input("qwen2.5", AutoProcessor.from_pretrained(str(tiny_qwen25)))
    req = build_request(inp, caption_model("qwen2.5"))
    assert req["multi_modal_data"]["video"] is inp.frames
    # 4 frames over 59 source frames at 30 fps: 3 gaps in 59/30 s.
    assert req["mm_processor_kwargs"] == {"fps": pytest.approx(3 / (59 / 30)), "do_sample_frames": False}


def test_nemotron_prompt_layout_and_request() -> None:
    from tiny_models import build_tokenizer

    tok = build_tokenizer()
    fmt = input_format(caption_model("nemotron-fp8"), tok)
    inp = fmt.build("Describe the traffic.", np.zeros((4, 64, 64, 3), np.uint8), [0, 10, 20, 30], 10.0, 31)
    assert fmt.template_messages(inp.messages) == [
        {"role": "system", "content": "/no_think"},
        {"role": "user", "content": "<video>\nDescribe the traffic."},
    ]
    assert inp.prompt is not None and "<video>\nDescribe the traffic." in inp.prompt
    req = build_request(inp, caption_model("nemotron-fp8"))
    _frames, meta = req["multi_modal_data"]["video"]
    assert meta["frames_indices"] == [0, 10, 20, 30] and meta["fps"] == 10.0


def test_request_needs_templated_prompt() -> None:
    with pytest.raises(ValueError, match="chat-templated prompt"):
        build_request(_input("qwen2.5"), caption_model("qwen2.5"))


@pytest.mark.parametrize(
    ("variant", "fp8", "quantization", "remote"),
    [
        ("qwen2.5", False, None, False),
        ("qwen2.5", True, "fp8", False),
        ("qwen3", True, "fp8", False),
        ("nemotron", False, None, True),
        ("nemotron-bf16", True, "fp8", True),
        ("nemotron-fp8", False, "modelopt", True),
        ("nemotron-nvfp4", False, "modelopt_fp4", True),
    ],
)
def test_engine_quantisation_per_variant(variant: str, fp8: bool, quantization: str | None, remote: bool) -> None:
    kwargs = engine_kwargs(caption_model(variant), Path("/m"), fp8=fp8)
    assert kwargs["quantization"] == quantization
    assert kwargs["trust_remote_code"] is remote
    assert kwargs["limit_mm_per_prompt"] == {"image": 0, "video": 1}
    assert kwargs["model"] == "/m"
    if variant.startswith("nemotron"):
        assert kwargs["video_pruning_rate"] == 0.0


def test_enhancement_engine_and_text_request() -> None:
    kwargs = engine_kwargs(enhance_model("qwen_lm", "qwen3"), Path("/lm"), fp8=True)
    assert kwargs["quantization"] == "fp8" and "limit_mm_per_prompt" not in kwargs
    req = build_request(TextInput(messages=[], prompt="<|im_start|>user\nhi"), enhance_model("qwen_lm", "qwen3"))
    assert req == {"prompt": "<|im_start|>user\nhi"}


def test_sampling_params() -> None:
    assert sampling_kwargs(512) == {
        "temperature": 0.1,
        "top_p": 0.001,
        "repetition_penalty": 1.05,
        "min_tokens": 16,
        "max_tokens": 512,
        "stop": None,
    }
    assert sampling_kwargs(8, ["</s>"])["min_tokens"] == 8
    assert sampling_kwargs(8, ["</s>"])["stop"] == ["</s>"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_engine_without_vllm_says_what_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[vllm\]'"):
        VLLMBackend(caption_model("qwen2.5"), Path("/m"))
