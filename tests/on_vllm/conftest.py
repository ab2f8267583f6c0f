"""vLLM tests run in .venv-vllm (vllm-cpu on this CPU): the real engine and the real OpenAI server, with tiny
random models of the real architectures. scripts/test.sh runs them there; where vLLM is missing they are not
collected. (The folder is not named `vllm`: on sys.path it would shadow the real package.)"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("vllm") is None:  # the main venv: these tests belong to .venv-vllm
    collect_ignore_glob = ["test_*.py"]

# No VLLM_CPU_KVCACHE_SPACE here: the engines start as a user's do, with the KV cache vidcap sizes for them.
# Each engine core runs in its own process, as in a real run; the input processing (the transformers
# processor) runs in this one, where the tests can watch it.
MAX_TOKENS = 8


@pytest.fixture(scope="session")
def clip_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short videos at different rates and shapes; 3 s clips give each a window or two."""
    from helpers import make_video

    root = tmp_path_factory.mktemp("vllm_videos")
    make_video(root / "a.mp4", seconds=6, width=320, height=180, fps=30, audio=True)
    make_video(root / "b.mp4", seconds=3, width=256, height=256, fps=25)
    return root


def prepared_windows(
    path: Path, variant: str = "qwen2.5", window_size: int = 48, fps_sampling: float = 2.0, clip_s: float = 3.0
) -> Any:
    """Windows of one video, prepared by the real stages (frames sampled and sized for ``variant``) with their
    model input (chat not yet templated), as the generation stage builds it."""
    from vidcap.data import Video
    from vidcap.pipeline import bind
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        VideoReaderStage,
    )

    video = Video(path=path, relative_path=path.name)
    stages = [
        VideoReaderStage(path),
        ClipSplittingStage(clip_len_s=clip_s, clip_stride_s=clip_s, min_clip_length_s=1),
        ClipTranscodingStage(num_cpus_per_worker=2, preset="ultrafast"),
        CaptionPreparationStage(window_size=window_size, remainder_threshold=24),
    ]
    captioning = CaptionGenerationStage(model_variant=variant, sampling_fps=fps_sampling)  # not loaded
    bind([*stages, captioning])
    for stage in stages:
        video = stage.process(video)
    windows = []
    for clip in video.clips:
        for window in clip.windows:
            window.llm_input = captioning.llm_input(clip, window)
            windows.append(window)
    return windows


@pytest.fixture(scope="session")
def hf_calls() -> Iterator[list[dict[str, Any]]]:
    """What vLLM hands to and gets back from each model's transformers processor (in this process: the
    engine's input processing runs here): options, frame shapes, metadata, grid, seconds per temporal patch."""
    from vllm.multimodal.processing.context import InputProcessingContext

    calls: list[dict[str, Any]] = []
    original = InputProcessingContext.call_hf_processor

    def recording(self: Any, hf_processor: Any, data: Any, kwargs: Any = {}) -> Any:  # noqa: B006
        out = original(self, hf_processor, data, kwargs)
        videos = data.get("videos") or []
        while videos and isinstance(videos[0], list):  # Qwen3-VL nests one video per call
            videos = videos[0]
        metadata = data.get("video_metadata") or []
        while metadata and isinstance(metadata[0], list):
            metadata = metadata[0]
        if videos and all(hasattr(v, "shape") for v in videos):  # other models pass other things: not ours
            calls.append({
                "kwargs": dict(kwargs),
                "videos": [tuple(v.shape) for v in videos],
                "metadata": metadata,
                "grid": out["video_grid_thw"].tolist() if "video_grid_thw" in out else None,
                "second_per_grid_ts": out["second_per_grid_ts"].tolist() if "second_per_grid_ts" in out else None,
            })  # fmt: skip
        return out

    InputProcessingContext.call_hf_processor = recording  # type: ignore[method-assign]
    yield calls
    InputProcessingContext.call_hf_processor = original  # type: ignore[method-assign]


def _stage(cls: Any, **kwargs: Any) -> Iterator[Any]:
    stage = cls(backend="vllm", max_output_tokens=MAX_TOKENS, **kwargs)
    stage.setup()
    yield stage
    stage.teardown()


@pytest.fixture(scope="session")
def qwen25_vllm(tiny_qwen25: Path, hf_calls: list[dict[str, Any]]) -> Iterator[Any]:
    """A CaptionGenerationStage on the real vLLM engine with the tiny Qwen2.5-VL (shared: engines start slowly)."""
    from vidcap.stages import CaptionGenerationStage

    yield from _stage(CaptionGenerationStage, model=str(tiny_qwen25))


@pytest.fixture(scope="session")
def qwen3_lm_vllm(tiny_qwen3_lm: Path) -> Iterator[Any]:
    from vidcap.stages import CaptionEnhancementStage

    yield from _stage(CaptionEnhancementStage, model_variant="qwen3", model=str(tiny_qwen3_lm))
