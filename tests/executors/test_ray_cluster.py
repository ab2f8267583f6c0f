"""A two-node Ray cluster on this machine: a head with no GPU and a worker that declares one (logical) GPU.
Model actors land on the GPU node and run on its CPU here; that node, not the driver, prepares the weights (from
the Hugging Face cache into its --model-dir); outputs equal the local run; engine calls carry the configured
number of windows."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import comparable, make_video

pytest.importorskip("ray.data")
pytestmark = [pytest.mark.ray, pytest.mark.models, pytest.mark.slow]

HUB_ID = "vidcap-tests/tiny-qwen25-vl"


def _hub_cache(root: Path, model: Path) -> Path:
    """A Hugging Face cache holding ``model`` as HUB_ID (what `hf download` leaves behind), for offline use."""
    repo = root / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root / "hub"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, tiny_qwen25: Path) -> Any:
    import ray
    from ray.cluster_utils import Cluster

    tmp = tmp_path_factory.mktemp("cluster")
    os.environ["HF_HUB_CACHE"] = str(_hub_cache(tmp, tiny_qwen25))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    gpu_node = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, gpu_node
    ray.shutdown()
    cluster.shutdown()
    os.environ.pop("HF_HUB_CACHE", None)


def _pipeline(src: Path, out: Path, model_dir: Path) -> Any:
    from vidcap import Pipeline
    from vidcap.stages import (
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        ClipWriterStage,
        PreviewStage,
        VideoReaderStage,
    )

    return Pipeline([
        VideoReaderStage(src), ClipSplittingStage(clip_len_s=2.0, clip_stride_s=2.0, min_clip_length_s=1.0),
        ClipTranscodingStage(preset="ultrafast", num_cpus_per_worker=1),
        CaptionPreparationStage(window_size=25, remainder_threshold=12), PreviewStage(num_cpus_per_worker=1),
        Where(model=HUB_ID, model_dir=str(model_dir), backend="transformers", caption_batch_size=4,
              max_output_tokens=4),
        ClipWriterStage(out),
    ])  # fmt: skip


def _where() -> type:
    from vidcap.stages import CaptionGenerationStage

    class Where(CaptionGenerationStage):
        """Captions, and notes on each task the node it ran on."""

        def process_batch(self, videos: list[Any]) -> list[Any]:
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
            for video in videos:
                video.timings[f"node {node}"] = 0.0
            return super().process_batch(videos)

    return Where


Where = _where()


def _contents(out: Path) -> dict[str, Any]:
    """Clips and previews byte for byte, metas field for field but the caption text (a random model's words
    depend on what it was batched with), the marker's settings."""
    found: dict[str, Any] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel.startswith(("clips/", "previews/")):
            found[rel] = path.read_bytes()
        elif rel.startswith("metas/"):
            meta = comparable(out, json.loads(path.read_text()))
            for w in meta["windows"]:
                w.pop("qwen_caption", None), w.pop("qwen2.5_caption", None), w.pop("caption_degenerate", None)
                w.pop("output_tokens", None)
                w.pop("caption_status", None)
            found[rel] = meta
    return found


def test_model_actors_land_on_the_gpu_node_and_it_prepares_the_weights(cluster: Any, tmp_path: Path) -> None:
    from vidcap.executors.local import LocalExecutor
    from vidcap.executors.ray import RayExecutor

    _, gpu_node = cluster
    src = tmp_path / "in"
    for i in range(3):
        make_video(src / f"v{i}.mp4", seconds=4, width=160, height=96, fps=25)  # 2 clips, 4 windows each
    model_dir = tmp_path / "models"
    executor = RayExecutor()
    remote = _pipeline(src, tmp_path / "ray", model_dir)
    result = remote.run(executor)
    assert len(result.reports) == 3 and all(r.status == "ok" for r in result.reports), result.reports
    # The weights were prepared on the GPU node only, not on the driver (whose stage never resolved a path).
    assert executor.prepared["caption_generation"] == [gpu_node.node_id]
    assert set(executor.prepared["clip_transcoding"]) == {n["NodeID"] for n in __import__("ray").nodes()}
    captioning = next(s for s in remote.stages if s.name == "caption_generation")
    assert captioning._model_path is None and captioning._engine is None
    # Every task was captioned by an actor on the GPU node (the head has no GPU).
    assert {k for r in result.reports for k in r.timings if k.startswith("node ")} == {f"node {gpu_node.node_id}"}
    assert result.engines["caption_generation"]["largest_batch"] == 4  # batches count windows: 12 windows, 4 a call
    assert result.engines["caption_generation"]["requests"] == 12
    # The same run locally gives the same files.
    local = _pipeline(src, tmp_path / "local", model_dir).run(LocalExecutor())
    assert _contents(tmp_path / "ray") == _contents(tmp_path / "local")
    assert local.engines["caption_generation"]["largest_batch"] == 4
