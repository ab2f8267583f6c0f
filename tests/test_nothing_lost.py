"""Nothing lost, nothing taken twice: two inputs with the same names, an older OUTPUT inside INPUT, a source
replaced while it is processed, OUTPUT removed mid-run, flags that can never make a clip, and the Python API
used the wrong way. Runs go through the CLI or the Python API, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import frame_numbers, make_numbered_video, make_video, read_marker

from vidcap import Pipeline
from vidcap.stages import ClipSplittingStage, ClipTranscodingStage, ClipWriterStage, Stage, VideoReaderStage

pytestmark = pytest.mark.slow

ENV = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def vidcap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vidcap.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV)  # fmt: skip


def markers(out: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(out).as_posix(): read_marker(p) for p in (out / "processed_videos").rglob("*.json")}


def test_two_inputs_with_the_same_names_keep_both_results(tmp_path: Path) -> None:
    """camA/0001.mp4 and camB/0001.mp4 into one OUTPUT, one after the other and back: all results stay."""
    for cam, first in (("camA", 0), ("camB", 1000)):
        make_numbered_video(tmp_path / cam / "0001.mp4", frames=75, fps=25, first=first)
    out = tmp_path / "out"
    for cam in ("camA", "camB", "camA"):
        proc = vidcap("run", tmp_path / cam, out, "--generate-previews")
        assert proc.returncode == 0, proc.stderr
    found = markers(out)
    assert len(found) == 2 and "processed_videos/0001.mp4.json" in found
    sources = {m["source"]: m for m in found.values()}
    assert set(sources) == {str(tmp_path / "camA/0001.mp4"), str(tmp_path / "camB/0001.mp4")}
    for marker in found.values():  # every file each marker lists is still there, with its size
        assert all((out / rel).stat().st_size == size for rel, size in marker["outputs"].items())
    clips = {frame_numbers(p)[0] for p in (out / "clips").glob("*.mp4")}
    assert clips == {0, 1000}  # camA's clip and camB's: neither replaced the other
    assert "0 videos to process, 1 done earlier" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["total"] == 2 and summary["windows"] == 2


def test_an_older_output_inside_input_is_not_taken_as_videos(tmp_path: Path) -> None:
    vids = tmp_path / "vids"
    make_video(vids / "a.mp4", seconds=3, width=160, height=96, fps=25)
    assert vidcap("run", vids, vids / "out_v1", "--generate-previews").returncode == 0
    proc = vidcap("run", vids, vids / "out_v2", "--generate-previews")
    assert proc.returncode == 0, proc.stderr
    assert "out_v1: skipped, it is a vidcap OUTPUT" in " ".join(proc.stderr.split())
    assert [m["relative_path"] for m in markers(vids / "out_v2").values()] == ["a.mp4"]


def test_input_equal_to_output_names_the_folders_it_skips(tmp_path: Path) -> None:
    both = tmp_path / "both"
    make_video(both / "a.mp4", seconds=3, width=160, height=96, fps=25)
    assert vidcap("run", both, both, "--generate-previews").returncode == 0
    proc = vidcap("run", both, both, "--generate-previews")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stderr.split())
    own = "clips/, metas/, previews/, processed_clip_chunks/, processed_videos/"
    assert f"vidcap's own folders are not searched for videos: {own}" in text


class ReplaceSource(Stage):
    """After splitting: another video is moved over the source, as `mv` would while vidcap works."""

    name = "replace_source"

    def __init__(self, other: Path) -> None:
        self.other = other

    def process(self, video: Any) -> Any:
        shutil.copy(self.other, video.path.with_suffix(".tmp"))
        os.replace(video.path.with_suffix(".tmp"), video.path)
        return video


def test_a_source_replaced_during_the_run_is_redone(tmp_path: Path) -> None:
    src = make_numbered_video(tmp_path / "in" / "v.mp4", frames=100, fps=25)
    other = make_numbered_video(tmp_path / "other.mp4", frames=120, fps=25, first=500)
    out = tmp_path / "out"
    result = Pipeline([VideoReaderStage(src.parent), ClipSplittingStage(), ReplaceSource(other),
                       ClipTranscodingStage(preset="ultrafast"), ClipWriterStage(out)]).run()  # fmt: skip
    (report,) = result.reports
    assert report.retry and any("changed while it was processed" in e["reason"] for e in report.errors)
    (marker,) = markers(out).values()
    assert marker["retry"] is True
    again = vidcap("run", src.parent, out)
    assert again.returncode == 0, again.stderr
    assert "1 videos to process, 0 done earlier" in again.stderr
    (marker,) = markers(out).values()
    assert marker["status"] == "ok" and marker["metadata"]["num_frames"] == 120


def test_output_removed_mid_run_agrees_with_the_exit_code_and_the_next_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OUTPUT removed while ffmpeg writes a clip into it (a user's `rm -rf`, an unmounted disk): the clip is the
    machine's loss, not the source's; the exit code, summary.json and the next run agree that it is redone."""
    from vidcap.cli import report_run
    from vidcap.media import encode

    src = make_numbered_video(tmp_path / "in" / "v.mp4", frames=100, fps=25)
    out = tmp_path / "out"
    real = encode.run_ffmpeg

    def remove_output_first(args: list[str], **kwargs: Any) -> list[str]:
        shutil.rmtree(out, ignore_errors=True)
        return real(args, **kwargs)

    monkeypatch.setattr(encode, "run_ffmpeg", remove_output_first)
    result = Pipeline([VideoReaderStage(src.parent), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
                       ClipWriterStage(out)]).run()  # fmt: skip
    monkeypatch.setattr(encode, "run_ffmpeg", real)
    (report,) = result.reports
    assert report.retry, report.errors  # the machine's fault, not the source's
    assert report_run(result, out) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["retry_needed"] == 1
    again = vidcap("run", src.parent, out)
    assert again.returncode == 0, again.stderr
    assert "1 videos to process" in again.stderr


