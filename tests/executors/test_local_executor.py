"""The engine: tasks of a few clips, a worker pool per stage, model batches across videos, payloads dropped."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow.parquet as pq
import pytest
from helpers import comparable, make_video

from vidcap import Pipeline, paths
from vidcap.data import Video
from vidcap.executors.base import droppable
from vidcap.executors.local import LocalExecutor
from vidcap.stages import (
    CaptionGenerationStage,
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ClipWriterStage,
    PreviewStage,
    Resources,
    Stage,
    VideoReaderStage,
)


@dataclass
class Watch(Stage):
    """Records what reaches it: each task's clips and part, and whether it still carries media."""

    seen: list[dict[str, Any]]
    name: ClassVar[str] = "watch"

    def process(self, video: Video) -> Video:
        windows = [w for c in video.clips for w in c.windows]
        self.seen.append({
            "video": video.relative_path, "part": video.part, "parts": video.parts, "clips": len(video.clips),
            "frames": sum(bool(w.frames) or w.llm_input is not None for w in windows),
            "mp4": sum(w.mp4_bytes is not None for w in windows),
            "thread": threading.current_thread().name, "start": time.monotonic(),
        })  # fmt: skip
        return video


@dataclass
class Slow(Stage):
    """A stage that takes a while per task and says when it ran."""

    intervals: list[tuple[float, float]]
    name: ClassVar[str] = "slow"

    def default_resources(self) -> Resources:
        return Resources(cpus=1.0)

    def process(self, video: Video) -> Video:
        start = time.monotonic()
        time.sleep(0.5)
        self.intervals.append((start, time.monotonic()))
        return video


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("long")
    make_video(root / "long.mp4", seconds=40, width=192, height=108, fps=25)
    return root


def _pipeline(src: Path, out: Path, seen: list[dict[str, Any]]) -> Pipeline:
    return Pipeline([
        VideoReaderStage(src),
        ClipSplittingStage(clip_len_s=5, clip_stride_s=5),
        ClipTranscodingStage(num_cpus_per_worker=1, preset="ultrafast", keyframe_interval=64),
        CaptionPreparationStage(window_size=64, remainder_threshold=32, keep_mp4=True),
        PreviewStage(num_cpus_per_worker=1),
        Watch(seen),
        ClipWriterStage(out),
    ])  # fmt: skip


def _contents(out: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if not path.is_file() or rel.startswith(".vidcap") or rel == "summary.json":
            continue
        if path.suffix == ".json":
            found[rel] = comparable(out, json.loads(path.read_text()))
        elif path.suffix == ".parquet":
            found[rel] = pq.read_table(path).to_pylist()
        else:
            found[rel] = path.read_bytes()
    return found


def test_a_long_video_travels_as_several_tasks_with_the_same_outputs(long_video: Path, tmp_path: Path) -> None:
    tasks: list[dict[str, Any]] = []
    _pipeline(long_video, tmp_path / "tasks", tasks).run(LocalExecutor(clips_per_task=2))
    whole: list[dict[str, Any]] = []
    # The old design: whole videos, one thread per stage.
    _pipeline(long_video, tmp_path / "whole", whole).run(LocalExecutor(clips_per_task=None, max_workers=1))
    assert sorted((t["part"], t["parts"], t["clips"]) for t in tasks) == [(p, 4, 2) for p in range(4)]
    assert [(t["parts"], t["clips"]) for t in whole] == [(1, 8)]
    a, b = _contents(tmp_path / "tasks"), _contents(tmp_path / "whole")
    assert len([k for k in a if k.startswith("clips/")]) == 8
    # One processed_clip_chunks file per task (NeMo Curator's chunks): four here, one there, the same clips.
    chunks = [[k for k in c if k.startswith(paths.CHUNKS_DIR)] for c in (a, b)]
    assert [len(c) for c in chunks] == [4, 1]
    assert sorted(u for k in chunks[0] for u in a.pop(k)["clips"]) == sorted(b.pop(chunks[1][0])["clips"])
    for contents, n in ((a, 4), (b, 1)):
        marker = contents["processed_videos/long.mp4.json"]
        assert marker.pop("num_clip_chunks") == n
        marker["vidcap.outputs"] = {k: v for k, v in marker["vidcap.outputs"].items() if paths.CHUNKS_DIR not in k}
    assert a == b  # clips, previews, metas, the marker and the parquet: byte for byte or field for field


def test_payloads_are_dropped_after_their_last_reader(long_video: Path, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    pipeline = _pipeline(long_video, tmp_path / "out", seen)
    pipeline.run(LocalExecutor())
    # After the preview stage nothing reads a window's mp4 any more: the watch downstream sees none.
    assert seen and all(t["mp4"] == 0 for t in seen)
    drops = dict(zip([s.name for s in pipeline.stages], droppable(pipeline.stages), strict=True))
    assert "window.mp4_bytes" in drops["preview"] and "clip.buffer" not in drops["preview"]  # the writer needs it
    assert "frames:preview" in drops["preview"] and "frames:preview" not in drops["caption_preparation"]
    # The source itself (a copy, when it is in object storage) goes once the last stage that reads it is done.
    assert "video.source" in drops["clip_transcoding"] and "video.source" not in drops["clip_splitting"]
    assert drops["clip_writer"] == frozenset(
        {"video.source", "clip.buffer", "window.mp4_bytes", "frames:preview", "window.llm_input", "window.webp_bytes"}
    )


@pytest.mark.models
def test_frames_and_model_inputs_are_gone_after_captioning(tmp_path: Path, tiny_qwen25: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_video(src / "v.mp4", seconds=3, width=160, height=96, fps=25)
    seen: list[dict[str, Any]] = []
    Pipeline([
        VideoReaderStage(src),
        ClipSplittingStage(),
        ClipTranscodingStage(preset="ultrafast"),
        CaptionPreparationStage(window_size=32, remainder_threshold=8),
        CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=4),
        Watch(seen),
    ]).run()  # fmt: skip
    assert seen[0]["clips"] == 1 and seen[0]["frames"] == 0  # 3 windows captioned, none keeps its frames


def test_a_stage_pool_runs_tasks_side_by_side(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_video(src / name, seconds=1, width=64, height=48, fps=10)

    def overlap(cpus: float) -> bool:
        intervals: list[tuple[float, float]] = []
        Pipeline([VideoReaderStage(src), Slow(intervals)]).run(LocalExecutor(cpus=cpus))
        (_, first_end), (second_start, _) = sorted(intervals)
        return second_start < first_end

    assert overlap(cpus=2)  # two workers allowed: both tasks at once
    assert not overlap(cpus=1)  # one core: one after the other


@pytest.mark.models
def test_windows_of_different_videos_share_engine_calls(tmp_path: Path, tiny_qwen25: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):  # six one-window videos
        make_video(src / f"v{i}.mp4", seconds=1.5 + 0.1 * i, width=96, height=64, fps=20)
    out = tmp_path / "out"
    result = Pipeline([
        VideoReaderStage(src),
        ClipSplittingStage(min_clip_length_s=1),
        ClipTranscodingStage(preset="ultrafast", num_cpus_per_worker=1),
        CaptionPreparationStage(),
        CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=4,
                               caption_batch_size=8),
        ClipWriterStage(out),
    ]).run()  # fmt: skip
    engine = json.loads((out / "summary.json").read_text())["engines"]["caption_generation"]
    assert engine["requests"] == 6 and engine["batches"] <= 2 and engine["largest_batch"] >= 3
    assert engine == result.engines["caption_generation"] and engine["busy_s"] > 0
