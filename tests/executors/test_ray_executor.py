from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    tmp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp), log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_matches_local(ray_local: object, corpus: Path, tmp_path: Path) -> None:
    from test_pipeline import build

    from vidcap.executors.ray import RayExecutor

    local, remote = tmp_path / "local", tmp_path / "ray"
    build(corpus, local).run()
    result = build(corpus, remote).run(RayExecutor())
    assert len(result.reports) == 7
    a = json.loads((local / "summary.json").read_text())
    b = json.loads((remote / "summary.json").read_text())
    for key in ("videos", "clips", "windows", "previews", "failed_videos"):
        assert a[key] == b[key], key
    meta_names = sorted(p.name for p in (local / "metas/v0").iterdir())
    assert meta_names == sorted(p.name for p in (remote / "metas/v0").iterdir())
    for name in meta_names:
        assert (local / "metas/v0" / name).read_text() == (remote / "metas/v0" / name).read_text()


@pytest.mark.models
def test_model_stage_runs_in_ray_actor(ray_local: object, corpus: Path, tiny_qwen25: Path, tmp_path: Path) -> None:
    from vidcap import Pipeline
    from vidcap.executors.ray import RayExecutor
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        ClipWriterStage,
        VideoReaderStage,
    )

    def pipeline(out: Path) -> Pipeline:
        return Pipeline([
            VideoReaderStage(corpus / "b25.mov"),
            ClipSplittingStage(min_clip_length_s=1),
            ClipTranscodingStage(preset="ultrafast"),
            CaptionPreparationStage(window_size=32, remainder_threshold=16),
            CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=6),
            ClipWriterStage(out),
        ])  # fmt: skip

    pipeline(tmp_path / "local").run()
    pipeline(tmp_path / "ray").run(RayExecutor())
    local = sorted((tmp_path / "local/metas/v0").glob("*.json"))
    assert local and [p.name for p in local] == sorted(p.name for p in (tmp_path / "ray/metas/v0").glob("*.json"))
    for path in local:
        a = json.loads(path.read_text())
        b = json.loads((tmp_path / "ray/metas/v0" / path.name).read_text())
        assert [w["qwen_caption"] for w in a["windows"]] == [w["qwen_caption"] for w in b["windows"]]
        assert all(w["caption_status"] == "truncated" and w["output_tokens"] == 6 for w in b["windows"])
