"""The openai backend against a real HTTP server on 127.0.0.1 that checks what it receives."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openai")

from vidcap.models.backends.openai_api import OpenAIBackend
from vidcap.models.inputs import TextInput, input_format
from vidcap.models.registry import caption_model


class FakeServer:
    """Answers chat completions; ``script`` says what to do with each next request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.script: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.auth.append(self.headers.get("Authorization"))
                action = server.script.pop(0) if server.script else "ok"
                if action == "500":
                    self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                elif action == "400":
                    self._send(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
                elif action == "400-options" and "media_io_kwargs" in body:
                    # What vLLM says when started without --trust-request-mm-kwargs.
                    message = "Per-request media_io_kwargs are disabled by default ... (parameter=media_io_kwargs)"
                    self._send(400, {"error": {"message": message, "type": "BadRequestError"}})
                elif action == "400-video" and "video_url" in json.dumps(body["messages"]):
                    message = "At most 0 video(s) may be provided in one prompt."
                    self._send(400, {"error": {"message": message, "type": "BadRequestError"}})
                elif action == "sleep":
                    time.sleep(1.5)
                    self._send(200, server.answer(body))
                else:
                    self._send(200, server.answer(body))

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        content = body["messages"][-1]["content"]
        images = sum(1 for p in content if p.get("type") == "image_url") if isinstance(content, list) else 0
        videos = [p for p in content if p.get("type") == "video_url"] if isinstance(content, list) else []
        if videos:
            images = videos[0]["video_url"]["url"].count(",")  # data:video/jpeg;base64,<f1>,<f2>,...
        text = f"saw {images} frames"
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100 + images, "completion_tokens": 3, "total_tokens": 103 + images},
        }


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
    assert media["fps"] == pytest.approx(3 / (29 / 10)) and media["frames_indices"] == [0, 1, 2, 3]
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