def test_flags_that_can_never_make_a_clip_stop_before_any_work(tmp_path: Path) -> None:
    make_video(tmp_path / "in" / "a.mp4", seconds=3, width=160, height=96, fps=25)
    proc = vidcap("run", tmp_path / "in", tmp_path / "out", "--fixed-stride-split-duration", "1")
    assert proc.returncode == 2
    text = " ".join(proc.stderr.split())
    assert "--fixed-stride-split-duration 1 s is shorter than --fixed-stride-min-clip-length 2 s" in text
    assert not (tmp_path / "out").exists()


def test_python_api_misuse_is_named() -> None:
    from vidcap.config import RunConfig

    with pytest.raises(TypeError, match=r"RunConfig\(generate_previews=...\) takes bool, got 'no'"):
        RunConfig("in", "out", generate_previews="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fixed_stride_split_duration"):
        RunConfig("in", "out", fixed_stride_split_duration="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VideoReaderStage input_path must be a path"):
        VideoReaderStage(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ClipWriterStage is step 1 of 4: a writer must be the last stage"):
        Pipeline([VideoReaderStage("in"), ClipWriterStage("out"), ClipSplittingStage(), ClipTranscodingStage()])


def test_gallery_on_a_parquet_vidcap_did_not_write_says_so(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "windows.parquet")
    proc = vidcap("gallery", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "was not written by vidcap" in " ".join(proc.stderr.split())


def test_a_flag_of_a_part_that_is_off_does_not_redo_videos(tmp_path: Path) -> None:
    make_video(tmp_path / "in" / "a.mp4", seconds=3, width=160, height=96, fps=25)
    out = tmp_path / "out"
    assert vidcap("run", tmp_path / "in", out, "--generate-previews").returncode == 0
    proc = vidcap("run", tmp_path / "in", out, "--generate-previews", "--captioning-algorithm", "qwen3",
                  "--captioning-prompt-variant", "av")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stderr.split())
    assert "ignored" in text and "0 videos to process, 1 done earlier" in text


def test_previews_cut_no_window_mp4s_and_force_no_keyframes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Previews come from the one decode of each clip: nothing reads a window mp4, so none is cut, and the clip
    needs no keyframe at each window."""
    from vidcap.config import RunConfig, build_pipeline
    from vidcap.media import decode, encode
    from vidcap.stages import CaptionPreparationStage

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a window mp4 was cut that nothing reads")

    monkeypatch.setattr(decode, "remux_mp4", forbidden)
    monkeypatch.setattr(decode, "Mp4Writer", forbidden)
    real = encode.run_ffmpeg
    commands: list[list[str]] = []

    def record(args: list[str], **kwargs: Any) -> list[str]:
        commands.append(args)
        return real(args, **kwargs)

    monkeypatch.setattr(encode, "run_ffmpeg", record)
    make_video(tmp_path / "in" / "a.mp4", seconds=12, width=160, height=96, fps=25)
    pipeline = build_pipeline(RunConfig(tmp_path / "in", tmp_path / "out", generate_previews=True,
                                        captioning_window_size=64))  # fmt: skip
    (prep,) = [s for s in pipeline.stages if isinstance(s, CaptionPreparationStage)]
    assert not prep.keep_mp4
    result = pipeline.run()
    assert result.reports[0].status == "ok" and result.reports[0].previews >= 4
    transcodes = [c for c in commands if "libx264" in c]
    assert transcodes and not any("-force_key_frames" in c for c in transcodes)


def test_a_file_vidcap_did_not_write_is_never_overwritten(tmp_path: Path) -> None:
    """A NeMo Curator run's files where vidcap would write its own (same names): left as they are, the video
    fails with a sentence naming the file, the run says a rerun may fix it, and once moved away a rerun does."""
    src = tmp_path / "in"
    make_video(src / "a.mp4", seconds=3, width=160, height=96, fps=25)
    make_video(src / "b.mp4", seconds=3, width=160, height=96, fps=25)
    out = tmp_path / "out"
    theirs = {
        out / "processed_videos/a.mp4.json": b'{"video": "theirs"}',
        out / "processed_clip_chunks/b.mp4_0.json": b"{}",
    }
    for path, data in theirs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    proc = vidcap("run", src, out, "--fixed-stride-min-clip-length", "1")
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 1, text
    for path, data in theirs.items():
        assert path.read_bytes() == data  # untouched
        assert f"{path} exists and was not written by vidcap" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["retry_needed"] == 2 and summary["videos"]["ok"] == 0
    for path in theirs:
        path.rename(tmp_path / path.name)
    proc = vidcap("run", src, out, "--fixed-stride-min-clip-length", "1")
    assert proc.returncode == 0, proc.stderr
    assert {m["status"] for m in markers(out).values()} == {"ok"}
