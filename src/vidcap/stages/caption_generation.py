"""CaptionGenerationStage: a vision-language model captions every window, from the frames it declared."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vidcap.data import Clip, Window, record_error
from vidcap.errors import ConfigError, SettingError
from vidcap.frames import BudgetSize, FrameSpec
from vidcap.models.backends import Generation, build_backend
from vidcap.models.inputs import InputFormat, LLMInput, input_format
from vidcap.models.prompts import CAPTION_PROMPTS, STAGE2_PROMPT, pick, stage2_text
from vidcap.models.quality import is_degenerate
from vidcap.models.registry import (
    CAPTION_ALIASES,
    CAPTION_MODELS,
    CaptionModel,
    caption_model,
    caption_variant,
)
from vidcap.params import param
from vidcap.stages.base import Stage
from vidcap.stages.model_stage import ModelStage

logger = logging.getLogger(__name__)

CAPTIONS = "Captions"
DEFAULT_SAMPLING_FPS = 2.0


@dataclass(kw_only=True)
class CaptionGenerationStage(ModelStage):
    """Captions each window with a vision-language model (``window.caption[family]``, status, token counts).

    It declares the frames it needs (``frames["caption"]``: sampled at ``sampling_fps``, sized within the
    model's pixel budget) and builds the model's input from them itself: the variant is stated here once.
    ``prompt_variant``, ``prompt_text`` and ``sampling_fps`` left unset are taken from the
    CaptionPreparationStage before it (where NeMo Curator puts them), else their defaults.
    """

    model_variant: str = param(
        "qwen2.5",
        flag="--captioning-algorithm",
        choices=lambda: [*CAPTION_MODELS, *CAPTION_ALIASES],
        panel=CAPTIONS,
        help="Captioning model variant (see `vidcap models`; NeMo Curator's qwen is qwen2.5).",
    )
    backend: str = param(
        "auto",
        flag="--captioning-backend",
        choices=("auto", "vllm", "transformers", "openai"),
        panel=CAPTIONS,
        help="auto: vllm with a GPU, else transformers.",
    )
    model: str | None = param(
        None,
        flag="--captioning-model",
        panel=CAPTIONS,
        help="Local folder or Hub id instead of the variant's weights (the served model name for openai).",
    )
    prompt_variant: str | None = param(
        None,
        flag="--captioning-prompt-variant",
        choices=lambda: [*CAPTION_PROMPTS],
        panel=CAPTIONS,
        help="Built-in captioning prompt (default: default).",
    )
    prompt_text: str | None = param(
        None, flag="--captioning-prompt-text", panel=CAPTIONS, help="Your own captioning prompt (replaces the variant)."
    )
    sampling_fps: float | None = param(
        None,
        flag="--captioning-sampling-fps",
        low=1e-3,
        high=1000,
        panel=CAPTIONS,
        help=f"Frames per second of video shown to the model (default {DEFAULT_SAMPLING_FPS:g}).",
    )
    caption_batch_size: int = param(
        16,
        flag="--captioning-batch-size",
        low=1,
        high=4096,
        integer=True,
        runtime=True,
        panel=CAPTIONS,
        help="Windows per model call.",
    )
    fp8: bool = param(
        False, flag="--captioning-use-fp8-weights", panel=CAPTIONS, help="Quantise the captioning model to fp8 (vllm)."
    )
    max_output_tokens: int = param(
        512,
        flag="--captioning-max-output-tokens",
        low=1,
        high=131072,
        integer=True,
        panel=CAPTIONS,
        help="Token limit per caption; a caption cut here is marked truncated.",
    )
    stage2_caption: bool = param(
        False,
        flag="--captioning-stage2-caption",
        panel=CAPTIONS,
        help="Second pass: the model refines its own first caption.",
    )
    stage2_prompt_text: str | None = param(
        None,
        flag="--captioning-stage2-prompt-text",
        panel=CAPTIONS,
        help="Second-pass prompt; {caption} marks where the first caption goes.",
    )
    openai_accept_server_timing: bool = param(
        False,
        flag="--openai-accept-server-timing",
        runtime=True,
        panel="Model backends",
        help="Caption through a server that refuses a window's frame times "
        "(vLLM without --trust-request-mm-kwargs): it then picks its own "
        "rate; such windows are flagged in their notes.",
    )
    vllm_mmcache: bool = param(False, flag="--captioning-use-vllm-mmcache", runtime=True, panel=CAPTIONS,
                               help="Keep vLLM's cache of processed windows (each window is sent once: off, as in "
                               "NeMo Curator).")  # fmt: skip
    verbose: bool = param(False, runtime=True, help="Log every caption.")
    # NeMo Curator's names for the settings above (Python only; folded into them, so never in settings()).
    generate_stage2_caption: bool | None = param(None, runtime=True, help="NeMo Curator's stage2_caption.")
    model_batch_size: int | None = param(None, runtime=True, help="NeMo Curator's caption_batch_size.")
    disable_mmcache: bool | None = param(None, runtime=True, help="NeMo Curator's: not vllm_mmcache.")
    model_does_preprocess: bool | None = param(
        None, runtime=True, help="NeMo Curator's: False only (vidcap sizes frames itself)."
    )
    name: ClassVar[str] = "caption_generation"
    reads: ClassVar[frozenset[str]] = frozenset({"frames:caption", "window.llm_input"})
    what: ClassVar[str] = "captioning model"
    _format: InputFormat | None = field(default=None, init=False, repr=False)
    # What the pipeline settled for the prompt and the sampling (own settings, else the preparation's).
    _instruction: str = field(default="", init=False, repr=False)
    _sampling_fps: float = field(default=DEFAULT_SAMPLING_FPS, init=False, repr=False)

    def __post_init__(self) -> None:
        self.model_variant = caption_variant(self.model_variant)
        if self.generate_stage2_caption is not None:
            self.stage2_caption, self.generate_stage2_caption = self.generate_stage2_caption, None
        if self.model_batch_size is not None:
            self.caption_batch_size, self.model_batch_size = self.model_batch_size, None
        if self.disable_mmcache is not None:
            self.vllm_mmcache, self.disable_mmcache = not self.disable_mmcache, None
        if self.model_does_preprocess:
            raise SettingError(
                "model_does_preprocess",
                "{model_does_preprocess} True is not supported: vidcap samples and sizes a window's frames itself, "
                "so that every backend gives the model the same input; leave it False",
            )
        self._spec = caption_model(self.model_variant)
        super().__post_init__()
        self._settle(None)

    @property
    def spec(self) -> CaptionModel:
        return self._spec

    @property
    def mm_cache(self) -> bool:
        return self.vllm_mmcache

    @property
    def family(self) -> str:
        return self._spec.family

    @property
    def frames(self) -> dict[str, FrameSpec]:
        # Frames sized within the model's budget, as its processor would resample them (bicubic).
        return {"caption": FrameSpec("sample", self._sampling_fps, BudgetSize(self._spec.budget), "BICUBIC")}

    def _settle(self, prep: Any) -> None:
        variant = self.prompt_variant or (prep.prompt_variant if prep else None) or "default"
        text = self.prompt_text or (prep.prompt_text if prep else None)
        self._instruction = text or pick(CAPTION_PROMPTS, variant, "captioning")
        self._sampling_fps = self.sampling_fps or (prep.sampling_fps if prep else None) or DEFAULT_SAMPLING_FPS

    def bind(self, stages: list[Stage]) -> None:
        from vidcap.stages.caption_preparation import CaptionPreparationStage

        prep = next((s for s in stages[: stages.index(self)] if isinstance(s, CaptionPreparationStage)), None)
        if prep is None:
            raise ConfigError("CaptionGenerationStage needs a CaptionPreparationStage before it (it makes the windows)")
        if prep.model_variant not in (None, self.model_variant):
            raise ConfigError(
                f"CaptionPreparationStage names model_variant {prep.model_variant} but CaptionGenerationStage runs "
                f"{self.model_variant}; give both the same model_variant (or leave the preparation's unset)"
            )
        self._settle(prep)

    def settings(self) -> dict[str, Any]:
        # What the model is asked, as settled: a prompt given to the preparation counts the same as one given here.
        return {**super().settings(), "instruction": self._instruction, "sampling_fps": self._sampling_fps}

    def prepare(self) -> None:
        if self.backend == "openai" and self.openai_media != "images":
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
        if self._backend_name is None or (self._model_path is None and self._backend_name != "openai"):
            self.setup_on_node()  # a worker on a machine whose weights are already in place: only finds them
        processor: Any = None
        if (path := self._model_path) is not None:
            from vidcap.models.backends.hf import load_processor

            processor = self.load(lambda: load_processor(path, self._spec.trust_remote_code))
        self._format = input_format(self._spec, processor)
        self._start(vision=self._format)

    def llm_input(self, clip: Clip, window: Window) -> LLMInput | None:
        """The model's input for one window, from the frames this stage asked for: the true times of the
        sampled frames, at the window's source rate."""
        fmt = self._format or input_format(self._spec)  # without a processor: for an endpoint
        frames = window.frames.get("caption")
        if frames is None:
            return None
        window.frame_indices = list(frames.indices)  # what the model saw, for the record
        rel = [i - window.start_frame for i in frames.indices]
        return fmt.build(self._instruction, frames.frames, rel, clip.fps, window.num_frames)

    def stage2_input(self, inp: LLMInput, caption: str) -> LLMInput:
        """The refinement request: same frames, a new instruction that quotes the first caption."""
        assert self._format is not None
        return self._format.rebuild(inp, stage2_text(self.stage2_prompt_text or STAGE2_PROMPT, inp.text, caption))

    @property
    def batch_size(self) -> int:
        return self.caption_batch_size

    def handle(self, windows: list[tuple[Clip, Window]]) -> None:
        assert self._format is not None
        fmt = self._format
        todo: list[Window] = []
        for clip, w in windows:
            if w.caption_status == "error":
                continue
            w.llm_input = self.llm_input(clip, w)
            if isinstance(w.llm_input, LLMInput):
                todo.append(w)
        if not todo:
            return
        self._generate(todo, [fmt.templated(w.llm_input) for w in todo], self._first_pass_error)
        if self.stage2_caption:
            done = [w for w in todo if w.caption_status in ("ok", "truncated")]
            requests = [fmt.templated(self.stage2_input(w.llm_input, w.caption[self.family])) for w in done]
            self._generate(done, requests, self._second_pass_error)
        if self.verbose:
            for w in todo:
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
        window.caption_variant = self.model_variant  # NeMo Curator 1.4 keys captions by variant
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
