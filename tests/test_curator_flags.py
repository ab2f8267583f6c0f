"""NeMo Curator's video example script, flag by flag (its 1.4 argparser): each flag either means in vidcap what it
means there, or stops the run (exit 2) with a sentence saying how vidcap differs and what to use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main

from vidcap.cli import app, config_from
from vidcap.config import RunConfig, build_pipeline
from vidcap.errors import ConfigError
from vidcap.pipeline import Pipeline
from vidcap.stages import (
    CaptionEnhancementStage,
    CaptionGenerationStage,
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ClipWriterStage,
    MotionFilterStage,
    PreviewStage,
    TransNetV2ClipExtractionStage,
)

# Every flag of NeMo Curator 1.4's tutorials/video/getting-started/video_split_clip_example.py.
CURATOR_SCRIPT_FLAGS = """
--video-dir --model-dir --video-limit --verbose --output-clip-path --no-upload-clips --dry-run --splitting-algorithm
--fixed-stride-split-duration --fixed-stride-min-clip-length-s --limit-clips --transnetv2-frame-decoder-mode
--transnetv2-threshold --transnetv2-min-length-s --transnetv2-max-length-s --transnetv2-max-length-mode
--transnetv2-crop-s --transnetv2-gpu-memory-gb --transcode-cpus-per-worker --transcode-encoder
--transcode-encoder-threads --transcode-ffmpeg-batch-size --transcode-use-hwaccel --transcode-use-input-video-bit-rate
--clip-re-chunk-size --motion-filter --motion-global-mean-threshold --motion-per-patch-min-256-threshold
--motion-decode-target-fps --motion-decode-target-duration-ratio --motion-decode-cpus-per-worker
--motion-score-batch-size --motion-score-gpus-per-worker --clip-extraction-target-res --aesthetic-threshold
--aesthetic-reduction --aesthetic-gpus-per-worker --embedding-algorithm --embedding-gpu-memory-gb
--no-generate-embeddings --generate-previews --preview-target-fps --preview-target-height --generate-captions
--captioning-algorithm --captioning-window-size --captioning-remainder-threshold --captioning-prompt-variant
--captioning-prompt-text --captioning-sampling-fps --captioning-preprocess-dtype --captioning-model-does-preprocess
--captioning-stage2-caption --captioning-stage2-prompt-text --captioning-batch-size --captioning-use-fp8-weights
--captioning-max-output-tokens --captioning-use-vllm-mmcache --enhance-captions --enhance-captions-algorithm
--enhance-captions-batch-size --enhance-captions-use-fp8-weights --enhance-captions-max-output-tokens
--enhance-captioning-prompt-variant --enhance-captions-prompt-text --enhanced-caption-models
""".split()  # noqa: SIM905

RUN = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
CAPTIONS = ["--generate-captions"]
ENHANCE = ["--generate-captions", "--enhance-captions"]


def parsed(*argv: str) -> tuple[RunConfig, Pipeline]:
    """What `vidcap run` makes of ``argv``: its RunConfig and the pipeline built from it (nothing runs)."""
    params = RUN.make_context("run", ["in", "out", *argv]).params
    config = config_from(params)
    return config, build_pipeline(config)


def stage(pipeline: Pipeline, kind: type) -> Any:
    (found,) = [s for s in pipeline.stages if isinstance(s, kind)]
    return found


Check = Callable[[RunConfig, Pipeline], bool]
MEANS: list[tuple[list[str], Check]] = [
    (["--model-dir", "/m", *CAPTIONS], lambda c, p: stage(p, CaptionGenerationStage).model_dir == "/m"),
    (["--video-limit", "3"], lambda c, p: c.limit == 3),
    (["--verbose"], lambda c, p: c.verbose),
    (["--no-upload-clips"], lambda c, p: stage(p, ClipWriterStage).skip_clips),
    (["--splitting-algorithm", "transnetv2"], lambda c, p: bool(stage(p, TransNetV2ClipExtractionStage))),
    (["--fixed-stride-split-duration", "4"], lambda c, p: stage(p, ClipSplittingStage).clip_len_s == 4),
    (["--fixed-stride-min-clip-length-s", "1.5"], lambda c, p: stage(p, ClipSplittingStage).min_clip_length_s == 1.5),
    (["--limit-clips", "2"], lambda c, p: stage(p, ClipSplittingStage).limit_clips == 2),
    # vidcap decodes TransNetV2's frames with PyAV on the CPU whichever decoder is named.
    (["--transnetv2-frame-decoder-mode", "ffmpeg_cpu"], lambda c, p: c == parsed()[0]),
    (["--splitting-algorithm", "transnetv2", "--transnetv2-threshold", "0.3"],
     lambda c, p: stage(p, TransNetV2ClipExtractionStage).threshold == 0.3),
    (["--splitting-algorithm", "transnetv2", "--transnetv2-min-length-s", "3"],
     lambda c, p: stage(p, TransNetV2ClipExtractionStage).min_length_s == 3),
    (["--splitting-algorithm", "transnetv2", "--transnetv2-max-length-s", "20"],
     lambda c, p: stage(p, TransNetV2ClipExtractionStage).max_length_s == 20),
    (["--splitting-algorithm", "transnetv2", "--transnetv2-max-length-mode", "truncate"],
     lambda c, p: stage(p, TransNetV2ClipExtractionStage).max_length_mode == "truncate"),
    (["--splitting-algorithm", "transnetv2", "--transnetv2-crop-s", "0.25"],
     lambda c, p: stage(p, TransNetV2ClipExtractionStage).crop_s == 0.25),
    (["--splitting-algorithm", "transnetv2", "--transnetv2-gpu-memory-gb", "5"],
     lambda c, p: stage(p, TransNetV2ClipExtractionStage).gpu_memory_gb == 5),
    (["--transcode-cpus-per-worker", "3"], lambda c, p: stage(p, ClipTranscodingStage).num_cpus_per_worker == 3),
    (["--transcode-encoder", "libvpx-vp9"], lambda c, p: stage(p, ClipTranscodingStage).encoder == "libvpx-vp9"),
    (["--transcode-encoder-threads", "2"], lambda c, p: stage(p, ClipTranscodingStage).encoder_threads == 2),
    (["--transcode-use-input-video-bit-rate"], lambda c, p: stage(p, ClipTranscodingStage).use_input_bit_rate),
    (["--clip-re-chunk-size", "8"], lambda c, p: c.clip_re_chunk_size == 8),
    (["--motion-filter", "enable"], lambda c, p: not stage(p, MotionFilterStage).score_only),
    (["--motion-filter", "score-only"], lambda c, p: stage(p, MotionFilterStage).score_only),
    (["--motion-filter", "enable", "--motion-global-mean-threshold", "0.01"],
     lambda c, p: stage(p, MotionFilterStage).global_mean_threshold == 0.01),
    (["--motion-filter", "enable", "--motion-per-patch-min-256-threshold", "0.001"],
     lambda c, p: stage(p, MotionFilterStage).per_patch_min_256_threshold == 0.001),
    (["--motion-filter", "enable", "--motion-decode-target-fps", "4"],
     lambda c, p: stage(p, MotionFilterStage).target_fps == 4),
    (["--motion-filter", "enable", "--motion-decode-target-duration-ratio", "1"],
     lambda c, p: stage(p, MotionFilterStage).target_duration_ratio == 1),
    (["--motion-filter", "enable", "--motion-decode-cpus-per-worker", "1"],
     lambda c, p: stage(p, MotionFilterStage).num_cpus_per_worker == 1),
    # Accepted at the values where vidcap does what NeMo Curator does (no batches, motion on the CPU).
    (["--motion-score-batch-size", "64"], lambda c, p: c == parsed()[0]),
    (["--motion-score-gpus-per-worker", "0"], lambda c, p: c == parsed()[0]),
    (["--clip-extraction-target-res", "-1"], lambda c, p: c == parsed()[0]),
    (["--aesthetic-reduction", "min"], lambda c, p: c == parsed()[0]),
    (["--aesthetic-gpus-per-worker", "0.25"], lambda c, p: c == parsed()[0]),
    (["--embedding-algorithm", "cosmos-embed1-224p"], lambda c, p: c == parsed()[0]),
    (["--embedding-gpu-memory-gb", "20"], lambda c, p: c == parsed()[0]),
    (["--transcode-ffmpeg-batch-size", "16"], lambda c, p: c == parsed()[0]),
    (["--no-generate-embeddings"], lambda c, p: c == parsed()[0]),
    (["--generate-previews"], lambda c, p: bool(stage(p, PreviewStage))),
    (["--generate-previews", "--preview-target-fps", "2"], lambda c, p: stage(p, PreviewStage).target_fps == 2),
    (["--generate-previews", "--preview-target-height", "480"],
     lambda c, p: stage(p, PreviewStage).target_height == 480),
    (CAPTIONS, lambda c, p: bool(stage(p, CaptionGenerationStage))),
    (["--captioning-algorithm", "qwen", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).model_variant == "qwen2.5"),
    (["--captioning-window-size", "64", *CAPTIONS], lambda c, p: stage(p, CaptionPreparationStage).window_size == 64),
    (["--captioning-remainder-threshold", "32", *CAPTIONS],
     lambda c, p: stage(p, CaptionPreparationStage).remainder_threshold == 32),
    (["--captioning-prompt-variant", "av-surveillance", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).prompt_variant == "av-surveillance"),
    (["--captioning-prompt-text", "Say it.", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).prompt_text == "Say it."),
    (["--captioning-sampling-fps", "4", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).frames["caption"].fps == 4),
    (["--captioning-preprocess-dtype", "float32", *CAPTIONS], lambda c, p: c == parsed(*CAPTIONS)[0]),
    (["--captioning-stage2-caption", *CAPTIONS], lambda c, p: stage(p, CaptionGenerationStage).stage2_caption),
    (["--captioning-stage2-prompt-text", "Again: {caption}", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).stage2_prompt_text == "Again: {caption}"),
    (["--captioning-batch-size", "4", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).caption_batch_size == 4),
    (["--captioning-use-fp8-weights", *CAPTIONS], lambda c, p: stage(p, CaptionGenerationStage).fp8),
    (["--captioning-max-output-tokens", "64", *CAPTIONS],
     lambda c, p: stage(p, CaptionGenerationStage).max_output_tokens == 64),
    (["--captioning-use-vllm-mmcache", *CAPTIONS], lambda c, p: stage(p, CaptionGenerationStage).vllm_mmcache),
    (ENHANCE, lambda c, p: bool(stage(p, CaptionEnhancementStage))),
    (["--enhance-captions-algorithm", "qwen", *ENHANCE],
     lambda c, p: (stage(p, CaptionEnhancementStage).algorithm, stage(p, CaptionEnhancementStage).model_variant)
     == ("qwen_lm", "qwen2.5")),
    (["--enhance-captions-batch-size", "8", *ENHANCE], lambda c, p: stage(p, CaptionEnhancementStage).batch_size == 8),
    (["--enhance-captions-use-fp8-weights", *ENHANCE], lambda c, p: stage(p, CaptionEnhancementStage).fp8),
    (["--enhance-captions-max-output-tokens", "64", *ENHANCE],
     lambda c, p: stage(p, CaptionEnhancementStage).max_output_tokens == 64),
    (["--enhance-captioning-prompt-variant", "av-surveillance", *ENHANCE],
     lambda c, p: stage(p, CaptionEnhancementStage).prompt_variant == "av-surveillance"),
    (["--enhance-captions-prompt-text", "More: {caption}", *ENHANCE],
     lambda c, p: stage(p, CaptionEnhancementStage).prompt_text == "More: {caption}"),
    (["--enhanced-caption-models", "qwen_lm", *ENHANCE], lambda c, p: c == parsed(*ENHANCE)[0]),
]  # fmt: skip

REFUSED: list[tuple[list[str], str]] = [
    (["--dry-run"], "vidcap has no dry run"),
    (["--transcode-ffmpeg-batch-size", "64"], "vidcap runs one ffmpeg per clip"),
    (["--transcode-use-hwaccel"], "vidcap decodes sources on the CPU"),
    (["--transnetv2-frame-decoder-mode", "nvdec"], "--transnetv2-frame-decoder-mode takes pynvc, ffmpeg_gpu or"),
    (["--motion-score-batch-size", "32"], "scores motion clip by clip on the CPU, without batches"),
    (["--motion-score-gpus-per-worker", "1"], "vidcap scores motion on the CPU"),
    (["--clip-extraction-target-res", "224"], "vidcap has no clip frame extraction stage"),
    (["--aesthetic-threshold", "3.5"], "vidcap has no aesthetic filter"),
    (["--aesthetic-reduction", "mean"], "vidcap has no aesthetic filter"),
    (["--aesthetic-gpus-per-worker", "0.5"], "vidcap has no aesthetic filter"),
    (["--embedding-algorithm", "internvideo2"], "vidcap makes no embeddings"),
    (["--embedding-gpu-memory-gb", "10"], "vidcap makes no embeddings"),
    (["--captioning-model-does-preprocess", *CAPTIONS], "vidcap samples and sizes a window's frames itself"),
    (["--captioning-preprocess-dtype", "int4", *CAPTIONS], "--captioning-preprocess-dtype takes float32, float16"),
    (["--enhanced-caption-models", "gpt", *ENHANCE], "vidcap enhances captions with qwen_lm only"),
]


def test_every_flag_of_curators_script_is_covered_here() -> None:
    covered = {a for args, _ in [*MEANS, *REFUSED] for a in args if a.startswith("--")}
    covered |= {"--video-dir", "--output-clip-path"}  # test_curator_paths
    assert sorted(set(CURATOR_SCRIPT_FLAGS) - covered) == []


@pytest.mark.parametrize(("argv", "check"), MEANS, ids=[" ".join(a) for a, _ in MEANS])
def test_flag_means_what_it_means_in_curator(argv: list[str], check: Check) -> None:
    config, pipeline = parsed(*argv)
    assert check(config, pipeline)


@pytest.mark.parametrize(("argv", "why"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_flag_vidcap_cannot_honour_stops_with_a_sentence(argv: list[str], why: str) -> None:
    with pytest.raises(ConfigError, match="NeMo Curator's") as info:
        parsed(*argv)
    assert why in str(info.value)


def test_curator_paths() -> None:
    config, _ = parsed()
    params = RUN.make_context("run", ["--video-dir", "/v", "--output-clip-path", "/o"]).params
    config = config_from(params)
    assert (config.input_path, config.output_path) == ("/v", "/o")
    config = config_from(RUN.make_context("run", ["--video-dir", "/v", "/o2"]).params)  # OUTPUT given plainly
    assert (config.input_path, config.output_path) == ("/v", "/o2")


def test_refused_flags_exit_two_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    argv = ["--dry-run", "--aesthetic-threshold", "3.5", "--embedding-algorithm", "internvideo2"]
    proc = subprocess.run([sys.executable, "-m", "vidcap.cli", "run", str(tmp_path / "in"), str(tmp_path / "out"),
                           *argv], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2, text
    assert "No such option" not in text
    # All three at once, each with its reason.
    for why in ("no dry run", "no aesthetic filter", "makes no embeddings"):
        assert why in text
    assert not (tmp_path / "out").exists()


def test_curators_python_stage_arguments_keep_their_meaning() -> None:
    gen = CaptionGenerationStage(model_variant="qwen", generate_stage2_caption=True, model_batch_size=3,
                                 disable_mmcache=False, model_does_preprocess=False)  # fmt: skip
    assert (gen.model_variant, gen.stage2_caption, gen.caption_batch_size, gen.vllm_mmcache) == (
        "qwen2.5",
        True,
        3,
        True,
    )
    assert CaptionGenerationStage(disable_mmcache=True).vllm_mmcache is False
    # ... and reaches the engine's options (vLLM's processor cache), which only the captioning stage can turn on.
    assert gen._options().mm_cache is True and CaptionGenerationStage()._options().mm_cache is False
    # Folded into vidcap's own settings: a run with Curator's spelling is the same run as with vidcap's.
    assert gen.settings() == CaptionGenerationStage(stage2_caption=True, caption_batch_size=3,
                                                    vllm_mmcache=True).settings()  # fmt: skip
    with pytest.raises(ConfigError, match="model_does_preprocess True is not supported"):
        CaptionGenerationStage(model_does_preprocess=True)
    prep = CaptionPreparationStage(model_variant="qwen", preprocess_dtype="float16", generate_previews=True)
    assert prep.model_variant == "qwen2.5" and prep.keep_mp4
    enh = CaptionEnhancementStage(model_variant="qwen", model_batch_size=16)
    assert (enh.algorithm, enh.model_variant, enh.batch_size) == ("qwen_lm", "qwen2.5", 16)
    assert CaptionEnhancementStage(algorithm="qwen").algorithm == "qwen_lm"
