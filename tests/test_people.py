"""What a person sees: the Python API says what it does without any logging set up, and Ray's start-up notices
(meant for Ray's developers) do not reach vidcap's users."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

API_RUN = """
import sys
from vidcap import Pipeline
from vidcap.stages import ClipSplittingStage, ClipTranscodingStage, ClipWriterStage, VideoReaderStage
{setup}
Pipeline([VideoReaderStage(sys.argv[1]), ClipSplittingStage(min_clip_length_s=1),
          ClipTranscodingStage(preset="ultrafast"), ClipWriterStage(sys.argv[2])]).run()
"""


def api(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip


def test_python_api_logs_progress_without_logging_configured(corpus: Path, tmp_path: Path) -> None:
    proc = api(API_RUN.format(setup=""), str(corpus / "b25.mov"), str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "1 videos to process" in proc.stderr and "progress: 1/1 videos" in proc.stderr  # unasked
    # A program that configures logging keeps its own way: nothing doubled, nothing added.
    setup = f"import logging; logging.basicConfig(filename={str(tmp_path / 'log.txt')!r}, level=logging.INFO)"
    proc = api(API_RUN.format(setup=setup), str(corpus / "b25.mov"), str(tmp_path / "out2"))
    assert proc.returncode == 0, proc.stderr
    assert "videos to process" not in proc.stderr
    assert "1 videos to process" in (tmp_path / "log.txt").read_text()


@pytest.mark.slow
def test_ray_start_up_notices_are_not_shown(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "run", str(corpus / "b25.mov"), str(tmp_path / "out"), "--executor",
         "ray", "--fixed-stride-min-clip-length", "1", "--transcode-preset", "ultrafast"],
        capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled", "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for notice in ("DeprecationWarning", "FutureWarning", "deprecated", "RAY_AUTH", "token"):
        assert notice not in text, text[-3000:]
