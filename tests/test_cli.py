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
    "--captioning-sampling-fps": "2.0",
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
    # Every option of the command shows up, and each non-flag option has a default shown.
    import typer.main

    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in text


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
        (["--preview-quality", "101"], "preview quality must be between 0 and 100"),
        (["--preview-compression-level", "9"], "compression_level must be between 0 and 6"),
        (["--captioning-window-size", "3"], "window_size must be at least 4"),
        (["--fixed-stride-split-duration", "0"], "clip_len_s must be at least"),
        (["--splitting-algorithm", "magic"], "magic"),
        (["--transcode-cpus-per-worker", "0"], "num_cpus_per_worker must be at least"),
        (["--preview-target-fps", "0"], "target_fps must be at least"),
        (["--captioning-sampling-fps", "0"], "sampling_fps must be at least"),
        (["--generate-captions", "--captioning-batch-size", "0"], "caption_batch_size must be at least 1"),
        (["--generate-captions", "--captioning-max-output-tokens", "0"], "max_output_tokens must be at least 1"),
        (["--generate-captions", "--captioning-algorithm", "llava"], "captioning model variant must be one of"),
        (["--generate-captions", "--captioning-prompt-variant", "poem"], "captioning prompt variant must be one"),
        (["--limit", "0"], "Invalid value for '--limit'"),
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
