"""A corpus of broken and unusual inputs through the CLI: bad files named with reasons, good ones whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import damage, make_video, read_marker, set_rotation
from PIL import Image

pytestmark = pytest.mark.slow

# name -> (status, words the reason must contain); status None means "processed cleanly".
BAD: dict[str, tuple[str, str]] = {
    "truncated_half.mp4": ("failed", "not a readable video container"),
    "truncated_in_moov.mp4": ("failed", "no streams found (the container is truncated or damaged)"),
    "zero.mp4": ("failed", "empty file (0 bytes)"),
    "text.mp4": ("failed", "not a readable video container"),
    "audio_only.mp4": ("failed", "no video stream (audio only)"),
    "one_frame.mp4": ("failed", "no clip of at least 2 s in a 0.04 s video (1 frames)"),
    "two_frames.mp4": ("failed", "no clip of at least 2 s in a 0.08 s video (2 frames)"),
    "truncated_half_faststart.mp4": ("partial", "source ends early"),
    "corrupted_middle.mp4": ("partial", "source has decode errors"),
}
GOOD = ["odd_641x359.mp4", "rotated_phone.mp4", "vfr.mp4", "uhd_4k60.mp4", "long_10min_lowres.mp4",
        "my vidéo 東京 (1).mp4"]  # fmt: skip


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    full = make_video(root / "full.tmp", seconds=8, fps=25, extra=["-f", "mp4"]).read_bytes()
    (root / "full.tmp").unlink()
    (root / "truncated_half.mp4").write_bytes(full[: len(full) // 2])  # moov at the end: lost
    fast = make_video(root / "fast.tmp", seconds=8, fps=25, extra=["-movflags", "+faststart", "-f", "mp4"])
    data = fast.read_bytes()
    fast.unlink()
    (root / "truncated_half_faststart.mp4").write_bytes(data[: len(data) // 2])  # index first, data half gone
    moov = data.find(b"moov")
    (root / "truncated_in_moov.mp4").write_bytes(data[: moov + 200])
    (root / "zero.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video, just text\n" * 20)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", str(root / "audio_only.mp4"))
    make_video(root / "one_frame.mp4", seconds=1, fps=25, extra=["-frames:v", "1"])
    make_video(root / "two_frames.mp4", seconds=1, fps=25, extra=["-frames:v", "2"])
    make_video(root / "odd_641x359.mp4", seconds=3, width=640, height=360, fps=30,
               extra=["-vf", "scale=641:359", "-pix_fmt", "yuv444p"])  # fmt: skip
    set_rotation(make_video(root / "rotated_phone.mp4", seconds=3, width=320, height=180, fps=30, audio=True), 90)
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=30:duration=6",
        "-vf",
        "select='lt(t\\,2)+not(mod(n\\,3))'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        str(root / "vfr.mp4"),
    )
    make_video(root / "uhd_4k60.mp4", seconds=3, width=3840, height=2160, fps=60)
    make_video(root / "long_10min_lowres.mp4", seconds=600, width=128, height=72, fps=10)
    make_video(root / "my vidéo 東京 (1).mp4", seconds=3, fps=24, audio=True)
    damage(make_video(root / "corrupted_middle.mp4", seconds=6, fps=30, extra=["-movflags", "+faststart"]), 0.5, 20000)
    return root


@pytest.fixture(scope="module")
def run(faults: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("faults_out") / "out"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "run", str(faults), str(out), "--generate-previews",
         "--transcode-preset", "ultrafast", "--transcode-cpus-per-worker", "2"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    return proc, out


def test_exit_zero(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = run
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_bad_files_named_with_reasons(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = run
    summary = json.loads((out / "summary.json").read_text())
    reasons: dict[str, list[str]] = {}
    for failure in summary["failures"]:
        reasons.setdefault(failure["video"], []).append(failure["reason"])
    assert set(reasons) == set(BAD)
    for name, (status, words) in BAD.items():
        marker = read_marker(out / "processed_videos" / f"{name}.json")
        assert marker["status"] == status, name
        assert any(words in r for r in reasons[name]), (name, reasons[name])
        assert name in proc.stderr  # and in the log
    assert sorted(summary["failed_videos"]) == sorted(n for n, (s, _) in BAD.items() if s == "failed")
    assert summary["videos"]["total"] == len(BAD) + len(GOOD)


def test_good_files_fully_processed(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = run
    for name in GOOD:
        marker = read_marker(out / "processed_videos" / f"{name}.json")
        assert marker["status"] == "ok" and marker["errors"] == [], name
        assert marker["counts"]["clips"] == len(marker["clips"]) > 0
        assert marker["counts"]["windows"] == marker["counts"]["previews"] > 0
        for uid in marker["clips"]:
            meta = json.loads((out / "metas/v0" / f"{uid}.json").read_text())
            assert meta["valid"] and (out / meta["clip_path"]).is_file()
            for w in meta["windows"]:
                assert Image.open(out / w["preview_location"]).size[1] == 240


def test_unusual_inputs_come_out_right(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = run

    def metas(name: str) -> list[dict]:
        marker = read_marker(out / "processed_videos" / f"{name}.json")
        return [json.loads((out / "metas/v0" / f"{u}.json").read_text()) for u in marker["clips"]]

    (rotated,) = metas("rotated_phone.mp4")
    assert (rotated["width_source"], rotated["height_source"]) == (180, 320)  # displayed upright
    preview = Image.open(out / rotated["windows"][0]["preview_location"])
    assert preview.size == (135, 240)  # portrait, like the video
    (odd,) = metas("odd_641x359.mp4")
    # Squeezed from 640x360, ffmpeg kept the 16:9 picture with non-square pixels: 638 wide on screen.
    assert (odd["width_source"], odd["height_source"]) == (638, 359)
    assert len(metas("long_10min_lowres.mp4")) == 60
    (uhd,) = metas("uhd_4k60.mp4")
    assert uhd["num_frames"] == 180 and uhd["framerate_source"] == 60.0
    assert Image.open(out / uhd["windows"][0]["preview_location"]).size == (427, 240)
