"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat API as vLLM does, and misbehaves on cue."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeServer:
    """Answers chat completions; ``script`` says what to do with each next request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.script: list[str] = []
        self.times: list[float] = []
        # What to do once the script is used up ("400-options": a vLLM server without --trust-request-mm-kwargs).
        self.default = "ok"
        self.cut_off = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.auth.append(self.headers.get("Authorization"))
                action = server.script.pop(0) if server.script else server.default
                if action == "500":
                    self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                elif action == "400":
                    self._send(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
                elif action == "400-options" and ("media_io_kwargs" in body or "mm_processor_kwargs" in body):
                    # What vLLM says when started without --trust-request-mm-kwargs.
                    message = "Per-request media_io_kwargs are disabled by default ... (parameter=media_io_kwargs)"
                    self._send(400, {"error": {"message": message, "type": "BadRequestError"}})
                elif action == "400-video" and "video_url" in json.dumps(body["messages"]):
                    message = "At most 0 video(s) may be provided in one prompt."
                    self._send(400, {"error": {"message": message, "type": "BadRequestError"}})
                elif action == "sleep":
                    time.sleep(1.5)
                    self._send(200, server.answer(body))
                elif action.startswith("429"):  # "429:12" asks for 12 s in Retry-After
                    wait = action.partition(":")[2] or "1"
                    server.times.append(time.monotonic())
                    self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                               headers={"Retry-After": wait})  # fmt: skip
                elif action == "trickle":  # headers at once, then the answer a byte a second
                    data = json.dumps(server.answer(body)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(1.0)
                    except (BrokenPipeError, ConnectionResetError):
                        server.cut_off += 1
                elif action == "empty-choices":
                    self._send(200, {**server.answer(body), "choices": []})
                elif action == "no-usage":
                    self._send(200, {k: v for k, v in server.answer(body).items() if k != "usage"})
                elif action == "401-echo":  # a proxy that quotes the key it was given
                    message = f"Incorrect API key provided: {self.headers.get('Authorization')}"
                    self._send(401, {"error": {"message": message, "type": "invalid_request_error"}})
                elif action == "400-cache":  # vLLM's answer to a window larger than its encoder cache
                    message = (
                        "The decoder prompt contains a(n) video item with 2300 embedding tokens, which exceeds "
                        "the pre-allocated encoder cache size 2048. Please reduce the input size or increase "
                        "the encoder cache size by setting --limit-mm-per-prompt at startup."
                    )
                    self._send(400, {"error": {"message": message, "type": "BadRequestError"}})
                else:
                    self._send(200, server.answer(body))

            def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
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
