"""One place that couples the stages: ``RunConfig`` holds every setting of a run (the CLI's flags, by the
same names), ``build_pipeline`` turns it into stages.

Rules that tie stages together live here and nowhere else: window mp4s are
packet copies when the clip's keyframes sit on window boundaries, frames are
sampled only when captions are wanted, both model stages share weights folder
and endpoint. Defaults are read from the stage classes, so each lives in one spot.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidcap.errors import ConfigError, SettingError
from vidcap.models.registry import ENHANCE_MODELS
from vidcap.pipeline import Pipeline
from vidcap.stages.base import Stage
from vidcap.stages.caption_enhancement import CaptionEnhancementStage
from vidcap.stages.caption_generation import CaptionGenerationStage
from vidcap.stages.caption_preparation import CaptionPreparationStage
from vidcap.stages.preview import PreviewStage
from vidcap.stages.reader import VideoReaderStage
from vidcap.stages.splitting import ClipSplittingStage
from vidcap.stages.transcoding import ClipTranscodingStage
from vidcap.stages.writer import ClipWriterStage

logger = logging.getLogger(__name__)


def default(cls: type, name: str) -> Any:
    """A stage field's default: the one place it is written."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(f"{cls.__name__} has no field {name}")


@dataclass
class RunConfig:
    """Every setting of ``vidcap run``; field ``x_y`` is the flag ``--x-y``."""

    input_path: str | Path
    output_path: str | Path
    splitting_algorithm: str = default(ClipSplittingStage, "algorithm")
    fixed_stride_split_duration: float = default(ClipSplittingStage, "clip_len_s")
    fixed_stride_min_clip_length: float = default(ClipSplittingStage, "min_clip_length_s")
    scene_threshold: float = default(ClipSplittingStage, "scene_threshold")
    transcode_encoder: str = default(ClipTranscodingStage, "encoder")
    transcode_cpus_per_worker: float = default(ClipTranscodingStage, "num_cpus_per_worker")
    transcode_preset: str | None = default(ClipTranscodingStage, "preset")
    generate_previews: bool = False
    preview_target_fps: float = default(PreviewStage, "target_fps")
    preview_target_height: int = default(PreviewStage, "target_height")
    preview_compression_level: int = default(PreviewStage, "compression_level")
    preview_quality: int = default(PreviewStage, "quality")
    generate_captions: bool = False
    captioning_algorithm: str = default(CaptionGenerationStage, "model_variant")
    captioning_model: str | None = default(CaptionGenerationStage, "model")
    captioning_backend: str = default(CaptionGenerationStage, "backend")
    captioning_window_size: int = default(CaptionPreparationStage, "window_size")
    captioning_remainder_threshold: int = default(CaptionPreparationStage, "remainder_threshold")
    captioning_sampling_fps: float = default(CaptionPreparationStage, "sampling_fps")
    captioning_prompt_variant: str = default(CaptionPreparationStage, "prompt_variant")
    captioning_prompt_text: str | None = default(CaptionPreparationStage, "prompt_text")
    captioning_batch_size: int = default(CaptionGenerationStage, "caption_batch_size")
    captioning_max_output_tokens: int = default(CaptionGenerationStage, "max_output_tokens")
    captioning_use_fp8_weights: bool = default(CaptionGenerationStage, "fp8")
    captioning_stage2_caption: bool = default(CaptionGenerationStage, "stage2_caption")
    captioning_stage2_prompt_text: str | None = default(CaptionGenerationStage, "stage2_prompt_text")
    enhance_captions: bool = False
    enhance_captions_algorithm: str = default(CaptionEnhancementStage, "algorithm")
    enhance_captions_model_variant: str = default(CaptionEnhancementStage, "model_variant")
    enhance_captions_model: str | None = default(CaptionEnhancementStage, "model")
    enhance_captions_backend: str = default(CaptionEnhancementStage, "backend")
    enhance_captions_batch_size: int = default(CaptionEnhancementStage, "batch_size")
    enhance_captions_max_output_tokens: int = default(CaptionEnhancementStage, "max_output_tokens")
    enhance_captions_prompt_variant: str = default(CaptionEnhancementStage, "prompt_variant")
    enhance_captions_prompt_text: str | None = default(CaptionEnhancementStage, "prompt_text")
    enhance_captions_use_fp8_weights: bool = default(CaptionEnhancementStage, "fp8")
    openai_base_url: str | None = default(CaptionGenerationStage, "openai_base_url")
    openai_concurrency: int = default(CaptionGenerationStage, "openai_concurrency")
    openai_timeout: float = default(CaptionGenerationStage, "openai_timeout_s")
    openai_media: str = default(CaptionGenerationStage, "openai_media")
    openai_accept_server_timing: bool = default(CaptionGenerationStage, "openai_accept_server_timing")
    model_timeout: float | None = default(CaptionGenerationStage, "model_timeout_s")
    model_dir: str = default(CaptionGenerationStage, "model_dir")
    limit: int | None = None
    overwrite: bool = default(ClipWriterStage, "overwrite")
    retry_failed: bool = default(ClipWriterStage, "retry_failed")
    verbose: bool = False

    def __post_init__(self) -> None:
        check_types(self)


