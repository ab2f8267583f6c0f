"""The openai backend against a real HTTP server on 127.0.0.1 that checks what it receives."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openai")

from fake_openai import FakeServer

from vidcap.models.backends.openai_api import OpenAIBackend
from vidcap.models.inputs import TextInput, input_format
from vidcap.models.registry import caption_model


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.httpd.shutdown()


def _window(n: int = 4) -> Any:
    frames = np.stack([np.full((32, 48, 3), 40 * i, np.uint8) for i in range(n)])
    return input_format(caption_model("qwen2.5")).build("Describe.", frames, [0, 10, 20, 29][:n], 10.0, 30)


def _backend(url: str, **kwargs: Any) -> OpenAIBackend:
    from vidcap.models.backends import EngineOptions, build_backend

    backend = build_backend("openai", caption_model("qwen2.5"), model_path=None, model_name="m",
                            options=EngineOptions(openai_base_url=url, **kwargs))  # fmt: skip
    assert isinstance(backend, OpenAIBackend)
    backend.backoff_s = 0.01
    return backend


def test_a_window_goes_as_one_video_with_its_times(server: FakeServer) -> None:
    (result,) = _backend(server.url).generate([_window()], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    body = server.requests[0]
    (message,) = body["messages"]
    video, text = message["content"]
    assert text == {"type": "text", "text": "Describe."}
    url = video["video_url"]["url"]
    assert video["type"] == "video_url" and url.startswith("data:video/jpeg;base64,")
    frames = [Image.open(io.BytesIO(base64.b64decode(part))) for part in url.split(",")[1:]]
    assert [f.size for f in frames] == [(48, 32)] * 4 and abs(np.asarray(frames[2]).mean() - 80) < 3
    # Frame times as vLLM's processor reads them (Qwen2.5-VL: the clip at its sampled rate), every frame kept.
    media = body["media_io_kwargs"]["video"]
    assert media["fps"] == pytest.approx(4 / 30 * 10) and media["frames_indices"] == [0, 1, 2, 3]
    assert media["num_frames"] == -1
    assert body["mm_processor_kwargs"] == {"do_sample_frames": False, "do_resize": False}


def test_a_server_that_refuses_options_or_video_is_learned_from(server: FakeServer,
                                                                 caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    server.script = ["400-options"]
    backend = _backend(server.url)
    (result,) = backend.generate([_window()], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    assert "media_io_kwargs" in server.requests[0] and "media_io_kwargs" not in server.requests[1]
    assert not backend.send_options and "--trust-request-mm-kwargs" in caplog.text
    server.script = ["400-video"]
    (result,) = backend.generate([_window()], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    assert [p["type"] for p in server.requests[-1]["messages"][0]["content"]][:2] == ["text", "image_url"]
    assert not backend.as_video and "takes no video" in caplog.text
    # With --openai-media video the refusal stands, as the user asked.
    server.script = ["400-video"]
    (refused,) = _backend(server.url, openai_media="video").generate([_window()], max_tokens=16)
    assert isinstance(refused, Exception)


def test_images_on_request(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend("Qwen/Qwen2.5-VL-7B-Instruct", server.url, concurrency=2, media="images")
    results = backend.generate([_window(), _window()], max_tokens=64)
    assert [r.text for r in results] == ["saw 4 frames", "saw 4 frames"]  # type: ignore[union-attr]
    assert results[0].prompt_tokens == 104 and results[0].output_tokens == 3  # type: ignore[union-attr]
    body = server.requests[0]
    assert body["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert body["max_tokens"] == 64 and body["temperature"] == 0.1 and body["top_p"] == 0.001
    assert body["repetition_penalty"] == 1.05 and body["min_tokens"] == 16
    (message,) = body["messages"]
    assert message["role"] == "user"
    parts = message["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 4
    assert [p["text"] for p in parts if p["type"] == "text"][:4] == [
        "<0.0 seconds>",
        "<1.0 seconds>",
        "<2.0 seconds>",
        "<2.9 seconds>",
    ]
    assert parts[-1] == {"type": "text", "text": "Describe."}
    # Frames arrive as real JPEGs of the right size and content.
    url = images[2]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (48, 32) and abs(np.asarray(img).mean() - 80) < 3
    assert server.auth[0] == "Bearer sk-test-secret"
    assert "sk-test-secret" not in caplog.text  # the key travels in the header only, never in logs


def test_retries_500_then_succeeds(server: FakeServer) -> None:
    server.script = ["500", "500"]
    backend = OpenAIBackend("m", server.url, backoff_s=0.01, max_retries=3)
    (result,) = backend.generate([_window()], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    assert len(server.requests) == 3


def test_retries_timeout_then_succeeds(server: FakeServer) -> None:
    server.script = ["sleep"]
    backend = OpenAIBackend("m", server.url, timeout_s=0.5, backoff_s=0.01, max_retries=2)
    (result,) = backend.generate([_window()], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    assert len(server.requests) == 2


def test_gives_up_and_reports_per_request(server: FakeServer) -> None:
    import openai

    server.script = ["400"]
    backend = OpenAIBackend("m", server.url, backoff_s=0.01, max_retries=3, concurrency=1)
    bad, good = backend.generate([_window(), _window()], max_tokens=16)
    assert isinstance(bad, openai.BadRequestError)  # a 4xx is not retried
    assert good.text == "saw 4 frames"  # type: ignore[union-attr]
    assert len(server.requests) == 2
    server.script = ["500"] * 3
    (failed,) = OpenAIBackend("m", server.url, backoff_s=0.01, max_retries=2).generate([_window()], 16)
    assert isinstance(failed, openai.InternalServerError)


def test_text_request_for_enhancement(server: FakeServer) -> None:
    backend = OpenAIBackend("lm", server.url, chat_template_kwargs={"enable_thinking": False})
    (result,) = backend.generate(
        [TextInput(messages=[{"role": "user", "content": "Rewrite: a cat."}], prompt=None)], 32
    )
    assert result.text == "saw 0 frames"  # type: ignore[union-attr]
    assert server.requests[0]["messages"] == [{"role": "user", "content": "Rewrite: a cat."}]
    assert server.requests[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_the_timeout_is_a_deadline_for_the_whole_answer(server: FakeServer) -> None:
    """A server that sends its answer a byte a second: --openai-timeout 2 ends the try after 2 s, not when
    the answer is complete (a per-read timeout would wait for ever)."""
    server.script = ["trickle"]
    backend = OpenAIBackend("m", server.url, timeout_s=2.0, max_retries=0)
    start = time.monotonic()
    (result,) = backend.generate([_window()], max_tokens=16)
    assert time.monotonic() - start < 4.0
    assert isinstance(result, TimeoutError) and "no complete answer within 2 s" in str(result)
    backend.close()


def test_retry_after_is_honoured(server: FakeServer) -> None:
    server.script = ["429:1.5", "429:1.5"]
    backend = OpenAIBackend("m", server.url, backoff_s=0.01, max_retries=3)
    (result,) = backend.generate([_window()], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    first, second = server.times
    assert second - first >= 1.4  # not the 0.01 s backoff: the wait the server asked for


def test_an_answer_without_choices_fails_its_window_alone_without_a_storm(server: FakeServer) -> None:
    from vidcap.models.backends.base import generate_isolated

    server.script = ["ok", "empty-choices", "ok"]
    backend = OpenAIBackend("m", server.url, concurrency=1)
    results = generate_isolated(backend, [_window(), _window(), _window()], 16)
    assert len(server.requests) == 3  # one request per window: no halving and resending
    assert "without any choice" in str(results[1]) and results[0].text == results[2].text == "saw 4 frames"  # type: ignore[union-attr]


def test_no_usage_is_no_count(server: FakeServer) -> None:
    server.script = ["no-usage"]
    (result,) = OpenAIBackend("m", server.url).generate([_window()], 16)
    assert result.text == "saw 4 frames" and result.prompt_tokens is None and result.output_tokens is None  # type: ignore[union-attr]


def test_a_window_too_large_for_the_server_fails_alone_and_says_what_it_needs(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An encoder-cache refusal mentions video, but is no refusal of video: the window fails with the number
    the server needs, and later windows still go as video."""
    server.script = ["400-cache"]
    backend = _backend(server.url)
    backend.largest_window_tokens = 26624
    (refused,) = backend.generate([_window()], max_tokens=16)
    assert "--max-num-batched-tokens 26624" in str(refused) and "needs 2300" in str(refused)
    assert backend.as_video and "takes no video" not in caplog.text
    (ok,) = backend.generate([_window()], max_tokens=16)
    assert ok.text == "saw 4 frames" and "video_url" in json.dumps(server.requests[-1])  # type: ignore[union-attr]


def test_nemotron_3_nano_omni_asks_the_server_to_skip_reasoning(server: FakeServer) -> None:
    from vidcap.models.backends import EngineOptions, build_backend

    spec = caption_model("nemotron-3-nano-omni")
    backend = build_backend("openai", spec, model_path=None, model_name="omni",
                            options=EngineOptions(openai_base_url=server.url))  # fmt: skip
    frames = np.stack([np.full((512, 512, 3), 40 * i, np.uint8) for i in range(4)])
    window = input_format(spec).build("Describe.", frames, [0, 10, 20, 29], 10.0, 30)
    (result,) = backend.generate([window], max_tokens=16)
    assert result.text == "saw 4 frames"  # type: ignore[union-attr]
    body = server.requests[0]
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert [m["role"] for m in body["messages"]] == ["user"]  # no /no_think turn: the template switch does it
    # Nemotron's processor reads frame times in milliseconds.
    assert body["media_io_kwargs"]["video"]["frames_indices"] == [0, 1000, 2000, 2900]  # frames 0-29 at 10 fps
