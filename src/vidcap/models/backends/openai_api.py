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

import asyncio
import base64
import contextlib
import email.utils
import io
import logging
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidcap.errors import describe, redact
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


# Longest wait a server's Retry-After may ask for before the next try.
MAX_RETRY_AFTER_S = 60.0

# What a vLLM server says when it takes no video (a text-only or image-only model, or video switched off).
_NO_VIDEO = re.compile(r"At most 0 video\(s\) may be provided in one prompt")
_NOT_MULTIMODAL = re.compile(r"is not a multimodal model")
# A window larger than the server's encoder cache, or than its context.
_ENCODER_CACHE = re.compile(r"with (\d+) embedding tokens, which exceeds the pre-allocated encoder cache size (\d+)")
_CONTEXT = re.compile(r"Input length \((\d+)\) exceeds model's maximum context length \((\d+)\)")


UNTIMED = (
    "sent as a video without its frame times: the server assumed its own frame rate (vLLM: 1 fps, at most 32 frames)"
)


class EndpointError(RuntimeError):
    """What the endpoint could not do for one window, in a sentence that says what to change."""


def _retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, TimeoutError | openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(exc)


def _refuses(exc: BaseException, *words: str) -> bool:
    """A 400 from the server whose message names one of ``words``."""
    import openai

    text = str(exc).lower()
    return isinstance(exc, openai.BadRequestError) and any(w in text for w in words)


