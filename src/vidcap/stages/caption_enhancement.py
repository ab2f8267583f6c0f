"""CaptionEnhancementStage: a text LLM rewrites each caption richer (``enhanced_caption["qwen_lm"]``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vidcap.data import CAPTION_FAMILIES, Video, Window
from vidcap.models.backends import Backend, Generation, build_backend
from vidcap.models.download import DEFAULT_MODEL_DIR
from vidcap.models.inputs import TextInput
from vidcap.models.prompts import ENHANCE_PROMPTS, pick, with_caption
from vidcap.models.registry import enhance_model
from vidcap.stages.base import Resources, Stage, require_range
from vidcap.stages.model_stage import model_resources, resolve_model, run_batches

logger = logging.getLogger(__name__)


@dataclass
class CaptionEnhancementStage(Stage):
    algorithm: str = "qwen_lm"
    model_variant: str = "qwen2.5"
    backend: str = "auto"
    model: str | None = None
    prompt_variant: str = "default"
    prompt_text: str | None = None
    batch_size: int = 128
    fp8: bool = False
    max_output_tokens: int = 512
    # Which caption to rewrite; by default the one window.caption holds.
    caption_family: str | None = None
    verbose: bool = False
    model_dir: str = DEFAULT_MODEL_DIR
    openai_base_url: str | None = None
    openai_concurrency: int = 8
    name: ClassVar[str] = "caption_enhancement"
    _backend_name: str | None = field(default=None, init=False, repr=False)
    _model_path: Path | None = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)
    _engine: Backend | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.spec = enhance_model(self.algorithm, self.model_variant)
        self.template = self.prompt_text or pick(ENHANCE_PROMPTS, self.prompt_variant, "enhancement")
        require_range("batch_size", self.batch_size, 1)
        require_range("max_output_tokens", self.max_output_tokens, 1)
        require_range("openai_concurrency", self.openai_concurrency, 1)

    @property
    def resources(self) -> Resources:
        return model_resources(self._backend_name or self.backend)

    def prepare(self) -> None:
        self._backend_name, self._model_path = resolve_model(
            self.backend, self.spec, self.model, self.model_dir,
            what="enhancement model", flag="--enhance-captions-model",
        )  # fmt: skip

    def setup(self) -> None:
        if self._backend_name is None:
            self.prepare()
        assert self._backend_name is not None
        if self._model_path is not None:
            from vidcap.models.backends.hf import load_tokenizer

            self._tokenizer = load_tokenizer(self._model_path)
        self._engine = build_backend(
            self._backend_name,
            self.spec,
            model_path=self._model_path,
            model_name=self.model or self.spec.hf_id,
            tokenizer=self._tokenizer,
            fp8=self.fp8,
            openai_base_url=self.openai_base_url,
            openai_concurrency=self.openai_concurrency,
        )

    def teardown(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def request(self, caption: str) -> TextInput:
        messages = [{"role": "user", "content": with_caption(self.template, caption)}]
        prompt = None
        if self._tokenizer is not None:
            prompt = self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, **self.spec.chat_template_kwargs
            )
        return TextInput(messages=messages, prompt=prompt)

    def _source(self, window: Window) -> str | None:
        if self.caption_family is not None:
            return window.caption.get(self.caption_family)
        return next((window.caption[f] for f in CAPTION_FAMILIES if f in window.caption), None)

    def process(self, video: Video) -> Video:
        if self._engine is None:
            self.setup()
        assert self._engine is not None
        todo = [(w, text) for c in video.clips for w in c.windows if (text := self._source(w))]
        if not todo:
            return video
        run_batches(
            self._engine,
            [w for w, _ in todo],
            [self.request(text) for _, text in todo],
            batch_size=self.batch_size,
            max_tokens=self.max_output_tokens,
            on_result=self._store,
            on_error=self._error,
        )
        return video

    def _store(self, window: Window, gen: Generation) -> None:
        window.enhanced_caption[self.algorithm] = gen.text

    def _error(self, window: Window, reason: str) -> None:
        logger.error("enhancement failed for window %d-%d: %s", window.start_frame, window.end_frame, reason)
        window.errors[self.name] = reason
