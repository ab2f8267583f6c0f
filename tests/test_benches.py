"""The benches run (small) so that they keep working; their figures are printed, not asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.models]

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_gpu_caption_bench_runs_on_the_cpu_with_a_tiny_model() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_caption.py"), "--tiny", "--videos", "4", "--seconds", "3", "--size",
         "256x144", "--new-tokens", "4", "--baseline-windows", "2"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "plain generate, batch 1: 2 windows" in out
    assert "vidcap pipeline: 4 videos, 4 windows" in out and "1 engine calls, largest 4" in out
    assert "tokens per window on average (plain: 4)" in out and "vidcap / plain batch 1: x" in out


def test_storage_bench_runs_against_a_local_s3_server() -> None:
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_storage.py"), "--videos", "2", "--seconds", "3", "--repeat", "1"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bucket / local: x" in proc.stdout + proc.stderr
