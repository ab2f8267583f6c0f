"""CaptionGenerationStage: a vision-language model captions every prepared window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vidcap.data import Window, record_error
from vidcap.errors import ConfigError, SettingError
from vidcap.models.backends import Generation, build_backend
from vidcap.models.inputs import InputFormat, LLMInput, input_format
from vidcap.models.prompts import STAGE2_PROMPT, stage2_text
from vidcap.models.quality import is_degenerate
from vidcap.models.registry import CaptionModel, caption_model
from vidcap.stages.base import Stage, require_range
from vidcap.stages.caption_preparation import CaptionPreparationStage
from vidcap.stages.model_stage import ModelStage

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class CaptionGenerationStage(ModelStage):
    model_variant: str = "qwen2.5"
    caption_batch_size: int = 16
    stage2_caption: bool = False
    stage2_prompt_text: str | None = None
    verbose: bool = False
    name: ClassVar[str] = "caption_generation"
    reads: ClassVar[frozenset[str]] = frozenset({"window.frames", "window.llm_input"})
    what: ClassVar[str] = "captioning model"
    _format: InputFormat | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._spec = caption_model(self.model_variant)
        require_range("caption_batch_size", self.caption_batch_size, 1, 4096, integer=True)
        self._check()

    @property
    def spec(self) -> CaptionModel:
        return self._spec

    @property
    def family(self) -> str:
        return self._spec.family

    def bind(self, stages: list[Stage]) -> None:
        prep = next((s for s in stages if isinstance(s, CaptionPreparationStage)), None)
        if prep is None or not prep.sample_frames:
            raise ConfigError("CaptionGenerationStage needs a CaptionPreparationStage(sample_frames=True) before it")
        if prep.model_variant != self.model_variant:
            raise ConfigError(
                f"CaptionPreparationStage prepares windows for {prep.model_variant} but CaptionGenerationStage runs "
                f"{self.model_variant}; give both the same model_variant"
            )

    def prepare(self) -> None:
        super().prepare()
        if self._backend_name == "openai" and self.openai_media != "images":
            self._check_endpoint_timing()

    def _check_endpoint_timing(self) -> None:
        """A server that will not take a window's frame times sees every window at a rate of its own choosing
        (vLLM: 1 fps, 32 frames at most): that stops the run before any work, unless the user accepts it."""
        import numpy as np

        from vidcap.models.backends.openai_api import OpenAIBackend

        backend = build_backend("openai", self._spec, model_path=None, model_name=self.model or self._spec.hf_id,
                                options=self._options())  # fmt: skip
        assert isinstance(backend, OpenAIBackend)
        side = 2 * self._spec.budget.factor
        probe = input_format(self._spec).build("Describe.", np.zeros((2, side, side, 3), np.uint8), [0, 1], 2.0, 2)
        try:
            takes = backend.takes_frame_times(probe)
        finally:
            backend.close()
        if takes is False and not self.openai_accept_server_timing:
            raise SettingError(
                "openai_base_url",
                f"the server at {{openai_base_url}} {self.openai_base_url} refuses a window's frame times with the "
                f"request, so it would caption every window at a rate of its own (vLLM: 1 fps, at most 32 frames): "
                f"start it with --trust-request-mm-kwargs, or pass {{openai_accept_server_timing}} to caption "
                f"anyway (those windows are flagged in their notes)",
                also=("openai_accept_server_timing",),
            )
        if takes is False:
            logger.warning("openai: %s takes no frame times; windows go without them and are flagged",
                           self.openai_base_url)  # fmt: skip

    def setup(self) -> None:
        if self._backend_name is None:
            self.prepare()
        processor: Any = None
        if (path := self._model_path) is not None:
            from vidcap.models.backends.hf import load_processor

            processor = self.load(lambda: load_processor(path, self._spec.trust_remote_code))
        self._format = input_format(self._spec, processor)
        self._start(vision=self._format)

    def stage2_input(self, inp: LLMInput, caption: str) -> LLMInput:
        """The refinement request: same frames, a new instruction that quotes the first caption."""
        assert self._format is not None
        return self._format.rebuild(inp, stage2_text(self.stage2_prompt_text or STAGE2_PROMPT, inp.text, caption))

    @property
    def batch_size(self) -> int:
        return self.caption_batch_size

    def handle(self, windows: list[Window]) -> None:
        assert self._format is not None
        fmt = self._format
        windows = [w for w in windows if isinstance(w.llm_input, LLMInput) and w.caption_status != "error"]
        if not windows:
            return
        self._generate(windows, [fmt.templated(w.llm_input) for w in windows], self._first_pass_error)
        if self.stage2_caption:
            done = [w for w in windows if w.caption_status in ("ok", "truncated")]
            requests = [fmt.templated(self.stage2_input(w.llm_input, w.caption[self.family])) for w in done]
            self._generate(done, requests, self._second_pass_error)
        if self.verbose:
            for w in windows:
                logger.info("window %d-%d [%s]: %s", w.start_frame, w.end_frame, w.caption_status,
                            w.caption.get(self.family, ""))  # fmt: skip

    def _generate(
        self, windows: list[Window], requests: list[LLMInput], on_error: Callable[[Window, str], None]
    ) -> None:
        self.run_batches(
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
        window.notes = [*dict.fromkeys([*window.notes, *gen.notes])]

    def _first_pass_error(self, window: Window, reason: str) -> None:
        logger.error("caption failed for window %d-%d: %s", window.start_frame, window.end_frame, reason)
        window.caption_status = "error"
        window.caption_error = reason
        record_error(window, self.name, reason, retry=True)  # a model or endpoint failure: worth a rerun

    def _second_pass_error(self, window: Window, reason: str) -> None:
        # The first caption stays; the failed refinement is on record.
        logger.error("stage-2 caption failed for window %d-%d: %s", window.start_frame, window.end_frame, reason)
        record_error(window, f"{self.name}_stage2", reason, retry=True)
