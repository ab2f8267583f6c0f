from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import comparable

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
        a = comparable(local, json.loads((local / "metas/v0" / name).read_text()))
        assert a == comparable(remote, json.loads((remote / "metas/v0" / name).read_text()))


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


def test_ray_splits_long_videos_and_gathers_them_like_local(
    ray_local: object, tmp_path: Path, tiny_qwen25: Path
) -> None:
    import time

    from helpers import make_video
    from test_local_executor import _contents

    from vidcap import Pipeline
    from vidcap.executors.local import LocalExecutor
    from vidcap.executors.ray import RayExecutor
    from vidcap.progress import Progress
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        ClipWriterStage,
        PreviewStage,
        VideoReaderStage,
    )

    src = tmp_path / "src"
    src.mkdir()
    make_video(src / "long.mp4", seconds=12, width=128, height=72, fps=20)  # 4 clips: 2 tasks
    for i in range(4):
        make_video(src / f"short{i}.mp4", seconds=2, width=96, height=64, fps=20)

    def pipeline(out: Path) -> Pipeline:
        return Pipeline([
            VideoReaderStage(src),
            ClipSplittingStage(clip_len_s=3, clip_stride_s=3, min_clip_length_s=1),
            ClipTranscodingStage(preset="ultrafast", num_cpus_per_worker=1, keyframe_interval=40),
            CaptionPreparationStage(window_size=40, remainder_threshold=20, keep_mp4=True),
            PreviewStage(num_cpus_per_worker=1),
            CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=4,
                                   caption_batch_size=8),
            ClipWriterStage(out),
        ])  # fmt: skip

    class Times(Progress):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def done(self, report: object) -> None:
            super().done(report)  # type: ignore[arg-type]
            self.times.append(time.monotonic())

    pipeline(tmp_path / "local").run(LocalExecutor())
    progress = Times()
    result = pipeline(tmp_path / "ray").run(RayExecutor(), progress=progress)
    assert len(result.reports) == 5 and all(r.status == "ok" for r in result.reports)
    engine = result.engines["caption_generation"]
    windows = sum(r.windows for r in result.reports)
    assert engine["requests"] == windows == 12 and engine["batches"] < 5  # several videos per engine call
    local, remote = _contents(tmp_path / "local"), _contents(tmp_path / "ray")
    # Captions of a random tiny model differ with the batch they were in (padding); everything else is equal.
    for contents in (local, remote):
        for key, value in contents.items():
            if key.endswith(".parquet"):
                contents[key] = [{k: v for k, v in row.items() if k != "qwen_caption"} for row in value]
            elif key.startswith("processed_clip_chunks/"):  # a chunk file holds the captions too
                value["all_windows"] = {}
            elif key.startswith("metas/"):
                for w in value["windows"]:
                    w.pop("qwen_caption"), w.pop("qwen2.5_caption")
    assert local == remote
    assert len(progress.times) == 5
