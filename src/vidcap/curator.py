"""NeMo Curator's video example script, flag by flag: what each of its flags that vidcap does not spell the same
way means here. Every flag of that script either means in vidcap what it means there, or stops the run (exit 2)
with a sentence saying how vidcap differs and what to use. None ends in "No such option".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidcap.errors import ConfigError


@dataclass(frozen=True)
class CuratorFlag:
    """One of NeMo Curator's flags that vidcap does not have under the same name.

    ``target``: the vidcap setting it sets (``convert`` maps its value); without one, the flag changes nothing in
    vidcap, and ``same`` says which of its values mean what vidcap does anyway: any other value stops the run
    with ``why``.
    """

    flag: str
    kind: Any
    default: Any
    help: str
    target: str | None = None
    convert: Callable[[Any], Any] | None = None
    same: Callable[[Any], bool] | None = None
    why: str = ""


def _never(value: Any) -> bool:
    return False


# Curator's flags vidcap spells the same way (--model-dir, --splitting-algorithm, --captioning-*, --motion-*,
# --transnetv2-*, --limit-clips, --no-upload-clips, --clip-re-chunk-size, --transcode-encoder-threads,
# --transcode-use-input-video-bit-rate, --captioning-use-vllm-mmcache, ...) are vidcap's own, not listed here.
CURATOR_FLAGS: tuple[CuratorFlag, ...] = (
    # Where things are.
    CuratorFlag("--video-dir", str | None, None, "INPUT, as NeMo Curator names it.", target="input_path"),
    CuratorFlag("--output-path", str | None, None, "OUTPUT, as NeMo Curator names it.", target="output_path"),
    CuratorFlag(
        "--output-clip-path", str | None, None, "OUTPUT, as older NeMo Curator names it.", target="output_path"
    ),
    CuratorFlag("--video-limit", int | None, None, "--limit.", target="limit"),
    CuratorFlag(
        "--fixed-stride-min-clip-length-s",
        float | None,
        None,
        "--fixed-stride-min-clip-length.",
        target="fixed_stride_min_clip_length",
    ),
    CuratorFlag(
        "--enhance-captioning-prompt-variant",
        str | None,
        None,
        "--enhance-captions-prompt-variant.",
        target="enhance_captions_prompt_variant",
    ),
    CuratorFlag(
        "--enhanced-caption-models",
        str,
        "qwen_lm",
        "qwen_lm (the only enhancement model).",
        same=lambda v: v == "qwen_lm",
        why="vidcap enhances captions with qwen_lm only",
    ),
    # Run control.
    CuratorFlag(
        "--dry-run",
        bool,
        False,
        "Refused: vidcap has no dry run.",
        same=lambda v: not v,
        why="vidcap has no dry run: it writes every output of the videos it processes and resumes where "
        "it stopped; to try it on a few videos use --limit N",
    ),
    # Transcoding.
    CuratorFlag(
        "--transcode-ffmpeg-batch-size",
        int,
        16,
        "Refused unless 16.",
        same=lambda v: v == 16,
        why="vidcap runs one ffmpeg per clip, in a pool sized by --transcode-cpus-per-worker: drop "
        "--transcode-ffmpeg-batch-size",
    ),
    CuratorFlag(
        "--transcode-use-hwaccel",
        bool,
        False,
        "Refused: sources are decoded on the CPU.",
        same=lambda v: not v,
        why="vidcap decodes sources on the CPU (exact frame cuts need its own "
        "timing of every frame); --transcode-encoder h264_nvenc encodes on the GPU",
    ),
    # Splitting.
    CuratorFlag(
        "--transnetv2-frame-decoder-mode",
        str,
        "pynvc",
        "Accepted: vidcap decodes TransNetV2's frames with PyAV on the CPU (NeMo Curator's own fallback).",
        same=lambda v: v in ("pynvc", "ffmpeg_gpu", "ffmpeg_cpu"),
        why="--transnetv2-frame-decoder-mode takes pynvc, ffmpeg_gpu or ffmpeg_cpu",
    ),
    # Filters vidcap has not, or has otherwise.
    CuratorFlag(
        "--motion-score-batch-size",
        int,
        64,
        "Refused unless 64.",
        same=lambda v: v == 64,
        why="vidcap scores motion clip by clip on the CPU, without batches: drop --motion-score-batch-size",
    ),
    CuratorFlag(
        "--motion-score-gpus-per-worker",
        float,
        0.5,
        "Accepted as 0 or 0.5: motion is scored on the CPU.",
        same=lambda v: v in (0, 0.5),
        why="vidcap scores motion on the CPU (it needs no model): drop --motion-score-gpus-per-worker",
    ),
    CuratorFlag(
        "--clip-extraction-target-res",
        int,
        -1,
        "Refused unless -1.",
        same=lambda v: v == -1,
        why="vidcap has no clip frame extraction stage (NeMo Curator's serves aesthetics and embeddings, "
        "which vidcap does not make); each stage declares the frames it needs",
    ),
    CuratorFlag(
        "--aesthetic-threshold",
        float | None,
        None,
        "Refused: vidcap has no aesthetic filter.",
        same=lambda v: v is None,
        why="vidcap has no aesthetic filter: drop --aesthetic-threshold "
        "(--motion-filter enable filters clips that barely move)",
    ),
    CuratorFlag(
        "--aesthetic-reduction",
        str,
        "min",
        "Refused unless min.",
        same=lambda v: v == "min",
        why="vidcap has no aesthetic filter: drop --aesthetic-reduction",
    ),
    CuratorFlag(
        "--aesthetic-gpus-per-worker",
        float,
        0.25,
        "Refused unless 0.25.",
        same=lambda v: v == 0.25,
        why="vidcap has no aesthetic filter: drop --aesthetic-gpus-per-worker",
    ),
    # Embeddings (on by default in NeMo Curator's script).
    CuratorFlag("--no-generate-embeddings", bool, False, "Accepted: vidcap makes no embeddings.", same=lambda v: True),
    CuratorFlag(
        "--embedding-algorithm",
        str,
        "cosmos-embed1-224p",
        "Refused: vidcap makes no embeddings.",
        same=lambda v: v == "cosmos-embed1-224p",
        why="vidcap makes no embeddings (NeMo Curator's --no-generate-embeddings is what it does): drop "
        "--embedding-algorithm",
    ),
    CuratorFlag(
        "--embedding-gpu-memory-gb",
        float,
        20.0,
        "Refused: vidcap makes no embeddings.",
        same=lambda v: v == 20.0,
        why="vidcap makes no embeddings: drop --embedding-gpu-memory-gb",
    ),
    # Captioning.
    CuratorFlag(
        "--captioning-preprocess-dtype",
        str,
        "float16",
        "Accepted: frames reach the model's processor as uint8, which it normalises as it would a float copy.",
        same=lambda v: v in ("float32", "float16", "bfloat16", "uint8"),
        why="--captioning-preprocess-dtype takes float32, float16, bfloat16 or uint8",
    ),
    CuratorFlag(
        "--captioning-model-does-preprocess",
        bool,
        False,
        "Refused: vidcap sizes frames itself.",
        same=lambda v: not v,
        why="vidcap samples and sizes a window's frames itself, so that every backend "
        "gives the model the same input: drop --captioning-model-does-preprocess",
    ),
)

BY_FLAG = {f.flag: f for f in CURATOR_FLAGS}


def setting_name(flag: str) -> str:
    """The name a Curator flag's value is passed under (never a RunConfig field's)."""
    return "curator_" + flag.removeprefix("--").replace("-", "_")


def apply(values: dict[str, Any], given: dict[str, Any]) -> None:
    """Put what Curator's flags ``given`` (by their setting_name) mean into vidcap's ``values``; ConfigError (all at
    once) for those whose value vidcap cannot honour."""
    problems = []
    if given.get(setting_name("--video-dir")) is not None and values.get("output_path") is None:
        values["output_path"] = values.get("input_path")  # `--video-dir IN OUT`: the one positional is OUTPUT
    for f in CURATOR_FLAGS:
        value = given.get(setting_name(f.flag))
        if value is None or (value == f.default and f.target is None):
            continue
        if f.target is not None:
            if value != f.default:
                values[f.target] = f.convert(value) if f.convert else value
        elif not (f.same or _never)(value):
            problems.append(f"{f.flag} {value}: {f.why}")
    if problems:
        raise ConfigError("NeMo Curator's " + "; ".join(problems))
