"""Model stages sharing one GPU: shares sized by model, vLLM memory sized by share (no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidcap.executors.base import share_gpus
from vidcap.models.backends.vllm_engine import engine_kwargs
from vidcap.stages import CaptionEnhancementStage, CaptionGenerationStage, ClipTranscodingStage


def _on_vllm(stage):  # type: ignore[no-untyped-def]
    stage._backend_name = "vllm"  # as prepare() would resolve it on a GPU machine
    return stage


def test_two_engines_split_one_gpu_by_model_size() -> None:
    captions = _on_vllm(CaptionGenerationStage(model_variant="qwen2.5"))
    enhance = _on_vllm(CaptionEnhancementStage(model_variant="qwen2.5"))
    stages = [ClipTranscodingStage(), captions, enhance]
    share_gpus(stages, 1.0)
    # 24 GB and 34 GB needs: 24/58 and 34/58 of the GPU.
    assert captions.resources.gpus == pytest.approx(24 / 58)
    assert enhance.resources.gpus == pytest.approx(34 / 58)
    assert ClipTranscodingStage().resources.gpus == 0
    kwargs = engine_kwargs(captions.spec, Path("/m"), fp8=False, gpu_share=captions.gpu_share)
    assert kwargs["gpu_memory_utilization"] == pytest.approx(0.85 * 24 / 58, abs=1e-3)


def test_enough_gpus_leaves_shares_alone() -> None:
    captions = _on_vllm(CaptionGenerationStage())
    enhance = _on_vllm(CaptionEnhancementStage())
    share_gpus([captions, enhance], 2.0)
    assert captions.resources.gpus == enhance.resources.gpus == 1.0
    share_gpus([captions, enhance], 0.0)  # no GPU: nothing to share
    assert captions.gpu_share == 1.0
