"""vidcap never deletes or overwrites what it did not write, never writes outside OUTPUT, and takes odd
inputs (names, links, the same file twice, streamed recordings, non-square pixels) in its stride.

Each case builds its own input; runs go through the CLI, as a user would start them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import make_video, read_marker
from PIL import Image

pytestmark = pytest.mark.slow

ENV = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def vidcap(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidcap.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or ENV,
        errors="replace",
    )


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def markers(out: Path) -> list[dict[str, Any]]:
    return [read_marker(p) for p in sorted((out / "processed_videos").rglob("*.json"))]


@pytest.fixture(scope="module")
def clip_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small video, copied or linked into each case's input."""
    return make_video(tmp_path_factory.mktemp("src") / "v.mp4", seconds=3, width=160, height=96, fps=25)


def fresh(tmp_path: Path, clip_src: Path, *names: str) -> Path:
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    for name in names:
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(clip_src.read_bytes())
    return src


# -- data loss --------------------------------------------------------------------------------------


def test_users_files_in_output_are_never_removed(tmp_path: Path, clip_src: Path) -> None:
    src = fresh(tmp_path, clip_src, "a.mp4", "b.mp4")
    out = tmp_path / "out"
    (out / "clips").mkdir(parents=True)
    (out / "previews" / "mine").mkdir(parents=True)
    (out / "metas" / "v0").mkdir(parents=True)
    users = {
        out / "clips" / "notes.txt": b"my notes",
        # Named exactly like one of vidcap's clips, but vidcap never wrote it.
        out / "clips" / "2c07bf50-4d24-5cb1-a028-f93c5afbea2e.mp4": b"my own clip",
        out / "previews" / "mine" / "family.jpg": b"jpeg",
        out / "metas" / "v0" / "todo.json": b"{}",
        out / "README.txt": b"hello",
    }
    for path, data in users.items():
        path.write_bytes(data)
    first = vidcap("run", src, out, "--generate-previews")
    assert first.returncode == 0, first.stderr
    (src / "b.mp4").write_bytes(b"")  # b changes: its old clip, preview and meta are now vidcap's leftovers
    second = vidcap("run", src, out, "--generate-previews")
    assert second.returncode == 0, second.stderr
    for path, data in users.items():
        assert path.read_bytes() == data, path
    assert "removed 3 files of unfinished or redone videos (1 in clips/, 1 in metas/, 1 in previews/)" in second.stderr
    owned = {rel for m in markers(out) for rel in m["outputs"]}
    clips = {p.relative_to(out).as_posix() for p in (out / "clips").glob("*.mp4")}
    assert clips - owned == {"clips/2c07bf50-4d24-5cb1-a028-f93c5afbea2e.mp4"}  # only the user's file is unowned


def test_symlinked_output_folder_is_refused_and_target_untouched(tmp_path: Path, clip_src: Path) -> None:
    src = fresh(tmp_path, clip_src, "a.mp4")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "family.jpg").write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "previews").symlink_to("../victim")
    proc = vidcap("run", src, out, "--generate-previews")
    assert proc.returncode == 2
    assert "previews is a symbolic link" in " ".join(proc.stderr.split())
    assert [p.name for p in victim.iterdir()] == ["family.jpg"] and (victim / "family.jpg").read_bytes() == b"precious"
    assert not (out / "processed_videos").exists()  # stopped before any work


def test_input_inside_outputs_own_folders_is_refused(tmp_path: Path, clip_src: Path) -> None:
    src = fresh(tmp_path, clip_src, "a.mp4")
    out = tmp_path / "out"
    assert vidcap("run", src, out).returncode == 0
    before = sorted(p.name for p in (out / "clips").iterdir())
    proc = vidcap("run", out / "clips", out)
    assert proc.returncode == 2 and "is inside" in proc.stderr and "own results" in " ".join(proc.stderr.split())
    assert sorted(p.name for p in (out / "clips").iterdir()) == before  # INPUT is never touched


def test_input_equal_to_output_never_takes_its_own_outputs(tmp_path: Path, clip_src: Path) -> None:
    both = fresh(tmp_path, clip_src, "a.mp4", "sub/b.mp4")
    first = vidcap("run", both, both, "--generate-previews")
    assert first.returncode == 0, first.stderr
    assert summary(both)["videos"]["total"] == 2
    second = vidcap("run", both, both, "--generate-previews")
    assert second.returncode == 0, second.stderr
    assert "0 videos to process, 2 done earlier" in second.stderr
    assert summary(both)["videos"]["total"] == 2 and (both / "a.mp4").is_file() and (both / "sub/b.mp4").is_file()


def test_streamed_webm_without_duration_is_counted_by_demuxing(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    # A recording written as a stream: no duration, no index in the header.
    with (src / "rec.webm").open("wb") as sink:
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
             "testsrc2=size=160x96:rate=25:duration=12", "-c:v", "libvpx-vp9", "-deadline", "realtime",
             "-f", "webm", "-"],
            stdout=sink, check=True,
        )  # fmt: skip
    out = tmp_path / "out"
    proc = vidcap("run", src, out)
    assert proc.returncode == 0, proc.stderr
    (marker,) = markers(out)
    assert marker["status"] == "ok", marker["errors"]
    assert marker["metadata"]["num_frames"] == 300 and marker["metadata"]["duration_s"] == pytest.approx(12.0)
    assert len(marker["clips"]) == 2  # 0-10 s and 10-12 s


# -- inputs ------------------------------------------------------------------------------------------


