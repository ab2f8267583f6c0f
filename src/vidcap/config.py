"""The one place that couples the stages: which stages a run has (its parts, switched on by flags), and
``RunConfig``, every setting of a run, generated from the stages' own fields.

A stage field with a flag (``param(flag="--preview-target-fps")``) becomes the RunConfig field
``preview_target_fps`` with the stage's default, range and help; the command line is generated from RunConfig
(cli.py). Several fields may share a flag (--model-dir sets both model stages'). Nothing here repeats a
default: adding a stage means its file, its row in ``PARTS`` and its tests.
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
from vidcap.executors.base import Executor
from vidcap.params import Param, check_value, param_of
from vidcap.pipeline import Pipeline
from vidcap.stages.base import Stage
from vidcap.stages.caption_enhancement import CaptionEnhancementStage
from vidcap.stages.caption_generation import CaptionGenerationStage
from vidcap.stages.caption_preparation import CaptionPreparationStage
from vidcap.stages.motion_filter import MotionFilterStage
from vidcap.stages.preview import PreviewStage
from vidcap.stages.reader import VideoReaderStage
from vidcap.stages.splitting import ALGORITHMS, ClipSplittingStage
from vidcap.stages.transcoding import ClipTranscodingStage
from vidcap.stages.transnetv2 import TransNetV2ClipExtractionStage
from vidcap.stages.writer import ClipWriterStage

logger = logging.getLogger(__name__)

SPLITTERS = (*ALGORITHMS, "transnetv2")
MOTION_MODES = ("disable", "enable", "score-only")


@dataclass(frozen=True)
class Part:
    """A stage of a run: when it is in the pipeline (``on``), and the setting (and value) that puts it there."""

    stage: type[Stage]
    on: Callable[[Any], bool]
    switch: tuple[str, str] | None = None


# Every stage a run can have, in pipeline order. The reader and the writer are always there.
PARTS = (
    Part(VideoReaderStage, lambda c: True),
    Part(ClipSplittingStage, lambda c: c.splitting_algorithm != "transnetv2", ("splitting_algorithm", "fixed_stride")),
    Part(
        TransNetV2ClipExtractionStage,
        lambda c: c.splitting_algorithm == "transnetv2",
        ("splitting_algorithm", "transnetv2"),
    ),
    Part(ClipTranscodingStage, lambda c: True),
    Part(MotionFilterStage, lambda c: c.motion_filter != "disable", ("motion_filter", "enable")),
    Part(CaptionPreparationStage, lambda c: True),
    Part(PreviewStage, lambda c: c.generate_previews, ("generate_previews", "")),
    Part(CaptionGenerationStage, lambda c: c.generate_captions, ("generate_captions", "")),
    Part(CaptionEnhancementStage, lambda c: c.enhance_captions, ("enhance_captions", "")),
    Part(ClipWriterStage, lambda c: True),
)

# Settings of the run itself (what it contains, how it runs): no stage's field.
RUN: list[tuple[str, Any, Any, Param]] = [
    ("input_path", str | Path, dataclasses.MISSING, Param(
        "A video, a folder (recursive) or a .txt list; or the s3:// (any fsspec) URL of one.")),
    ("output_path", str | Path, dataclasses.MISSING, Param(
        "Folder for clips, previews and metadata; or an s3:// (any fsspec) prefix.")),
    ("splitting_algorithm", str, "fixed_stride", Param(
        "How videos are cut into clips: fixed_stride, scene (PySceneDetect), none (a clip per video), transnetv2.",
        flag="--splitting-algorithm", choices=SPLITTERS, panel="Splitting and transcoding")),
    ("motion_filter", str, "disable", Param(
        "Score clips by their motion vectors: enable also takes out those below the thresholds (to "
        "filtered_clips/); score-only keeps them.", flag="--motion-filter", choices=MOTION_MODES, panel="Filters")),
    ("generate_previews", bool, False, Param("Write an animated WebP per window.", flag="--generate-previews",
                                             panel="Previews")),
    ("generate_captions", bool, False, Param("Caption every window with a vision-language model.",
                                             flag="--generate-captions", panel="Captions")),
    ("enhance_captions", bool, False, Param("Rewrite each caption richer with a text LLM.", flag="--enhance-captions",
                                            panel="Caption enhancement")),
    ("limit", int | None, None, Param("Process at most N videos (after skipping finished ones).", flag="--limit",
                                      low=1, high=10**12, integer=True)),
    ("executor", str, "local", Param("Run in this process, or on a Ray cluster.", flag="--executor",
                                     choices=("local", "ray"))),
    ("clip_re_chunk_size", int | None, None, Param(
        "Clips that travel together after splitting (default 2: a long video becomes many tasks side by side); "
        "each chunk is a processed_clip_chunks file, as in NeMo Curator.", flag="--clip-re-chunk-size", low=1,
        high=10**6, integer=True, runtime=True)),
    ("ray_address", str | None, None, Param("Ray cluster address (default: start a local Ray).", flag="--ray-address")),
    ("verbose", bool, False, Param("More logging.", flag="--verbose", runtime=True)),
]  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One RunConfig field: its name, type, default, what it is, and the stage fields it sets."""

    name: str
    kind: Any
    default: Any
    param: Param
    targets: tuple[tuple[type[Stage], str], ...] = ()


