"""OpenAI-compatible endpoint backend (vLLM serve, SGLang, Ollama, NIM).

A window goes as one video where the server takes video: a ``video_url`` whose
data URL is the window's JPEG frames (``data:video/jpeg;base64,<f1>,<f2>,...``,
as vLLM and SGLang read it), with the frame times and processor options in the
request where the server allows per-request options (vLLM:
``--trust-request-mm-kwargs``). The model then sees what the engine backend
gives it: the same frames, times and prompt tokens. Servers that take no video
get the frames as images, each after its time. Requests run concurrently up to
a bound; timeouts, connection errors, 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vidcap.models.backends.base import SAMPLING, Backend, Generation, Request, Result
from vidcap.models.inputs import LLMInput

logger = logging.getLogger(__name__)

API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_OPENAI_CONCURRENCY = 8
DEFAULT_OPENAI_TIMEOUT_S = 300.0
# auto: a video while the server takes video, images once it says it does not.
OPENAI_MEDIA = ("auto", "video", "images")


def jpeg_bytes(frame: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def jpeg_data_url(frame: np.ndarray, quality: int = 90) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(frame, quality)).decode("ascii")


def video_data_url(frames: np.ndarray, quality: int = 90) -> str:
    """Frames as one video: their JPEGs, base64, joined by commas (vLLM's and SGLang's ``video/jpeg``)."""
    parts = (base64.b64encode(jpeg_bytes(f, quality)).decode("ascii") for f in frames)
    return "data:video/jpeg;base64," + ",".join(parts)


def chat_messages(request: Request, as_video: bool) -> list[dict[str, Any]]:
    """The request's chat, with the video placeholder replaced by the video or by its frames and their times."""
    if not isinstance(request, LLMInput):
        return request.messages
    video: list[dict[str, Any]]
    if as_video:
        video = [{"type": "video_url", "video_url": {"url": video_data_url(request.frames)}}]
    else:
        video = []
        for t, frame in zip(request.timestamps, request.frames, strict=True):
            video.append({"type": "text", "text": f"<{t:.1f} seconds>"})
            video.append({"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}})
    out = []
    for message in request.messages:
        content = message["content"]
        if isinstance(content, list):
            parts: list[dict[str, Any]] = []
            for part in content:
                parts.extend(video if part["type"] == "video" else [part])
            content = parts
        out.append({"role": message["role"], "content": content})
    return out


def _retryable(exc: Exception) -> bool:
    import openai

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _refuses(exc: Exception, *words: str) -> bool:
    """A 400 from the server whose message names one of ``words``."""
    import openai

    text = str(exc).lower()
    return isinstance(exc, openai.BadRequestError) and any(w in text for w in words)


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None,
        *,
        concurrency: int = DEFAULT_OPENAI_CONCURRENCY,
        timeout_s: float = DEFAULT_OPENAI_TIMEOUT_S,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        stop: Sequence[str] = (),
        chat_template_kwargs: dict[str, Any] | None = None,
        media: str = "auto",
        video_options: Any = None,
    ) -> None:
        """``video_options(window) -> (media_io_kwargs, mm_processor_kwargs)`` for a window sent as video."""
        import openai

        if media not in OPENAI_MEDIA:
            raise ValueError(f"media must be one of {', '.join(OPENAI_MEDIA)}, got {media!r}")
        # The key comes from the environment only and is never logged; local servers need none.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=os.environ.get(API_KEY_ENV) or "EMPTY", timeout=timeout_s, max_retries=0
        )
        self.model = model
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.stop = list(stop)
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.media = media
        self.video_options = video_options
        # Learned from the server's answers: whether it takes videos, and per-request options.
        self.as_video = media != "images"
        self.send_options = video_options is not None
        self._learn = threading.Lock()
        logger.info("openai: model %s at %s, %d concurrent requests, windows as %s", model, base_url,
                    self.concurrency, "images" if media == "images" else "video")  # fmt: skip

    def request_body(self, request: Request, max_tokens: int) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "repetition_penalty": SAMPLING.repetition_penalty,
            "min_tokens": min(SAMPLING.min_tokens, max_tokens),
        }
        if self.chat_template_kwargs:
            extra["chat_template_kwargs"] = self.chat_template_kwargs
        as_video = isinstance(request, LLMInput) and self.as_video
        if as_video and self.send_options:
            media_io, processor = self.video_options(request)
            extra["media_io_kwargs"] = {"video": media_io}
            if processor:
                extra["mm_processor_kwargs"] = processor
        return {
            "model": self.model,
            "messages": chat_messages(request, as_video),
            "max_tokens": max_tokens,
            "temperature": SAMPLING.temperature,
            "top_p": SAMPLING.top_p,
            "stop": self.stop or None,
            "extra_body": extra,
        }

    def _adapt(self, exc: Exception, body: dict[str, Any]) -> bool:
        """Learn from a refusal what this server takes; True when the request is worth sending again
        (also when another request in flight learned it first)."""
        sent_options = "media_io_kwargs" in body["extra_body"]
        sent_video = any(
            isinstance(p, dict) and p.get("type") == "video_url"
            for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]
        )  # fmt: skip
        with self._learn:
            if sent_options and _refuses(exc, "media_io_kwargs", "mm_processor_kwargs"):
                if self.send_options:
                    self.send_options = False
                    logger.warning(
                        "openai: %s takes no per-request video options (vLLM: start it with "
                        "--trust-request-mm-kwargs); windows go with the server's own frame timing and sizing, "
                        "and a vLLM server keeps at most 32 frames per video unless started with "
                        "--media-io-kwargs '{\"video\": {\"num_frames\": -1}}'", self.base_url,
                    )  # fmt: skip
                return True
            if sent_video and self.media == "auto" and _refuses(exc, "video"):
                if self.as_video:
                    self.as_video = False
                    logger.warning("openai: %s takes no video (%s); sending windows as images", self.base_url, exc)
                return True
        return False

    def _one(self, request: Request, max_tokens: int) -> Result:
        attempt = 0
        while True:
            body = self.request_body(request, max_tokens)
            try:
                resp = self.client.chat.completions.create(**body)
            except Exception as exc:
                if self._adapt(exc, body):
                    continue
                if attempt < self.max_retries and _retryable(exc):
                    delay = self.backoff_s * (2**attempt) * (1 + random.random() / 4)
                    logger.warning("openai: %s; retry %d in %.1f s", type(exc).__name__, attempt + 1, delay)
                    time.sleep(delay)
                    attempt += 1
                    continue
                return exc
            choice = resp.choices[0]
            usage = resp.usage
            return Generation(
                text=(choice.message.content or "").strip(),
                prompt_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                finished=choice.finish_reason != "length",
            )

    def generate(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)) or 1) as pool:
            return list(pool.map(lambda r: self._one(r, max_tokens), requests))

    def close(self) -> None:
        self.client.close()