def test_odd_names(tmp_path: Path, clip_src: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    data = clip_src.read_bytes()
    bad = os.fsencode(src) + b"/bad\xff.mp4"
    with open(bad, "wb") as f:
        f.write(data)
    long_name = "l" * 246 + ".mp4"  # 250 bytes: a legal name; with .json and a temp suffix it would not be
    (src / long_name).write_bytes(data)
    (src / "a.mp4").write_bytes(data)
    (src / "a.mp4.json").mkdir()  # a folder named like a.mp4's marker
    (src / "a.mp4.json" / "inner.mp4").write_bytes(data)
    (src / "back\\slash.mp4").write_bytes(data)
    out = tmp_path / "out"
    for attempt in range(2):
        proc = vidcap("run", src, out, "--generate-previews")
        assert proc.returncode == 0, proc.stderr
        done = summary(out)["videos"]
        assert done["total"] == done["ok"] == 5, summary(out)["failures"]
        assert done["processed_this_run"] == (5 if attempt == 0 else 0)  # and a rerun has nothing to do
    names = sorted(m["relative_path"] for m in markers(out))
    assert names == sorted(["a.mp4", "a.mp4.json/inner.mp4", "back\\slash.mp4", "bad\\xff.mp4", long_name])
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert sorted({r["relative_path"] for r in rows}) == names
    # A .txt list may hold such bytes too.
    listing = tmp_path / "list.txt"
    listing.write_bytes(bad + b"\n" + os.fsencode(src / "a.mp4") + b"\n")
    proc = vidcap("run", listing, tmp_path / "out2")
    assert proc.returncode == 0, proc.stderr
    assert summary(tmp_path / "out2")["videos"]["ok"] == 2


def test_links_loops_and_the_same_file_twice(tmp_path: Path, clip_src: Path) -> None:
    src = fresh(tmp_path, clip_src, "real.mp4", "other/b.mp4")
    (src / "z_link.mp4").symlink_to("real.mp4")  # the same file under a second name
    (src / "loop.mp4").symlink_to("loop.mp4")  # a link to itself
    (src / "gone.mp4").symlink_to("nowhere.mp4")
    (src / "linked_dir").symlink_to("other")  # a linked folder: followed
    (src / "other" / "up").symlink_to("..")  # a folder loop
    out = tmp_path / "out"
    proc = vidcap("run", src, out)
    assert proc.returncode == 0, proc.stderr
    by_name = {m["relative_path"]: m for m in markers(out)}
    assert sorted(by_name) == ["gone.mp4", "loop.mp4", "other/b.mp4", "real.mp4"]
    assert by_name["loop.mp4"]["status"] == "failed"
    assert "symbolic link loop" in by_name["loop.mp4"]["errors"][0]["reason"]
    assert "broken symbolic link" in by_name["gone.mp4"]["errors"][0]["reason"]
    assert not by_name["loop.mp4"]["retry"]
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert len(rows) == len({(r["clip_uuid"], r["start_frame"]) for r in rows}) == 2  # each file once
    # A .txt list naming one file five ways.
    listing = tmp_path / "list.txt"
    ways = ["in/real.mp4", str(src / "real.mp4"), "in/./real.mp4", "in/z_link.mp4", "in/other/../real.mp4"]
    listing.write_text("\n".join(ways) + "\n")
    out2 = tmp_path / "out2"
    assert vidcap("run", listing, out2).returncode == 0
    assert summary(out2)["videos"]["total"] == 1 and summary(out2)["windows"] == 1


def test_subfolder_then_parent_into_one_output_settles(tmp_path: Path, clip_src: Path) -> None:
    src = fresh(tmp_path, clip_src, "top.mp4", "sub/deep.mp4")
    out = tmp_path / "out"
    assert vidcap("run", src / "sub", out).returncode == 0
    parent = vidcap("run", src, out)
    assert parent.returncode == 0, parent.stderr
    assert "1 videos to process, 1 done earlier" in parent.stderr  # sub/deep.mp4 is deep.mp4, done already
    again = vidcap("run", src, out)
    assert "0 videos to process, 2 done earlier" in again.stderr
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert len(rows) == 2 and summary(out)["videos"]["total"] == 2


def test_non_square_pixels_use_the_display_aspect(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    # 720x480 stored, 32:27 pixels: 16:9 on screen.
    make_video(src / "dvd.mp4", seconds=3, width=720, height=480, fps=25, extra=["-vf", "setsar=32/27"])
    out = tmp_path / "out"
    assert vidcap("run", src, out, "--generate-previews").returncode == 0
    (marker,) = markers(out)
    meta = json.loads((out / "metas/v0" / f"{marker['clips'][0]}.json").read_text())
    assert (meta["width_source"], meta["height_source"]) == (853, 480)
    assert Image.open(out / meta["windows"][0]["preview_location"]).size == (426, 240)  # 852x480 clip: 16:9, not 3:2
    # The frames a model sees keep that shape too.
    from vidcap.data import Video
    from vidcap.pipeline import bind
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        VideoReaderStage,
    )

    video = Video(path=src / "dvd.mp4", relative_path="dvd.mp4")
    stages = [VideoReaderStage(src), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
              CaptionPreparationStage()]  # fmt: skip
    bind([*stages, CaptionGenerationStage(backend="transformers")])
    for stage in stages:
        video = stage.process(video)
    frames = video.clips[0].windows[0].frames["caption"].frames
    assert frames.shape[2] / frames.shape[1] == pytest.approx(16 / 9, rel=0.05)