def check_types(settings: Any) -> None:
    """TypeError naming the setting when a value is not of its field's type: ``generate_previews="no"`` is a
    string, and a non-empty string would otherwise switch previews on."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value, kind = getattr(settings, f.name), hints[f.name]
        allowed = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
        ok = any(
            (value is None and a is type(None))
            or (a is bool and isinstance(value, bool))
            or (a is int and isinstance(value, int) and not isinstance(value, bool))
            or (a is float and isinstance(value, int | float) and not isinstance(value, bool))
            or (a in (str, Path) and isinstance(value, str | os.PathLike))
            for a in allowed
        )
        if not ok:
            names = " or ".join("None" if a is type(None) else a.__name__ for a in allowed)
            raise TypeError(f"{type(settings).__name__}({f.name}=...) takes {names}, got {value!r}")


Label = Callable[[str], str]

# Settings that only a part of the run switched on by its flag reads (windows are made either way).
_PARTS = {
    "generate_previews": ("preview_",),
    "generate_captions": ("captioning_", "enhance_captions_"),
    "enhance_captions": ("enhance_captions_",),
}
_ALWAYS = {"captioning_window_size", "captioning_remainder_threshold"}


def _unused(c: RunConfig) -> dict[str, list[str]]:
    """Per switch that is off, the settings of its part that were changed anyway (a user expects them to act)."""
    found: dict[str, list[str]] = {}
    taken: set[str] = set()
    for switch, prefixes in _PARTS.items():
        if getattr(c, switch):
            continue
        names = [
            f.name
            for f in dataclasses.fields(RunConfig)
            if f.name.startswith(prefixes)
            and f.name not in _ALWAYS | taken
            # != also catches NaN, which is never equal to the default
            and getattr(c, f.name) != f.default
        ]
        taken.update(names)
        if names:
            found[switch] = names
    return found


def as_flag(name: str) -> str:
    """The CLI flag of a RunConfig field."""
    return "--" + name.replace("_", "-")


def _make(cls: type[Stage], settings: dict[str, tuple[str, Any]], label: Label) -> Stage:
    """``cls(**values)``; ``settings`` maps each stage field to (the RunConfig field it comes from, value).

    The stage remembers what its fields are called here, so that errors found later (a missing model in
    ``prepare``) also name the setting the way its user typed it.
    """
    labels = {field: label(source) for field, (source, _) in settings.items()}
    try:
        stage = cls(**{field: value for field, (_, value) in settings.items()})
    except SettingError as exc:
        raise exc.renamed(labels) from None
    stage.labels = labels  # type: ignore[attr-defined]
    return stage


def build_pipeline(c: RunConfig, label: Label = str) -> Pipeline:
    """The stages of a run, coupled. ``label`` says how messages call a setting (the CLI passes ``as_flag``)."""
    if c.enhance_captions and not c.generate_captions:
        raise ConfigError(
            f"{label('enhance_captions')} rewrites captions, so it needs {label('generate_captions')} too"
        )
    enhance_algorithm, enhance_variant = c.enhance_captions_algorithm, c.enhance_captions_model_variant
    for switch, names in _unused(c).items():
        logger.warning("%s without %s: ignored", ", ".join(map(label, names)), label(switch))
    if enhance_algorithm in ENHANCE_MODELS:  # newer Curator spells the model in the algorithm: qwen2.5|qwen3
        enhance_algorithm, enhance_variant = "qwen_lm", enhance_algorithm

    def own(*names: str) -> dict[str, tuple[str, Any]]:
        return {n: (n, getattr(c, n)) for n in names}

    shared = {
        **own("model_dir", "openai_base_url", "openai_concurrency", "openai_media", "verbose"),
        "openai_timeout_s": ("openai_timeout", c.openai_timeout),
        "model_timeout_s": ("model_timeout", c.model_timeout),
    }
    stages = [
        _make(VideoReaderStage, own("input_path"), label),
        _make(
            ClipSplittingStage,
            {
                "algorithm": ("splitting_algorithm", c.splitting_algorithm),
                "clip_len_s": ("fixed_stride_split_duration", c.fixed_stride_split_duration),
                "clip_stride_s": ("fixed_stride_split_duration", c.fixed_stride_split_duration),
                "min_clip_length_s": ("fixed_stride_min_clip_length", c.fixed_stride_min_clip_length),
                "scene_threshold": ("scene_threshold", c.scene_threshold),
            },
            label,
        ),
    ]
    prep = _make(
        CaptionPreparationStage,
        {
            "model_variant": ("captioning_algorithm", c.captioning_algorithm),
            "prompt_variant": ("captioning_prompt_variant", c.captioning_prompt_variant),
            "prompt_text": ("captioning_prompt_text", c.captioning_prompt_text),
            "sampling_fps": ("captioning_sampling_fps", c.captioning_sampling_fps),
            "window_size": ("captioning_window_size", c.captioning_window_size),
            "remainder_threshold": ("captioning_remainder_threshold", c.captioning_remainder_threshold),
            "sample_frames": ("generate_captions", c.generate_captions),
            "verbose": ("verbose", c.verbose),
        },
        label,
    )
    stages.append(
        _make(
            ClipTranscodingStage,
            {
                "encoder": ("transcode_encoder", c.transcode_encoder),
                "num_cpus_per_worker": ("transcode_cpus_per_worker", c.transcode_cpus_per_worker),
                "preset": ("transcode_preset", c.transcode_preset),
            },
            label,
        )
    )
    stages.append(prep)
    if c.generate_previews:
        stages.append(
            _make(
                PreviewStage,
                {
                    "target_fps": ("preview_target_fps", c.preview_target_fps),
                    "target_height": ("preview_target_height", c.preview_target_height),
                    "compression_level": ("preview_compression_level", c.preview_compression_level),
                    "quality": ("preview_quality", c.preview_quality),
                    "verbose": ("verbose", c.verbose),
                },
                label,
            )
        )
    if c.generate_captions:
        stages.append(
            _make(
                CaptionGenerationStage,
                {
                    "model_variant": ("captioning_algorithm", c.captioning_algorithm),
                    "backend": ("captioning_backend", c.captioning_backend),
                    "model": ("captioning_model", c.captioning_model),
                    "caption_batch_size": ("captioning_batch_size", c.captioning_batch_size),
                    "fp8": ("captioning_use_fp8_weights", c.captioning_use_fp8_weights),
                    "max_output_tokens": ("captioning_max_output_tokens", c.captioning_max_output_tokens),
                    "stage2_caption": ("captioning_stage2_caption", c.captioning_stage2_caption),
                    "stage2_prompt_text": ("captioning_stage2_prompt_text", c.captioning_stage2_prompt_text),
                    "openai_accept_server_timing": ("openai_accept_server_timing", c.openai_accept_server_timing),
                    **shared,
                },
                label,
            )
        )
    if c.enhance_captions:
        stages.append(
            _make(
                CaptionEnhancementStage,
                {
                    "algorithm": ("enhance_captions_algorithm", enhance_algorithm),
                    "model_variant": ("enhance_captions_model_variant", enhance_variant),
                    "backend": ("enhance_captions_backend", c.enhance_captions_backend),
                    "model": ("enhance_captions_model", c.enhance_captions_model),
                    "prompt_variant": ("enhance_captions_prompt_variant", c.enhance_captions_prompt_variant),
                    "prompt_text": ("enhance_captions_prompt_text", c.enhance_captions_prompt_text),
                    "batch_size": ("enhance_captions_batch_size", c.enhance_captions_batch_size),
                    "fp8": ("enhance_captions_use_fp8_weights", c.enhance_captions_use_fp8_weights),
                    "max_output_tokens": ("enhance_captions_max_output_tokens", c.enhance_captions_max_output_tokens),
                    **shared,
                },
                label,
            )
        )
    stages.append(_make(ClipWriterStage, own("output_path", "overwrite", "retry_failed"), label))
    if c.limit is not None and (isinstance(c.limit, bool) or not isinstance(c.limit, int) or c.limit < 1):
        raise ConfigError(f"{label('limit')} must be a whole number of at least 1, got {c.limit!r}")
    return Pipeline(stages, limit=c.limit)
