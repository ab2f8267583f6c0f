"""CaptionEnhancementStage: a text LLM rewrites each caption richer (``enhanced_caption["qwen_lm"]``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vidcap.data import CAPTION_FAMILIES, Clip, Window, record_error
from vidcap.data import ENHANCEMENT_ALGORITHMS as ENHANCE_ALGORITHMS
from vidcap.models.backends import Generation
from vidcap.models.inputs import TextInput
from vidcap.models.prompts import ENHANCE_PROMPTS, pick, with_caption
from vidcap.models.registry import ENHANCE_ALIASES, ENHANCE_MODEL_ALIASES, ENHANCE_MODELS, EnhanceModel, enhance_model
from vidcap.params import param
from vidcap.stages.model_stage import ModelStage

logger = logging.getLogger(__name__)


ENHANCE = "Caption enhancement"


@dataclass(kw_only=True)
class CaptionEnhancementStage(ModelStage):
    """A text LLM rewrites each caption richer (``window.enhanced_caption["qwen_lm"]``, with its own status and
    token counts)."""

    algorithm: str = param(
        "qwen_lm",
        flag="--enhance-captions-algorithm",
        choices=lambda: [*ENHANCE_ALGORITHMS, *ENHANCE_ALIASES, *ENHANCE_MODELS],
        panel=ENHANCE,
        help="Enhancement algorithm (NeMo Curator's qwen is qwen_lm; qwen2.5 or qwen3 here pick the model, as "
        "newer NeMo Curator spells it).",
    )
    model_variant: str = param(
        "qwen2.5",
        flag="--enhance-captions-model-variant",
        choices=lambda: [*ENHANCE_MODELS, *ENHANCE_MODEL_ALIASES],
        panel=ENHANCE,
        help="qwen2.5: Qwen2.5-14B-Instruct; qwen3: Qwen3-14B.",
    )
    backend: str = param(
        "auto",
        flag="--enhance-captions-backend",
        choices=("auto", "vllm", "transformers", "openai"),
        panel=ENHANCE,
        help="auto: vllm with a GPU, else transformers.",
    )
    model: str | None = param(
        None,
        flag="--enhance-captions-model",
        panel=ENHANCE,
        help="Local folder or Hub id instead of the variant's weights.",
    )
    prompt_variant: str = param(
        "default",
        flag="--enhance-captions-prompt-variant",
        choices=lambda: [*ENHANCE_PROMPTS],
        panel=ENHANCE,
        help="Built-in enhancement prompt.",
    )
    prompt_text: str | None = param(
        None,
        flag="--enhance-captions-prompt-text",
        panel=ENHANCE,
        help="Your own enhancement prompt; {caption} marks where the caption goes.",
    )
    batch_size: int = param(
        128,
        flag="--enhance-captions-batch-size",
        low=1,
        high=65536,
        integer=True,
        runtime=True,
        panel=ENHANCE,
        help="Captions per model call.",
    )
    fp8: bool = param(
        False,
        flag="--enhance-captions-use-fp8-weights",
        panel=ENHANCE,
        help="Quantise the enhancement model to fp8 (vllm).",
    )
    max_output_tokens: int = param(
        512,
        flag="--enhance-captions-max-output-tokens",
        low=1,
        high=131072,
        integer=True,
        panel=ENHANCE,
        help="Token limit per enhanced caption.",
    )
    # Which caption to rewrite; by default the one window.caption holds.
    caption_family: str | None = param(None, help="Which caption to rewrite (default: the one there is).")
    verbose: bool = param(False, runtime=True, help="Log every enhanced caption.")
    model_batch_size: int | None = param(None, runtime=True, help="NeMo Curator's batch_size (Python only).")
    name: ClassVar[str] = "caption_enhancement"
    what: ClassVar[str] = "enhancement model"
    _tokenizer: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.algorithm = ENHANCE_ALIASES.get(self.algorithm, self.algorithm)
        self.model_variant = ENHANCE_MODEL_ALIASES.get(self.model_variant, self.model_variant)
        if self.model_batch_size is not None:
            self.batch_size, self.model_batch_size = self.model_batch_size, None
        if self.algorithm in ENHANCE_MODELS:  # newer NeMo Curator spells the model in the algorithm
            self.algorithm, self.model_variant = "qwen_lm", self.algorithm
        self._spec = enhance_model(self.algorithm, self.model_variant)
        super().__post_init__()
        self.template = self.prompt_text or pick(ENHANCE_PROMPTS, self.prompt_variant, "enhancement")

    @property
    def spec(self) -> EnhanceModel:
        return self._spec

    def setup(self) -> None:
        if self._backend_name is None or (self._model_path is None and self._backend_name != "openai"):
            self.setup_on_node()
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

    def handle(self, windows: list[tuple[Clip, Window]]) -> None:
        todo = [(w, text) for _, w in windows if (text := self._source(w))]
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
