"""Resume: kill -9 at several points, rerun, and get exactly what an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import make_video, read_marker, snapshot

from vidcap import Pipeline, paths
from vidcap.stages import ClipSplittingStage, ClipTranscodingStage, ClipWriterStage, VideoReaderStage

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def dozen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dozen")
    for i in range(12):
        make_video(root / f"v{i:02d}.mp4", seconds=4 + i % 3, width=160 + 32 * (i % 2), height=96,
                   fps=(24, 25, 30)[i % 3], audio=i % 4 == 0)  # fmt: skip
    return root


def args(src: Path, out: Path, model: Path) -> list[str]:
    return [
        sys.executable, "-m", "vidcap.cli", "run", str(src), str(out), "--verbose",
        "--fixed-stride-split-duration", "2", "--transcode-preset", "ultrafast", "--transcode-cpus-per-worker", "1",
        "--generate-previews", "--captioning-window-size", "24", "--captioning-remainder-threshold", "12",
        "--generate-captions", "--captioning-model", str(model), "--captioning-max-output-tokens", "6",
    ]  # fmt: skip


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def reference(dozen: Path, tiny_qwen25: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    proc = subprocess.run(args(dozen, out, tiny_qwen25), capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def assert_same(found: dict[str, Any], expected: dict[str, Any]) -> None:
    """File by file, so that a difference names its file and shows its fields."""
    assert sorted(found) == sorted(expected)
    for rel, data in expected.items():
        assert found[rel] == data, rel


def kill_when(cmd: list[str], log: Path, ready: Any, timeout: float = 240) -> None:
    """Start the run, wait until ``ready(log_text)`` holds, then SIGKILL it."""
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + timeout
        while not ready(log.read_text(errors="replace")):
            assert proc.poll() is None, "run ended before the kill point:\n" + log.read_text()[-2000:]
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def count_files(out: Path, folder: str) -> int:
    """Finished files in a folder: a temp file being written at the kill does not count."""
    if not (out / folder).exists():
        return 0
    return sum(1 for p in (out / folder).rglob("*") if p.is_file() and not p.name.endswith(paths.TMP_SUFFIX))


@pytest.mark.parametrize(
    "point",
    ["clip_writing", "previews", "captions"],
)
def test_kill_and_rerun_matches_uninterrupted(
    point: str, dozen: Path, tiny_qwen25: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = args(dozen, out, tiny_qwen25)
    ready = {
        "clip_writing": lambda text: count_files(out, "clips") >= 8,
        "previews": lambda text: text.count("preview ") >= 20,
        "captions": lambda text: text.count("[truncated]") >= 25,
    }[point]
    kill_when(cmd, tmp_path / "log.txt", ready)
    assert not (out / paths.SUMMARY_JSON).exists()  # killed mid-run
    finished = count_files(out, paths.MARKERS_DIR)
    assert finished < 12
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / paths.SUMMARY_JSON).read_text())
    assert summary["videos"]["skipped_already_done"] == finished
    assert summary["videos"]["processed_this_run"] == 12 - finished
    assert not list(out.rglob(f"*{paths.TMP_SUFFIX}"))
    assert_same(snapshot(out), snapshot(reference))


def test_second_rerun_does_no_work(dozen: Path, tiny_qwen25: Path, reference: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    proc = subprocess.run(args(dozen, reference, tiny_qwen25), capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((reference / paths.SUMMARY_JSON).read_text())
    assert summary["videos"]["processed_this_run"] == 0 and summary["videos"]["skipped_already_done"] == 12
    assert set(summary["videos_per_stage_this_run"].values()) == {0}
    assert len(summary["videos_per_stage_this_run"]) == 7  # every stage counted, none ran
    after = {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    changed = {p.name for p in before if before[p] != after.get(p)}
    assert changed <= {paths.SUMMARY_JSON, paths.WINDOWS_PARQUET, paths.LOCK_FILE}  # run-level files only


class Counting(ClipTranscodingStage):
    calls = 0

    def process(self, video: Any) -> Any:
        Counting.calls += 1
        return super().process(video)


def test_finished_videos_reach_no_stage(dozen: Path, tmp_path: Path) -> None:
    def pipeline() -> Pipeline:
        return Pipeline([VideoReaderStage(dozen), ClipSplittingStage(), Counting(preset="ultrafast"),
                         ClipWriterStage(tmp_path / "out")])  # fmt: skip

    pipeline().run()
    assert Counting.calls == 12
    Counting.calls = 0
    result = pipeline().run()
    assert Counting.calls == 0 and result.reports == [] and len(result.skipped) == 12


def test_incomplete_or_changed_videos_are_redone(dozen: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("v00.mp4", "v01.mp4", "v02.mp4"):
        (src / name).write_bytes((dozen / name).read_bytes())
    out = tmp_path / "out"

    def run() -> Any:
        stages = [VideoReaderStage(src), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
                  ClipWriterStage(out)]  # fmt: skip
        return Pipeline(stages).run()

    run()
    reference = snapshot(out)
    marker = read_marker(out / "processed_videos/v01.mp4.json")
    (out / next(iter(marker["outputs"]))).unlink()  # a file of v01 lost
    os.utime(src / "v02.mp4")  # v02 touched: may have changed
    result = run()
    assert sorted(r.relative_path for r in result.reports) == ["v01.mp4", "v02.mp4"]
    assert_same(snapshot(out), reference)
    # --overwrite (ClipWriterStage(overwrite=True)) redoes everything.
    stages = [VideoReaderStage(src), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
              ClipWriterStage(out, overwrite=True)]  # fmt: skip
    assert len(Pipeline(stages).run().reports) == 3


def test_failed_model_windows_are_retried(tmp_path: Path, dozen: Path) -> None:
    from vidcap.data import Video, record_error
    from vidcap.stages.writer import ClipWriterStage as Writer

    out = tmp_path / "out"
    writer = Writer(out)
    writer.prepare()
    video = Video(path=dozen / "v00.mp4", relative_path="v00.mp4")
    record_error(video, "caption_generation", "RuntimeError: CUDA out of memory", retry=True)
    writer.complete(writer.process(video))
    assert not writer.is_done(video)  # a model failure may not happen again: redo
    video.errors, video.retry_errors = {}, set()
    record_error(video, "video_reader", "not a readable video container", retry=False)
    writer.complete(writer.process(video))
    assert writer.is_done(video)  # a bad source stays bad: skip
    writer.out.unlock()
    again = Writer(out, retry_failed=True)
    again.prepare()
    assert not again.is_done(video)
    again.out.unlock()


def test_second_run_on_same_output_is_refused(tmp_path: Path, dozen: Path) -> None:
    from vidcap.output.files import OutputDir

    out = tmp_path / "out"
    out.mkdir()
    holder = OutputDir(out)
    assert holder.lock()
    try:
        proc = subprocess.run([sys.executable, "-m", "vidcap.cli", "run", str(dozen), str(out)], capture_output=True,
                              text=True, env=ENV)  # fmt: skip
        assert proc.returncode == 2 and "another vidcap run is writing to" in proc.stderr
    finally:
        holder.unlock()
