"""Caption generation and enhancement with tiny real models: end to end, stage 2, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import make_video

from vidcap.data import Video
from vidcap.models.backends.base import Backend, Result
from vidcap.stages import (
    CaptionEnhancementStage,
    CaptionGenerationStage,
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    VideoReaderStage,
)

pytestmark = pytest.mark.models
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("capvideos")
    make_video(root / "a.mp4", seconds=6, width=320, height=180, fps=30, audio=True)
    make_video(root / "b.mp4", seconds=3, width=256, height=256, fps=25)
    return root


def vidcap(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "vidcap.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(("variant", "fixture"), [("qwen2.5", "tiny_qwen25"), ("qwen3", "tiny_qwen3")])
def test_cli_captions_and_enhancement_end_to_end(
    variant: str, fixture: str, videos: Path, tiny_lm: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(fixture)
    out = tmp_path / "out"
    proc = vidcap(
        "run", str(videos), str(out),
        "--fixed-stride-split-duration", "3",
        "--captioning-window-size", "48", "--captioning-remainder-threshold", "24",
        "--generate-captions", "--captioning-algorithm", variant, "--captioning-model", str(model),
        "--captioning-max-output-tokens", str(MAX_TOKENS), "--captioning-batch-size", "3",
        "--enhance-captions", "--enhance-captions-model", str(tiny_lm),
        "--enhance-captions-max-output-tokens", str(MAX_TOKENS), "--model-dir", str(tmp_path / "models"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metas = [json.loads(p.read_text()) for p in (out / "metas/v0").glob("*.json")]
    windows = [w for m in metas for w in m["windows"]]
    assert len(metas) == 3 and len(windows) == 2 * 2 + 2  # two 3 s clips of a, one of b; 90 / 75 frames
    for w in windows:
        # The model had to write MAX_TOKENS tokens (min tokens = limit) and was cut there.
        assert w["caption_status"] == "truncated", w
        assert w["output_tokens"] == MAX_TOKENS and w["prompt_tokens"] > 20
        assert isinstance(w["qwen_caption"], str) and w["qwen_caption"]
        assert isinstance(w["qwen_lm_enhanced_caption"], str) and w["qwen_lm_enhanced_caption"]
        # The enhanced caption has its own status and counts: cut at the same limit here.
        assert w["enhancement_status"] == "truncated" and w["enhancement_output_tokens"] == MAX_TOKENS
        assert w["enhancement_prompt_tokens"] > 20
        assert w["errors"] == {}
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert len(rows) == len(windows)
    by_key = {(w["start_frame"], w["qwen_caption"]) for w in windows}
    assert {(r["start_frame"], r["qwen_caption"]) for r in rows} == by_key
    assert all(r["output_tokens"] == MAX_TOKENS and r["qwen_lm_enhanced_caption"] for r in rows)
    assert {r["enhancement_status"] for r in rows} == {"truncated"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["caption_status"] == {"truncated": len(windows)}
    # The last lines say it: nothing finished inside the token limit.
    text = " ".join(proc.stderr.split())
    assert f"captions truncated │ {len(windows)} │ {len(windows)}" in text
    assert f"no caption of this run is complete: all {len(windows)} captions failed or were cut at the token" in text
    # The first progress line comes before the models are loaded, not after.
    assert text.index("progress: 0/2 videos") < text.index("captioning model")


def _prepared(video_path: Path, generation: CaptionGenerationStage) -> Video:
    """A video through the stages before ``generation``, bound to it (so its frames are decoded for it)."""
    from vidcap.pipeline import bind

    video = Video(path=video_path, relative_path=video_path.name)
    stages = [
        VideoReaderStage(video_path),
        ClipSplittingStage(clip_len_s=3, clip_stride_s=3, min_clip_length_s=1),
        ClipTranscodingStage(num_cpus_per_worker=2),
        CaptionPreparationStage(window_size=32, remainder_threshold=16),
    ]
    bind([*stages, generation])
    for stage in stages:
        video = stage.process(video)
    return video


class Recording(Backend):
    """Wraps the real backend: records requests, optionally fails some calls."""

    def __init__(self, inner: Backend, fail_batches_over: int | None = None, poison: Any = None) -> None:
        self.inner = inner
        self.calls: list[list[Any]] = []
        self.fail_batches_over = fail_batches_over
        self.poison = poison
        self.name = "recording"

    def generate(self, requests: Sequence[Any], max_tokens: int) -> list[Result]:
        self.calls.append(list(requests))
        if self.fail_batches_over is not None and len(requests) > self.fail_batches_over:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if self.poison is not None and any(r.frames is self.poison for r in requests):
            raise ValueError("this window breaks the model")
        return self.inner.generate(requests, max_tokens)


def test_stage2_sends_a_new_prompt_with_the_first_caption(videos: Path, tiny_qwen25: Path) -> None:
    stage = CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=MAX_TOKENS,
                                   stage2_caption=True)  # fmt: skip
    video = _prepared(videos / "b.mp4", stage)
    stage.setup()
    assert stage._engine is not None
    spy = Recording(stage._engine)
    stage._engine = spy
    firsts: dict[int, str] = {}
    original_store = stage._store

    def remember(window: Any, gen: Any) -> None:
        firsts.setdefault(id(window), gen.text)
        original_store(window, gen)

    stage._store = remember  # type: ignore[method-assign]
    stage.process(video)
    windows = [w for c in video.clips for w in c.windows]
    first_round, second_round = spy.calls[0], spy.calls[1]
    assert len(first_round) == len(second_round) == len(windows) == 2  # 75 frames: 32 + a merged 43
    for window, one, two in zip(windows, first_round, second_round, strict=True):
        assert two.prompt != one.prompt
        assert firsts[id(window)] in two.prompt  # the second prompt quotes the first caption
        assert two.frames is one.frames  # same frames, new instruction
        assert window.caption["qwen"] and window.caption_status == "truncated"


def test_batch_failure_retried_in_halves(videos: Path, tiny_qwen25: Path) -> None:
    stage = CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=MAX_TOKENS,
                                   caption_batch_size=8)  # fmt: skip
    video = _prepared(videos / "a.mp4", stage)
    stage.setup()
    assert stage._engine is not None
    spy = Recording(stage._engine, fail_batches_over=2)
    stage._engine = spy
    stage.process(video)
    windows = [w for c in video.clips for w in c.windows]
    assert len(windows) == 6
    assert all(w.caption_status == "truncated" and w.output_tokens == MAX_TOKENS for w in windows)
    assert [len(c) for c in spy.calls][:3] == [6, 3, 1]  # 6 fails, 3 fails, then pieces of at most 2


def test_one_bad_window_fails_alone(videos: Path, tiny_qwen25: Path) -> None:
    stage = CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", max_output_tokens=MAX_TOKENS)
    video = _prepared(videos / "a.mp4", stage)
    windows = [w for c in video.clips for w in c.windows]
    stage.setup()
    assert stage._engine is not None
    stage._engine = Recording(stage._engine, poison=windows[2].frames["caption"].frames)
    stage.process(video)
    assert windows[2].caption_status == "error" and "breaks the model" in (windows[2].caption_error or "")
    assert "qwen" not in windows[2].caption and windows[2].errors["caption_generation"]
    assert all(w.caption_status == "truncated" for i, w in enumerate(windows) if i != 2)


def test_enhancement_reads_the_caption(tiny_lm: Path) -> None:
    from vidcap.data import Clip, Window

    stage = CaptionEnhancementStage(model=str(tiny_lm), backend="transformers", max_output_tokens=MAX_TOKENS)
    stage.setup()
    request = stage.request("A red car drives down a wet street.")
    assert request.prompt is not None and "A red car drives down a wet street." in request.prompt
    assert request.prompt.endswith("<|im_start|>assistant\n")
    w1 = Window(0, 9, caption={"qwen": "A red car drives down a wet street."})
    w2 = Window(10, 19)  # no caption: left alone
    clip = Clip("2c07bf50-4d24-5cb1-a028-f93c5afbea2e", "x", 0, 20, 10.0, (0.0, 2.0), windows=[w1, w2])
    stage.process(Video(path=Path("x"), relative_path="x", clips=[clip]))
    assert w1.enhanced_caption["qwen_lm"] and "qwen_lm" not in w2.enhanced_caption


def test_offline_without_weights_stops_before_work(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = vidcap("run", str(videos), str(out), "--generate-captions", "--model-dir", str(tmp_path / "empty"))
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "captioning model qwen2.5 (Qwen/Qwen2.5-VL-7B-Instruct)" in message
    assert "--captioning-model" in message and "hf download Qwen/Qwen2.5-VL-7B-Instruct" in message
    assert not out.exists()  # no work started, nothing written


def test_backend_that_cannot_run_the_variant(videos: Path, tmp_path: Path) -> None:
    proc = vidcap("run", str(videos), str(tmp_path / "o"), "--generate-captions", "--captioning-algorithm",
                  "nemotron", "--captioning-backend", "transformers")  # fmt: skip
    assert proc.returncode == 2
    assert "cannot run on the transformers backend" in " ".join(proc.stderr.split())


def test_enhance_without_captions_is_refused(videos: Path, tmp_path: Path) -> None:
    proc = vidcap("run", str(videos), str(tmp_path / "o"), "--enhance-captions")
    assert proc.returncode == 2 and "needs --generate-captions" in " ".join(proc.stderr.split())


def test_model_folders_that_do_not_fit_are_refused_before_work(
    videos: Path, tiny_qwen25: Path, tiny_qwen3: Path, tiny_lm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    def run(*args: str) -> str:
        proc = vidcap("run", str(videos), str(out), "--generate-captions", *args)
        assert proc.returncode == 2, proc.stderr
        return " ".join(proc.stderr.split())

    # Qwen3-VL weights under the default qwen2.5 variant.
    text = run("--captioning-model", str(tiny_qwen3))
    assert f"--captioning-model {tiny_qwen3} holds a Qwen3-VL model" in text
    assert "which --captioning-algorithm qwen2.5 cannot run: pass --captioning-algorithm qwen3" in text
    # A text LM as the captioning model.
    text = run("--captioning-model", str(tiny_lm))
    assert "holds a text-only language model (qwen2), not a vision-language model" in text
    # A vision-language model as the enhancement model.
    text = run("--captioning-model", str(tiny_qwen25), "--enhance-captions", "--enhance-captions-model",
               str(tiny_qwen3))  # fmt: skip
    assert f"--enhance-captions-model {tiny_qwen3} holds a vision-language model (Qwen3-VL)" in text
    assert not out.exists()  # all of it before any work


def test_a_hung_model_call_fails_its_windows_and_the_run_goes_on(
    videos: Path, tiny_qwen25: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog: a generate call that never returns costs its windows (a rerun redoes them), not the run."""
    import threading

    from vidcap import Pipeline
    from vidcap.models.backends.hf import TransformersBackend
    from vidcap.stages import ClipWriterStage

    never = threading.Event()
    real = TransformersBackend.generate
    calls: list[int] = []

    def hang_first(self: TransformersBackend, requests: Sequence[Any], max_tokens: int) -> list[Result]:
        calls.append(len(requests))
        if len(calls) == 1:
            never.wait()  # a hung kernel, a deadlocked engine: never set, the thread ends with the process
        return real(self, requests, max_tokens)

    monkeypatch.setattr(TransformersBackend, "generate", hang_first)
    out = tmp_path / "out"
    result = Pipeline([
        VideoReaderStage(videos), ClipSplittingStage(clip_len_s=3.0, clip_stride_s=3.0),
        ClipTranscodingStage(preset="ultrafast"), CaptionPreparationStage(window_size=48, remainder_threshold=24),
        CaptionGenerationStage(model=str(tiny_qwen25), backend="transformers", caption_batch_size=2,
                               max_output_tokens=MAX_TOKENS, model_timeout_s=3.0),
        ClipWriterStage(out),
    ]).run()  # fmt: skip
    windows = [w for p in (out / "metas/v0").glob("*.json") for w in json.loads(p.read_text())["windows"]]
    assert len(windows) == 6 and len(calls) == 1  # nothing more was sent to a hung engine
    assert all(w["caption_status"] == "error" and "did not answer within 3 s" in w["caption_error"] for w in windows)
    assert len(result.retry_needed) == 2  # both videos are redone by the next run
