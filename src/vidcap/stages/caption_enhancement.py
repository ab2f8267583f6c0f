"""CaptionEnhancementStage: a text LLM rewrites each caption richer (``enhanced_caption["qwen_lm"]``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vidcap.data import CAPTION_FAMILIES, Window, record_error
from vidcap.models.backends import Generation
from vidcap.models.inputs import TextInput
from vidcap.models.prompts import ENHANCE_PROMPTS, pick, with_caption
from vidcap.models.registry import EnhanceModel, enhance_model
from vidcap.stages.base import require_range
from vidcap.stages.model_stage import ModelStage

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class CaptionEnhancementStage(ModelStage):
    algorithm: str = "qwen_lm"
    model_variant: str = "qwen2.5"
    prompt_variant: str = "default"
    prompt_text: str | None = None
    batch_size: int = 128
    # Which caption to rewrite; by default the one window.caption holds.
    caption_family: str | None = None
    verbose: bool = False
    name: ClassVar[str] = "caption_enhancement"
    what: ClassVar[str] = "enhancement model"
    _tokenizer: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._spec = enhance_model(self.algorithm, self.model_variant)
        self.template = self.prompt_text or pick(ENHANCE_PROMPTS, self.prompt_variant, "enhancement")
        require_range("batch_size", self.batch_size, 1, 65536, integer=True)
        self._check()

    @property
    def spec(self) -> EnhanceModel:
        return self._spec

    def setup(self) -> None:
        if self._backend_name is None:
            self.prepare()
        if (path := self._model_path) is not None:
            from vidcap.models.backends.hf import load_tokenizer

            self._tokenizer = self.load(lambda: load_tokenizer(path))
        self._start(tokenizer=self._tokenizer)

    def request(self, caption: str) -> TextInput:
        messages = [{"role": "user", "content": with_caption(self.template, caption)}]
        prompt = None
        if self._tokenizer is not None:
            prompt = self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, **self._spec.chat_template_kwargs
            )
        return TextInput(messages=messages, prompt=prompt)

    def _source(self, window: Window) -> str | None:
        if self.caption_family is not None:
            return window.caption.get(self.caption_family)
        return next((window.caption[f] for f in CAPTION_FAMILIES if f in window.caption), None)

    def handle(self, windows: list[Window]) -> None:
        todo = [(w, text) for w in windows if (text := self._source(w))]
        if not todo:
            return
        self.run_batches(
            [w for w, _ in todo],
            [self.request(text) for _, text in todo],
            batch_size=self.batch_size,
            max_tokens=self.max_output_tokens,
            on_result=self._store,
            on_error=self._error,
        )

    def _store(self, window: Window, gen: Generation) -> None:
        window.enhanced_caption[self.algorithm] = gen.text
        window.enhancement_status = "ok" if gen.finished else "truncated"
        window.enhancement_error = None
        window.enhancement_prompt_tokens = gen.prompt_tokens
        window.enhancement_output_tokens = gen.output_tokens
        if self.verbose:
            logger.info("enhanced %d-%d: %s", window.start_frame, window.end_frame, gen.text)

    def _error(self, window: Window, reason: str) -> None:
        logger.error("enhancement failed for window %d-%d: %s", window.start_frame, window.end_frame, reason)
        window.enhancement_status = "error"
        window.enhancement_error = reason
        record_error(window, self.name, reason, retry=True)
