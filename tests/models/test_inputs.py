"""Inputs built with the models' own processors: true frame times, pixel budget respected."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vidcap.models.inputs import frame_size, input_format, smart_resize
from vidcap.models.registry import caption_model
from vidcap.windowing import sample_frame_indices

pytestmark = pytest.mark.models


def test_smart_resize_rules() -> None:
    # 1080p is 3.44x over 768*28*28 px: each side shrinks by sqrt(3.44) and floors to a multiple of 28.
    assert smart_resize(1080, 1920, 28, 128 * 784, 768 * 784) == (560, 1008)
    assert smart_resize(560, 1008, 28, 128 * 784, 768 * 784) == (560, 1008)  # already fits: unchanged
    h, w = smart_resize(90, 160, 28, 128 * 784, 768 * 784)  # too small: scaled up to the minimum
    assert h % 28 == w % 28 == 0 and h * w >= 128 * 784


@pytest.mark.parametrize("variant", ["qwen2.5", "qwen3"])
def test_frame_size_within_budget(variant: str) -> None:
    budget = caption_model(variant).budget
    for width, height in [(1920, 1080), (3840, 2160), (1080, 1920), (640, 360)]:
        w, h = frame_size(budget, width, height, 18)
        assert w % budget.factor == 0 and h % budget.factor == 0
        assert w * h <= budget.max_pixels
        assert abs(w / h - width / height) < 0.15


def _window(variant: str, processor: object, fps: float = 25.0, start: int = 256, end: int = 511):  # type: ignore[no-untyped-def]
    spec = caption_model(variant)
    fmt = input_format(spec, processor)
    indices = sample_frame_indices(start, end, fps, 2.0)
    w, h = frame_size(spec.budget, 1920, 1080, len(indices))
    frames = np.random.default_rng(0).integers(0, 255, (len(indices), h, w, 3), dtype=np.uint8)
    rel = [i - start for i in indices]
    return fmt, fmt.build("Describe this video.", frames, rel, fps, end - start + 1), rel


def _processor(path: Path) -> object:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(path))


def test_qwen3_timestamps_are_true_frame_times(tiny_qwen3: Path) -> None:
    processor = _processor(tiny_qwen3)
    fmt, inp, rel = _window("qwen3", processor, fps=25.0)
    batch = fmt.processor_inputs([inp])
    text = processor.tokenizer.decode(batch["input_ids"][0])  # type: ignore[attr-defined]
    stamps = [float(t) for t in re.findall(r"<([\d.]+) seconds>", text)]
    # One stamp per temporal patch: the mean time of its two frames, at the source rate.
    expected = [round((rel[k] + rel[k + 1]) / 2 / 25.0, 1) for k in range(0, len(rel), 2)]
    assert stamps == expected
    at_24 = [round((rel[k] + rel[k + 1]) / 2 / 24.0, 1) for k in range(0, len(rel), 2)]
    assert stamps != at_24  # not the processor's fallback rate


def test_qwen25_temporal_spacing(tiny_qwen25: Path) -> None:
    fmt, inp, rel = _window("qwen2.5", _processor(tiny_qwen25), fps=30.0)
    batch = fmt.processor_inputs([inp])
    # The model's reference (qwen-vl-utils, and vLLM): temporal patch / (n / T * fps), n sampled of T frames.
    assert batch["second_per_grid_ts"] == [pytest.approx(2 / (len(rel) / 256 * 30.0))]
    assert int(batch["video_grid_thw"][0][0]) == len(rel) // 2
    # A 250-frame window at 25 fps: 20 frames, 2 / (20 / 250 * 25) = 1.0 s per temporal patch.
    fmt25, inp25, rel25 = _window("qwen2.5", _processor(tiny_qwen25), fps=25.0, start=0, end=249)
    assert len(rel25) == 20 and fmt25.processor_inputs([inp25])["second_per_grid_ts"] == [pytest.approx(1.0)]


@pytest.mark.parametrize(("variant", "fixture", "patch"), [("qwen2.5", "tiny_qwen25", 14), ("qwen3", "tiny_qwen3", 16)])
def test_visual_tokens_within_budget_for_1080p(
    variant: str, fixture: str, patch: int, request: pytest.FixtureRequest
) -> None:
    processor = _processor(request.getfixturevalue(fixture))
    fmt, inp, _rel = _window(variant, processor)
    batch = fmt.processor_inputs([inp])
    t, gh, gw = (int(x) for x in batch["video_grid_thw"][0])
    tokens = t * gh * gw // 4
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")  # type: ignore[attr-defined]
    assert int((batch["input_ids"][0] == video_id).sum()) == tokens
    budget = caption_model(variant).budget
    per_patch_limit = budget.max_pixels // (budget.factor**2)  # 768 tokens per temporal patch
    assert tokens <= t * per_patch_limit
    assert tokens > t * per_patch_limit // 2  # and the budget is actually used, not starved
    assert (gh * patch, gw * patch) == inp.frames.shape[1:3]


def test_stage2_rebuild_changes_prompt_and_quotes_caption(tiny_qwen25: Path) -> None:
    from vidcap.models.prompts import STAGE2_PROMPT, with_caption

    fmt, inp, _ = _window("qwen2.5", _processor(tiny_qwen25))
    first = "A grey cat sleeps on a sunny windowsill."
    second = fmt.rebuild(fmt.templated(inp), with_caption(STAGE2_PROMPT, first))
    assert inp.prompt is not None and second.prompt is not None
    assert second.prompt != inp.prompt and first in second.prompt and first not in inp.prompt
    assert second.frames is inp.frames


def test_qwen3_frames_share_the_budget_among_all_frames() -> None:
    # Qwen3-VL's processor (and vLLM's encoder cache) bound the pixels of all frames together.
    budget = caption_model("qwen3").budget
    for frames in (4, 18, 36, 100):
        w, h = frame_size(budget, 1280, 720, frames)
        assert frames * w * h <= budget.total_pixels
    w, h = frame_size(caption_model("qwen2.5").budget, 1280, 720, 36)
    assert 36 * w * h > caption_model("qwen2.5").budget.total_pixels  # Qwen2.5-VL counts frame pairs once