def config_name(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def as_flag(name: str) -> str:
    """The CLI flag of a RunConfig field."""
    return "--" + name.replace("_", "-")


def settings() -> list[Setting]:
    """Every setting of a run: the run's own, then each stage's flagged fields (in pipeline order)."""
    out = [Setting(name, kind, default, p) for name, kind, default, p in RUN]
    index = {s.name: i for i, s in enumerate(out)}
    for part in PARTS:
        hints = typing.get_type_hints(part.stage)
        for f in dataclasses.fields(typing.cast(Any, part.stage)):
            p = param_of(f)
            if p is None or p.flag is None:
                continue
            name = config_name(p.flag)
            if name in index:
                known = out[index[name]]
                if known.default != f.default:
                    raise AssertionError(f"{p.flag}: {part.stage.__name__}.{f.name} defaults to {f.default!r}, "
                                         f"another field of the same flag to {known.default!r}")  # fmt: skip
                out[index[name]] = dataclasses.replace(known, targets=(*known.targets, (part.stage, f.name)))
                continue
            index[name] = len(out)
            out.append(Setting(name, hints[f.name], f.default, p, ((part.stage, f.name),)))
    return out


SETTINGS = settings()


def _post_init(self: Any) -> None:
    check_types(self)


RunConfig: Any = dataclasses.make_dataclass(
    "RunConfig",
    [
        (s.name, s.kind) if s.default is dataclasses.MISSING else (s.name, s.kind, dataclasses.field(default=s.default))
        for s in SETTINGS
    ],
    namespace={
        "__post_init__": _post_init,
        "__doc__": "Every setting of `vidcap run`; field ``x_y`` is the flag ``--x-y``. Generated from the stages' "
        "fields (see vidcap.config).",
    },
)
RunConfig.__module__ = __name__


def default(name: str) -> Any:
    """A run setting's default (read from the stage field it sets)."""
    return next(s.default for s in SETTINGS if s.name == name)


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


def build_pipeline(c: Any, label: Label = str) -> Pipeline:
    """The stages of a run, from its settings. ``label`` says how messages call a setting (the CLI passes
    ``as_flag``, the Python API the RunConfig field names)."""
    if c.enhance_captions and not c.generate_captions:
        raise ConfigError(
            f"{label('enhance_captions')} rewrites captions, so it needs {label('generate_captions')} too"
        )
    for s in SETTINGS:  # every value, also of a part that is off: a bad flag stops the run before any work
        try:
            check_value(s.name, getattr(c, s.name), s.param)
        except SettingError as exc:
            raise exc.renamed({s.name: label(s.name)}) from None
    chosen = [part for part in PARTS if part.on(c)]
    _say_unused(c, chosen, label)
    stages = [_make(part.stage, c, label) for part in chosen]
    return Pipeline(stages, limit=c.limit)


def build_executor(c: Any) -> Executor:
    """The executor a run's settings ask for."""
    from vidcap.executors.base import DEFAULT_CLIPS_PER_TASK

    clips = c.clip_re_chunk_size or DEFAULT_CLIPS_PER_TASK
    if c.executor == "ray":
        from vidcap.executors.ray import RayExecutor

        return RayExecutor(address=c.ray_address, clips_per_task=clips)
    from vidcap.executors.local import LocalExecutor

    return LocalExecutor(clips_per_task=clips)


def _make(cls: type[Stage], c: Any, label: Label) -> Stage:
    """``cls`` with every flagged field from RunConfig; errors name the settings as ``label`` calls them."""
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for s in SETTINGS:
        for target, field in s.targets:
            if target is cls:
                values[field], labels[field] = getattr(c, s.name), label(s.name)
    if cls is VideoReaderStage:
        values["input_path"] = c.input_path
    elif cls is ClipWriterStage:
        values["output_path"] = c.output_path
    elif cls is ClipSplittingStage:
        values["algorithm"], labels["algorithm"] = c.splitting_algorithm, label("splitting_algorithm")
    elif cls is MotionFilterStage:
        values["score_only"], labels["score_only"] = c.motion_filter == "score-only", label("motion_filter")
    if any(f.name == "verbose" for f in dataclasses.fields(typing.cast(Any, cls))):
        values["verbose"] = c.verbose
    try:
        stage = cls(**values)
    except SettingError as exc:
        raise exc.renamed(labels) from None
    stage.labels = labels  # type: ignore[attr-defined]
    return stage


def _say_unused(c: Any, chosen: list[Part], label: Label) -> None:
    """A setting of a stage that is not in this run was changed anyway: the user expects it to act."""
    present = {p.stage for p in chosen}
    unused: dict[str, list[str]] = {}
    for s in SETTINGS:
        if not s.targets or any(stage in present for stage, _ in s.targets):
            continue
        value = getattr(c, s.name)
        if value != s.default:  # != also catches NaN, which is never equal to the default
            part = next(p for p in PARTS if p.stage is s.targets[0][0])
            name, value = part.switch or ("", "")
            unused.setdefault(f"{label(name)} {value}".strip(), []).append(label(s.name))
    for switch, names in unused.items():
        logger.warning("%s without %s: ignored", ", ".join(names), switch)
