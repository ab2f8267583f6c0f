"""Flags come from the stages: a stage field's param (flag, help, default, range) is the only place a setting is
written; RunConfig and `vidcap run` are generated from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest

from vidcap import config
from vidcap.config import PARTS, SETTINGS, RunConfig, build_pipeline, settings
from vidcap.params import param, param_of
from vidcap.stages import ClipSplittingStage, Stage


def test_every_flagged_stage_field_is_a_run_setting_with_the_stages_default() -> None:
    by_name = {s.name: s for s in SETTINGS}
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    for part in PARTS:
        for f in dataclasses.fields(part.stage):  # type: ignore[arg-type]
            p = param_of(f)
            if p is None or p.flag is None:
                continue
            name = p.flag.removeprefix("--").replace("-", "_")
            assert name in by_name and (part.stage, f.name) in by_name[name].targets
            assert fields[name].default == f.default, name


def test_one_flag_may_set_several_fields() -> None:
    (duration,) = [s for s in SETTINGS if s.name == "fixed_stride_split_duration"]
    assert {f for _, f in duration.targets} == {"clip_len_s", "clip_stride_s"}
    (model_dir,) = [s for s in SETTINGS if s.name == "model_dir"]
    assert {stage.__name__ for stage, _ in model_dir.targets} == {"CaptionGenerationStage", "CaptionEnhancementStage"}
    pipeline = build_pipeline(RunConfig("in", "out", fixed_stride_split_duration=4.0))
    (split,) = [s for s in pipeline.stages if isinstance(s, ClipSplittingStage)]
    assert split.clip_len_s == split.clip_stride_s == 4.0


def test_help_is_generated_with_sections() -> None:
    text = subprocess.run([sys.executable, "-m", "vidcap.cli", "run", "--help"], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": ""}).stdout  # fmt: skip
    for panel in ("Splitting and transcoding:", "Filters:", "Previews:", "Captions:", "Model backends:", "Run:"):
        assert panel in text
    assert text.index("Filters:") < text.index("--motion-global-mean-threshold") < text.index("Previews:")
    for s in SETTINGS:
        if s.param.flag:
            assert s.param.flag in text


@dataclass
class Shout(Stage):
    """A new stage, as a contributor would add it: one file with its settings."""

    loudness: float = param(3.0, flag="--shout-loudness", low=0.0, high=11.0, panel="Filters", help="How loud.")
    name: ClassVar[str] = "shout"

    def process(self, video):  # type: ignore[no-untyped-def]
        return video


def test_a_new_stage_brings_its_flag_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "PARTS", (*PARTS, config.Part(Shout, lambda c: True)))
    (setting,) = [s for s in settings() if s.name == "shout_loudness"]
    assert setting.default == 3.0 and setting.targets == ((Shout, "loudness"),)
    assert setting.param.help == "How loud." and setting.param.high == 11.0
    with pytest.raises(Exception, match="loudness must be between 0 and 11"):
        Shout(loudness=12.0)
