"""The base of the stages that run a model: backend choice, weights, endpoint, lifecycle, batching."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from vidcap.data import Clip, Video, Window
from vidcap.errors import SettingError, StartError, describe
from vidcap.models.backends import (
    BACKEND_CHOICES,
    Backend,
    EngineOptions,
    Generation,
    build_backend,
    generate_isolated,
    resolve_backend,
)
from vidcap.models.backends.base import EngineThread, Request, watchdog_seconds
from vidcap.models.backends.openai_api import DEFAULT_OPENAI_CONCURRENCY, DEFAULT_OPENAI_TIMEOUT_S, OPENAI_MEDIA
from vidcap.models.download import DEFAULT_MODEL_DIR, resolve_weights
from vidcap.models.inputs import InputFormat
from vidcap.models.registry import CaptionModel, EnhanceModel
from vidcap.params import param
from vidcap.stages.base import Resources, Stage

logger = logging.getLogger(__name__)

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


BACKENDS = "Model backends"


@dataclass(kw_only=True)
class ModelStage(Stage):
    """Settings every model stage takes. Model stages take keyword arguments only: with this many
    settings a positional call would bind values to the wrong names. Subclasses give the per-stage settings
    (backend, model, fp8, max_output_tokens) their own flags."""

    backend: str = param("auto", choices=BACKEND_CHOICES, help="auto: vllm with a GPU, else transformers.")
    # A local folder or a Hub id instead of the variant's default weights (the served model name for openai).
    model: str | None = param(None, help="Local folder or Hub id instead of the variant's weights.")
    fp8: bool = param(False, help="Quantise the model to fp8 (vllm).")
    max_output_tokens: int = param(512, low=1, high=131072, integer=True, help="Token limit per answer.")
    model_dir: str = param(
        DEFAULT_MODEL_DIR,
        flag="--model-dir",
        runtime=True,
        panel=BACKENDS,
        help="Where Hub weights are downloaded on first use (on each machine); an s3:// prefix serves every "
        "machine: each copies the weights from it, and the first to need a model the prefix lacks puts it there.",
    )
    openai_base_url: str | None = param(
        None,
        flag="--openai-base-url",
        runtime=True,
        panel=BACKENDS,
        help="OpenAI-compatible endpoint for the openai backend (key: $OPENAI_API_KEY).",
    )
    openai_concurrency: int = param(
        DEFAULT_OPENAI_CONCURRENCY,
        flag="--openai-concurrency",
        low=1,
        high=1024,
        integer=True,
        runtime=True,
        panel=BACKENDS,
        help="Requests in flight at once for the openai backend.",
    )
    openai_timeout_s: float = param(
        DEFAULT_OPENAI_TIMEOUT_S,
        flag="--openai-timeout",
        low=1,
        high=24 * 3600,
        runtime=True,
        panel=BACKENDS,
        help="Seconds one request to the endpoint may take, start to end, before it is retried.",
    )
    openai_media: str = param(
        "auto",
        flag="--openai-media",
        choices=OPENAI_MEDIA,
        panel=BACKENDS,
        help="How a window travels to the endpoint: one video (its JPEG frames as a "
        "video/jpeg data URL), or its frames as images; auto sends video until the server "
        "refuses video.",
    )
    # The part of one GPU this stage may use; executors lower it when model stages share a GPU.
    gpu_share: float = param(1.0, low=0.0, high=64.0, runtime=True, help="GPUs (or a part of one) per engine.")
    model_timeout_s: float | None = param(
        None,
        flag="--model-timeout",
        low=0.1,
        high=7 * 24 * 3600,
        runtime=True,
        panel=BACKENDS,
        help="Seconds one model call may take before the model counts as hung "
        "(default: scaled to the tokens asked for); its windows fail and the "
        "run goes on.",
    )
    # For messages: what the model is called.
    what: ClassVar[str] = "model"
    _backend_name: str | None = field(default=None, init=False, repr=False)
    _model_path: Path | None = field(default=None, init=False, repr=False)
    _engine: Backend | None = field(default=None, init=False, repr=False)
    _thread: EngineThread | None = field(default=None, init=False, repr=False)
    # Why the engine is no longer asked (it did not answer in time): later windows fail at once with this.
    _stuck: str | None = field(default=None, init=False, repr=False)
    # Engine calls of the batch in hand: (requests, seconds) each.
    _calls: list[tuple[int, float]] = field(default_factory=list, init=False, repr=False)

    @property
    def spec(self) -> CaptionModel | EnhanceModel:
        raise NotImplementedError

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend == "openai" and not self.openai_base_url:
            raise SettingError(
                "openai_base_url",
                "{backend} openai needs {openai_base_url}: the server's address, e.g. http://localhost:8000/v1",
                also=("backend",),
            )
        if self.backend not in ("auto", *self.spec.backends):
            raise SettingError(
                "backend",
                f"{self.what} {self.spec.variant} cannot run on the {self.backend} backend; {{backend}} takes one "
                f"of: {', '.join(self.spec.backends)}",
            )

    def default_resources(self) -> Resources:
        """A GPU where there is one, sized by the model: vLLM or transformers go there; an endpoint needs none.
        Plain data: nothing here asks this machine for CUDA (a cluster's driver may have none)."""
        if self.backend == "openai":
            return Resources(cpus=1.0)
        return Resources(cpus=1.0, gpus=self.gpu_share, gpu_memory_gb=float(self.spec.gpu_memory_gb))

    def share_gpu(self, share: float) -> None:
        self.gpu_share = share

    def setup_on_node(self) -> None:
        """On each machine before its workers start: pick the backend there (auto: vLLM where it is installed and
        a GPU is there) and fetch the weights into that machine's --model-dir."""
        spec = self.spec
        self._backend_name = resolve_backend(self.backend, spec, self.what)
        if self.fp8 and self._backend_name != "vllm":
            logger.warning("%s: fp8 weights apply to the vllm backend only; %s ignores them", self.what,
                           self._backend_name)  # fmt: skip
        if self._backend_name != "openai":
            self._model_path = resolve_weights(
                self.model, spec.hf_id, self.model_dir, what=f"{self.what} {spec.variant}"
            ).resolve()
            self._check_folder(self._model_path)

    def _check_folder(self, folder: Path) -> None:
        """Read the checkpoint's config before loading it: weights of the wrong kind stop the run with a
        sentence that says what the folder holds and what fits, not with a shape error per window."""
        try:
            config = json.loads((folder / "config.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingError("model", f"{{model}} {folder}: config.json cannot be read ({exc})") from exc
        problem = self.spec.misfit(config if isinstance(config, dict) else {})
        if problem is not None:
            raise SettingError("model", f"{{model}} {folder} {problem}", also=("model_variant",))

    def load(self, make: Callable[[], T]) -> T:
        """Load a piece of the model (processor, tokenizer); a failure stops the run with a sentence."""
        try:
            return make()
        except Exception as exc:
            raise StartError(f"the {self.what} {self.spec.variant} could not load from {self._model_path}: "
                             f"{describe(exc)}") from exc  # fmt: skip

    def _options(self) -> EngineOptions:
        return EngineOptions(
            fp8=self.fp8,
            gpu_share=self.gpu_share,
            max_output_tokens=self.max_output_tokens,
            openai_base_url=self.openai_base_url,
            openai_concurrency=self.openai_concurrency,
            openai_timeout_s=self.openai_timeout_s,
            openai_media=self.openai_media,
            batch_size=self.batch_size or 1,
            mm_cache=self.mm_cache,
        )

    @property
    def mm_cache(self) -> bool:
        """Whether vLLM keeps processed images between requests (the captioning stage's flag)."""
        return False

    def _start(self, *, vision: InputFormat | None = None, tokenizer: Any | None = None) -> None:
        backend = self._backend_name
        assert backend is not None
        where = self.openai_base_url if self._backend_name == "openai" else self._model_path
        logger.info("%s %s: starting the %s backend (%s)", self.what, self.spec.variant, self._backend_name, where)
        start = time.perf_counter()
        self._thread = self._thread or EngineThread(f"vidcap-{self.name}-engine")
        try:
            self._engine = self._thread.call(lambda: build_backend(
                backend,
                self.spec,
                model_path=self._model_path,
                model_name=self.model or self.spec.hf_id,
                vision=vision,
                tokenizer=tokenizer,
                options=self._options(),
            ))  # fmt: skip
        except Exception as exc:
            raise StartError(
                f"the {self.what} {self.spec.variant} could not start on the {self._backend_name} backend "
                f"({where}): {describe(exc)}"
            ) from exc
        logger.info("%s %s: ready in %.1f s", self.what, self.spec.variant, time.perf_counter() - start)

    def teardown(self) -> None:
        if self._engine is not None and self._thread is not None and self._stuck is None:
            engine = self._engine
            self._thread.call(engine.close, timeout=60)
        self._engine = None  # a hung engine is left to end with the process

    def process(self, video: Video) -> Video:
        return self.process_batch([video])[0]

    def process_batch(self, videos: list[Video]) -> list[Video]:
        """The windows of several tasks (of several videos) at once, so the engine gets full batches. The
        engine calls are booked on the first task, for the run's statistics."""
        if self._engine is None:
            self.setup()
        self._calls = []
        self.handle([(c, w) for v in videos for c in v.clips for w in c.windows])
        if videos:
            videos[0].model_calls += [(self.name, n, seconds, self._backend_name or "") for n, seconds in self._calls]
        return videos

    def handle(self, windows: list[tuple[Clip, Window]]) -> None:
        """Run the model on the windows that want it (the stage's own work)."""
        raise NotImplementedError

    def _call(self, requests: list[Request], max_tokens: int) -> list[Any]:
        """One batch on the engine's thread, under the watchdog: an engine that does not answer in time fails
        these windows and every later one at once (a rerun redoes them), and the run goes on."""
        if self._stuck is not None:
            return [TimeoutError(self._stuck) for _ in requests]
        engine, thread = self._engine, self._thread
        assert engine is not None and thread is not None
        limit = self.model_timeout_s or watchdog_seconds(len(requests), max_tokens)
        try:
            return thread.call(lambda: generate_isolated(engine, requests, max_tokens), timeout=limit)
        except TimeoutError:
            self._stuck = (
                f"the {self.what} {self.spec.variant} did not answer within {limit:.0f} s and is taken for hung; "
                f"windows after it in this run were not sent to it"
            )
            logger.error("%s: %s", self.name, self._stuck)
            return [TimeoutError(f"the {self.what} did not answer within {limit:.0f} s") for _ in requests]

    def run_batches(
        self,
        windows: Sequence[Window],
        requests: Sequence[Request],
        *,
        batch_size: int,
        max_tokens: int,
        on_result: Callable[[Window, Generation], None],
        on_error: Callable[[Window, str], None],
    ) -> None:
        """Generate for every window in batches; a failure is recorded on its window only."""
        assert self._engine is not None
        for pairs in chunks(list(zip(windows, requests, strict=True)), batch_size):
            start = time.perf_counter()
            results = self._call([r for _, r in pairs], max_tokens)
            self._calls.append((len(pairs), time.perf_counter() - start))
            for (window, _), result in zip(pairs, results, strict=True):
                if isinstance(result, Generation):
                    on_result(window, result)
                else:
                    on_error(window, describe(result))
