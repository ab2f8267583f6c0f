"""OpenAI-compatible endpoint backend (vLLM serve, SGLang, Ollama, NIM).

The video goes as its sampled frames (JPEG data URLs) with their times, so any
server that takes images can caption it. Requests run concurrently up to a
bound; timeouts, connection errors, 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import random
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


def jpeg_data_url(frame: np.ndarray, quality: int = 90) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_messages(request: Request) -> list[dict[str, Any]]:
    """The request's chat, with the video placeholder replaced by its frames and their times."""
    if not isinstance(request, LLMInput):
        return request.messages
    video: list[dict[str, Any]] = []
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


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None,
        *,
        concurrency: int = DEFAULT_OPENAI_CONCURRENCY,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        stop: Sequence[str] = (),
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import openai

        # The key comes from the environment only and is never logged; local servers need none.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=os.environ.get(API_KEY_ENV) or "EMPTY", timeout=timeout_s, max_retries=0
        )
        self.model = model
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.stop = list(stop)
        self.chat_template_kwargs = chat_template_kwargs or {}
        logger.info("openai: model %s at %s, %d concurrent requests", model, base_url, self.concurrency)

    def request_body(self, request: Request, max_tokens: int) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "repetition_penalty": SAMPLING.repetition_penalty,
            "min_tokens": min(SAMPLING.min_tokens, max_tokens),
        }
        if self.chat_template_kwargs:
            extra["chat_template_kwargs"] = self.chat_template_kwargs
        return {
            "model": self.model,
            "messages": chat_messages(request),
            "max_tokens": max_tokens,
            "temperature": SAMPLING.temperature,
            "top_p": SAMPLING.top_p,
            "stop": self.stop or None,
            "extra_body": extra,
        }

    def _one(self, request: Request, max_tokens: int) -> Result:
        body = self.request_body(request, max_tokens)
        for attempt in range(self.max_retries + 1):
            try:
                resp = self.client.chat.completions.create(**body)
            except Exception as exc:
                if attempt < self.max_retries and _retryable(exc):
                    delay = self.backoff_s * (2**attempt) * (1 + random.random() / 4)
                    logger.warning("openai: %s; retry %d in %.1f s", type(exc).__name__, attempt + 1, delay)
                    time.sleep(delay)
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
        raise AssertionError("unreachable")

    def generate(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)) or 1) as pool:
            return list(pool.map(lambda r: self._one(r, max_tokens), requests))

    def close(self) -> None:
        self.client.close()
