from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vidcap.cli import app

RUN_FLAGS = {
    "--splitting-algorithm": "fixed_stride",
    "--fixed-stride-split-duration": "10.0",
    "--fixed-stride-min-clip-length": "2.0",
    "--transcode-encoder": "libx264",
    "--captioning-window-size": "256",
    "--captioning-remainder-threshold": "128",
    "--preview-target-fps": "1.0",
    "--preview-target-height": "240",
    "--preview-compression-level": "6",
    "--preview-quality": "50",
    "--executor": "local",
}


def vidcap(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vidcap.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def test_help_documents_every_flag_with_default() -> None:
    proc = vidcap("run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for flag, value in RUN_FLAGS.items():
        match = re.search(re.escape(flag) + r" .*?\[default: ([^\]]+)\]", text)
        assert match, f"{flag} missing from help"
        assert match.group(1) == value, flag
    for flag in ("--generate-previews", "--ray-address", "--limit", "--overwrite"):
        assert flag in text
    assert re.search(r"--captioning-sampling-fps .*?\(default 2\)", text)
    # Every option of the command shows up, and each non-flag option has a default shown.
    import typer.main

    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                # NeMo Curator's spellings are accepted but kept out of the help.
                assert (opt in text) != bool(getattr(param, "hidden", False)), opt


def test_run_with_bad_files_exits_zero(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vidcap("run", str(corpus), str(out), "--generate-previews", "--fixed-stride-split-duration", "5")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["failed"] == 3 and summary["videos"]["ok"] == 4
    for name in ("zero.mp4", "notes.mp4", "truncated.mp4"):
        assert name in proc.stderr  # named in the log with its reason
    assert "empty file (0 bytes)" in proc.stderr
    assert summary["previews"] == summary["windows"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preview-quality", "101"], "--preview-quality must be between 0 and 100, got 101"),
        (["--preview-compression-level", "9"], "--preview-compression-level must be between 0 and 6"),
        (["--captioning-window-size", "3"], "--captioning-window-size must be between 4 and"),
        # The window size also sets the clips' keyframe interval: the message names the flag, not that field.
        (["--captioning-window-size", "0"], "--captioning-window-size must be between 4 and"),
        (["--captioning-window-size", "99999999999999999999"], "--captioning-window-size must be between 4"),
        (["--fixed-stride-split-duration", "0"], "--fixed-stride-split-duration must be between 0.001 and"),
        (["--fixed-stride-split-duration", "nan"], "--fixed-stride-split-duration must be between 0.001 and"),
        (["--fixed-stride-split-duration", "inf"], "--fixed-stride-split-duration must be between"),
        (["--fixed-stride-min-clip-length", "1e400"], "--fixed-stride-min-clip-length must be between 0 and"),
        (["--splitting-algorithm", "magic"], "--splitting-algorithm must be one of fixed_stride, scene, none"),
        (["--transcode-cpus-per-worker", "0"], "--transcode-cpus-per-worker must be between 0.01 and"),
        (["--transcode-preset", "fast-ish"], "--transcode-preset 'fast-ish' is not a preset of"),
        (["--transcode-encoder", "h264_nvenc"], "--transcode-encoder h264_nvenc cannot encode on this machine"),
        (["--transcode-encoder", "libnotreal"], "--transcode-encoder libnotreal cannot encode on this machine"),
        (["--preview-target-fps", "0"], "--preview-target-fps must be between"),
        (["--preview-target-height", "100000000"], "--preview-target-height must be between 16 and 4320"),
        (["--captioning-sampling-fps", "-inf"], "--captioning-sampling-fps must be between"),
        (["--generate-captions", "--captioning-batch-size", "0"], "--captioning-batch-size must be between 1 and"),
        (["--generate-captions", "--captioning-max-output-tokens", "0"], "--captioning-max-output-tokens must be"),
        (["--generate-captions", "--captioning-algorithm", "llava"], "--captioning-algorithm must be one of qwen2.5"),
        (["--generate-captions", "--captioning-prompt-variant", "poem"], "--captioning-prompt-variant must be one"),
        (["--generate-captions", "--captioning-backend", "openai"], "--captioning-backend openai needs --openai-base"),
        (["--generate-captions", "--captioning-backend", "magic"], "--captioning-backend must be one of"),
        (["--limit", "0"], "--limit must be between 1 and"),
    ],
)
def test_bad_flags_exit_two(tmp_path: Path, corpus: Path, args: list[str], message: str) -> None:
    proc = vidcap("run", str(corpus), str(tmp_path / "out"), "--generate-previews", *args)
    assert proc.returncode == 2
    assert message in " ".join(proc.stderr.split())
    assert not (tmp_path / "out").exists()


def test_no_videos_exits_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = vidcap("run", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert proc.returncode == 1 and "no videos found" in proc.stderr


def test_missing_input_and_unwritable_output(tmp_path: Path, corpus: Path) -> None:
    proc = vidcap("run", str(tmp_path / "nope"), str(tmp_path / "out"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "afile").write_text("x")
    proc = vidcap("run", str(corpus), str(tmp_path / "afile" / "out"))
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr
    # Missing parents are created.
    proc = vidcap("run", str(corpus / "b25.mov"), str(tmp_path / "new" / "deep" / "out"))
    assert proc.returncode == 0 and (tmp_path / "new" / "deep" / "out" / "summary.json").is_file()


def test_list_file_input(corpus: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{corpus / 'b25.mov'}\n\n{corpus / 'sub' / 'c60.mkv'}\n")
    out = tmp_path / "out"
    proc = vidcap("run", str(listing), str(out), "--fixed-stride-min-clip-length", "1")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["ok"] == 2 and summary["clips"] == 2


def test_doctor_lists_checks() -> None:
    proc = vidcap("doctor")
    assert proc.returncode == 0, proc.stdout
    for name in ("ffmpeg libwebp", "ffmpeg libx264", "PyAV", "torch", "vLLM", "Ray"):
        assert name in proc.stdout


@pytest.mark.models
def test_nemo_curator_spellings(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vidcap("run", "--video-dir", str(corpus / "sub"), "--output-clip-path", str(out), "--video-limit", "1",
                  "--fixed-stride-min-clip-length-s", "1.5")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["processed_this_run"] == 1
    assert summary["settings"]["clip_splitting"]["min_clip_length_s"] == 1.5
    # Newer Curator names the enhancement model in the algorithm flag; the older prompt flag is spelled
    # --enhance-captioning-...: both reach the enhancement stage (here it stops at the missing weights).
    proc = vidcap("run", str(corpus / "b25.mov"), str(tmp_path / "o2"), "--generate-captions", "--enhance-captions",
                  "--enhance-captions-algorithm", "qwen3", "--enhance-captioning-prompt-variant", "nope",
                  "--model-dir", str(tmp_path / "m"))  # fmt: skip
    assert proc.returncode == 2
    assert "--enhance-captions-prompt-variant must be one of default, av-surveillance, got 'nope'" in " ".join(
        proc.stderr.split()
    )
    proc = vidcap("run", str(corpus / "b25.mov"), str(tmp_path / "o2"), "--generate-captions", "--enhance-captions",
                  "--enhance-captions-algorithm", "qwen3", "--model-dir", str(tmp_path / "m"))  # fmt: skip
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "enhancement model qwen3 (Qwen/Qwen3-14B)" in text
    # Both missing models are named, each with the flag that takes a local folder.
    assert "captioning model qwen2.5 (Qwen/Qwen2.5-VL-7B-Instruct)" in text
    assert "--captioning-model" in text and "--enhance-captions-model" in text
    assert not (tmp_path / "o2").exists()