def retry_after_s(exc: BaseException) -> float | None:
    """The wait a 429 (or 503) asks for in its Retry-After (seconds or a date) or retry-after-ms header."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError):
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    return None


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
        largest_window_tokens: int | None = None,
    ) -> None:
        """``video_options(window) -> (media_io_kwargs, mm_processor_kwargs)`` for a window sent as video.
        ``timeout_s`` bounds each try of a request as a whole, however slowly the server sends its answer.
        ``largest_window_tokens``: what the biggest window of this model can take, to say what a server that
        is too small needs."""
        if media not in OPENAI_MEDIA:
            raise ValueError(f"media must be one of {', '.join(OPENAI_MEDIA)}, got {media!r}")
        self.model = model
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.stop = list(stop)
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.media = media
        self.video_options = video_options
        self.largest_window_tokens = largest_window_tokens
        # Learned from the server's answers: whether it takes videos, and per-request options.
        self.as_video = media != "images"
        self.send_options = video_options is not None
        self._learn = threading.Lock()
        # Requests run on a private event loop, so that a try can be cut off at its deadline (the connection
        # is closed) instead of waiting on a server that trickles its answer.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vidcap-openai", daemon=True)
        self._thread.start()
        self.client = self._run(self._client())
        logger.info("openai: model %s at %s, %d concurrent requests, windows as %s", model, base_url,
                    self.concurrency, "images" if media == "images" else "video")  # fmt: skip

    async def _client(self) -> Any:
        import openai

        # The key comes from the environment only and is never logged; local servers need none.
        api_key = os.environ.get(API_KEY_ENV) or "EMPTY"
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, timeout=self.timeout_s, max_retries=0)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

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
            # Only a refusal of video as such (an image-only model, video switched off) means "send images".
            if sent_video and self.media == "auto" and _NO_VIDEO.search(_message(exc)):
                if self.as_video:
                    self.as_video = False
                    logger.warning("openai: %s takes no video (%s); sending windows as images", self.base_url,
                                   redact(_message(exc)))  # fmt: skip
                return True
        return False

    def takes_frame_times(self, request: LLMInput) -> bool | None:
        """Ask the server once whether it takes a window's frame times with the request (vLLM needs
        --trust-request-mm-kwargs): True, False, or None when it could not be asked (unreachable)."""
        body = self.request_body(request, 1)
        if "media_io_kwargs" not in body["extra_body"]:
            return True

        async def ask() -> Exception | None:
            try:
                await asyncio.wait_for(self.client.chat.completions.create(**body), self.timeout_s)
            except Exception as exc:
                return exc
            return None

        problem = self._run(ask())
        if problem is None:
            return True
        if _refuses(problem, "media_io_kwargs", "mm_processor_kwargs"):
            return False
        if _retryable(problem):
            logger.warning("openai: could not ask %s what it takes (%s)", self.base_url, redact(describe(problem)))
            return None
        return True  # refused for another reason (a tiny probe video): the windows will tell

    def explain(self, exc: Exception) -> Exception:
        """A refusal in words that say what to change; other errors as they are."""
        text = _message(exc)
        if m := _ENCODER_CACHE.search(text):
            need, have = int(m.group(1)), int(m.group(2))
            largest = f" (the largest window of this model can take {self.largest_window_tokens})" if (
                self.largest_window_tokens) else ""  # fmt: skip
            return EndpointError(
                f"the server's encoder cache holds {have} tokens and this window needs {need}: start the server "
                f"with --max-num-batched-tokens {max(need, self.largest_window_tokens or 0)} or more{largest}"
            )
        if m := _CONTEXT.search(text):
            return EndpointError(
                f"the server takes {m.group(2)} tokens and this window's prompt is {m.group(1)}: start the server "
                f"with a larger --max-model-len (at least the prompt plus the tokens asked for)"
            )
        if _NOT_MULTIMODAL.search(text):
            return EndpointError(f"the model served at {self.base_url} takes no images or video: serve a "
                                 f"vision-language model for captions")  # fmt: skip
        if _NO_VIDEO.search(text) and self.media == "video":
            return EndpointError("the server takes no video and --openai-media video was asked: use auto or images")
        return exc

    async def _one(self, request: Request, max_tokens: int, gate: asyncio.Semaphore) -> Result:
        attempt = 0
        async with gate:
            while True:
                body = self.request_body(request, max_tokens)
                try:
                    resp = await asyncio.wait_for(self.client.chat.completions.create(**body), self.timeout_s)
                except Exception as exc:
                    if isinstance(exc, TimeoutError):
                        exc = TimeoutError(f"no complete answer within {self.timeout_s:g} s (--openai-timeout)")
                    if self._adapt(exc, body):
                        continue
                    if attempt < self.max_retries and _retryable(exc):
                        delay = self.backoff_s * (2**attempt) * (1 + random.random() / 4)
                        asked = retry_after_s(exc)
                        if asked is not None:
                            delay = max(delay, min(asked, MAX_RETRY_AFTER_S))
                        logger.warning("openai: %s; retry %d in %.1f s", type(exc).__name__, attempt + 1, delay)
                        await asyncio.sleep(delay)
                        attempt += 1
                        continue
                    return self.explain(exc)
                result = _generation(resp)
                untimed = isinstance(request, LLMInput) and "media_io_kwargs" not in body["extra_body"] and any(
                    p.get("type") == "video_url" for m in body["messages"] if isinstance(m["content"], list)
                    for p in m["content"])  # fmt: skip
                if untimed and isinstance(result, Generation) and self.video_options is not None:
                    result.notes = (UNTIMED,)
                return result

    async def _batch(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        gate = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._one(r, max_tokens, gate) for r in requests)))

    def generate(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        return list(self._run(self._batch(requests, max_tokens)))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)


def _generation(resp: Any) -> Result:
    """A server's answer as a Generation, or the reason it is not one (no choices: nothing to keep)."""
    choices = getattr(resp, "choices", None) or []
    if not choices:
        return EndpointError("the server answered without any choice (no text): nothing to keep for this window")
    choice = choices[0]
    usage = getattr(resp, "usage", None)
    return Generation(
        text=(choice.message.content or "").strip() if choice.message is not None else "",
        # A server that does not count says nothing; 0 would be a false count.
        prompt_tokens=getattr(usage, "prompt_tokens", None) if usage else None,
        output_tokens=getattr(usage, "completion_tokens", None) if usage else None,
        finished=choice.finish_reason != "length",
    )
