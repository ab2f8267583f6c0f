"""CaptionGenerationStage: a vision-language model captions every prepared window."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vidcap.data import Video, Window
from vidcap.models.backends import Backend, Generation, build_backend
from vidcap.models.download import DEFAULT_MODEL_DIR
from vidcap.models.inputs import InputFormat, LLMInput, input_format
from vidcap.models.prompts import STAGE2_PROMPT, with_caption
from vidcap.models.quality import is_degenerate
from vidcap.models.registry import caption_model
from vidcap.stages.base import Resources, Stage, require_range
from vidcap.stages.model_stage import model_resources, resolve_model, run_batches

logger = logging.getLogger(__name__)


@dataclass
class CaptionGenerationStage(Stage):
    model_variant: str = "qwen2.5"
    backend: str = "auto"
    # A local folder or a Hub id instead of the variant's default weights (the served model name for openai).
    model: str | None = None
    caption_batch_size: int = 16
    fp8: bool = False
    max_output_tokens: int = 512
    stage2_caption: bool = False
    stage2_prompt_text: str | None = None
    verbose: bool = False
    model_dir: str = DEFAULT_MODEL_DIR
    openai_base_url: str | None = None
    openai_concurrency: int = 8
    name: ClassVar[str] = "caption_generation"
    _backend_name: str | None = field(default=None, init=False, repr=False)
    _model_path: Path | None = field(default=None, init=False, repr=False)
    _format: InputFormat | None = field(default=None, init=False, repr=False)
    _engine: Backend | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.spec = caption_model(self.model_variant)
        require_range("caption_batch_size", self.caption_batch_size, 1)
        require_range("max_output_tokens", self.max_output_tokens, 1)
        require_range("openai_concurrency", self.openai_concurrency, 1)

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def resources(self) -> Resources:
        return model_resources(self._backend_name or self.backend)

    def prepare(self) -> None:
        self._backend_name, self._model_path = resolve_model(
            self.backend, self.spec, self.model, self.model_dir, what="captioning model", flag="--captioning-model"
        )

    def setup(self) -> None:
        if self._backend_name is None:
            self.prepare()
        assert self._backend_name is not None
        processor: Any = None
        if self._model_path is not None:
            from vidcap.models.backends.hf import load_processor

            processor = load_processor(self._model_path, self.spec.trust_remote_code)
        self._format = input_format(self.spec, processor)
        self._engine = build_backend(
            self._backend_name,
            self.spec,
            model_path=self._model_path,
            model_name=self.model or self.spec.hf_id,
            vision=self._format,
            fp8=self.fp8,
            openai_base_url=self.openai_base_url,
            openai_concurrency=self.openai_concurrency,
        )

    def teardown(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def stage2_input(self, inp: LLMInput, caption: str) -> LLMInput:
        """The refinement request: same frames, a new instruction that quotes the first caption."""
        assert self._format is not None
        return self._format.rebuild(inp, with_caption(self.stage2_prompt_text or STAGE2_PROMPT, caption))

    def process(self, video: Video) -> Video:
        if self._engine is None or self._format is None:
            self.setup()
        assert self._engine is not None and self._format is not None
        windows = [
            w
            for c in video.clips
            for w in c.windows
            if isinstance(w.llm_input, LLMInput) and w.caption_status != "error"
        ]
        if not windows:
            return video
        fmt = self._format
        self._generate(windows, [fmt.templated(w.llm_input) for w in windows], self._first_pass_error)
        if self.stage2_caption:
            done = [w for w in windows if w.caption_status in ("ok", "truncated")]
            requests = [fmt.templated(self.stage2_input(w.llm_input, w.caption[self.family])) for w in done]
            self._generate(done, requests, self._second_pass_error)
        if self.verbose:
            for w in windows:
                logger.info("%s %d-%d [%s]: %s", video.path, w.start_frame, w.end_frame, w.caption_status,
                            w.caption.get(self.family, ""))  # fmt: skip
        return video

    def _generate(self, windows: list[Window], requests: list[LLMInput], on_error: Any) -> None:
        assert self._engine is not None
        run_batches(
            self._engine,
            windows,
            requests,
            batch_size=self.caption_batch_size,
            max_tokens=self.max_output_tokens,
            on_result=self._store,
            on_error=on_error,
        )

    def _store(self, window: Window, gen: Generation) -> None:
        window.caption[self.family] = gen.text
        window.caption_status = "ok" if gen.finished else "truncated"
        window.caption_error = None
        window.prompt_tokens = gen.prompt_tokens
        window.output_tokens = gen.output_tokens
        window.caption_degenerate = is_degenerate(gen.text)

    def _first_pass_error(self, window: Window, reason: str) -> None:
        logger.error("caption failed for window %d-%d: %s", window.start_frame, window.end_frame, reason)
        window.caption_status = "error"
        window.caption_error = reason
        window.errors[self.name] = reason

    def _second_pass_error(self, window: Window, reason: str) -> None:
        # The first caption stays; the failed refinement is on record.
        logger.error("stage-2 caption failed for window %d-%d: %s", window.start_frame, window.end_frame, reason)
        window.errors[f"{self.name}_stage2"] = reason
