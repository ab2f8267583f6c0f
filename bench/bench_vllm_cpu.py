"""Captioning throughput: the vllm backend against the transformers backend, same model, same windows, one run.

Windows come from generated videos through vidcap's own stages; each backend loads once (not timed), then
captions every window in batches of --batch; windows/s are printed for both, with the ratio.

    .venv-vllm/bin/python bench/bench_vllm_cpu.py                 # tiny random Qwen2.5-VL, on the CPU
    python bench/bench_vllm_cpu.py --model /models/Qwen2.5-VL-7B-Instruct --windows 64 --max-tokens 128   # a GPU
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench")


def windows(src: Path, count: int, variant: str) -> list[Any]:
    """Model inputs of real windows, as the generation stage builds them from the frames it declared."""
    from vidcap.data import Video
    from vidcap.pipeline import bind
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        VideoReaderStage,
    )

    found: list[Any] = []
    prep = CaptionPreparationStage(window_size=60, remainder_threshold=30)
    captioning = CaptionGenerationStage(model_variant=variant)  # declares its frames; not loaded
    for path in sorted(src.glob("*.mp4")):
        video = Video(path=path, relative_path=path.name)
        stages = bind([VideoReaderStage(path), ClipSplittingStage(clip_len_s=4, clip_stride_s=4),
                       ClipTranscodingStage(preset="ultrafast"), prep, captioning])  # fmt: skip
        for stage in stages[:-1]:
            video = stage.process(video)
        found += [captioning.llm_input(c, w) for c in video.clips for w in c.windows]
    return found[:count]


def timed(backend: Any, requests: list[Any], batch: int, max_tokens: int) -> tuple[float, list[int]]:
    start = time.perf_counter()
    tokens = []
    for i in range(0, len(requests), batch):
        tokens += [r.output_tokens for r in backend.generate(requests[i : i + batch], max_tokens)]
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a checkpoint folder (default: build a tiny random Qwen2.5-VL)")
    parser.add_argument("--variant", default="qwen2.5")
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vidcap").setLevel(logging.WARNING)
    from vidcap.models.backends import EngineOptions, build_backend
    from vidcap.models.backends.hf import load_processor
    from vidcap.models.inputs import input_format
    from vidcap.models.registry import caption_model

    spec = caption_model(args.variant)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from tiny_models import build_qwen25_vl

            model = build_qwen25_vl(Path(tmp) / "tiny")
        src = Path(tmp) / "src"
        src.mkdir()
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from helpers import make_video

        for i in range(max(1, args.windows // 4)):
            make_video(src / f"v{i}.mp4", seconds=8, width=640, height=360, fps=30)
        fmt = input_format(spec, load_processor(model))
        requests = [fmt.templated(inp) for inp in windows(src, args.windows, args.variant)]
        results: dict[str, list[float]] = {}
        for name in ("transformers", "vllm"):
            backend = build_backend(name, spec, model_path=model, model_name=str(model), vision=fmt,
                                    options=EngineOptions(max_output_tokens=args.max_tokens))  # fmt: skip
            timed(backend, requests[: args.batch], args.batch, args.max_tokens)  # warm-up
            runs = [timed(backend, requests, args.batch, args.max_tokens) for _ in range(args.repeat)]
            results[name] = [len(requests) / seconds for seconds, _ in runs]
            tokens = runs[-1][1]
            logger.info("%s: %.2f windows/s (median of %d; %d windows, %d output tokens each on average)",
                        name, statistics.median(results[name]), args.repeat, len(requests),
                        round(sum(tokens) / len(tokens)))  # fmt: skip
            backend.close()
        hf, vllm = statistics.median(results["transformers"]), statistics.median(results["vllm"])
        logger.info("vllm / transformers: x%.2f (%s, batch %d, %d new tokens)", vllm / hf, model, args.batch,
                    args.max_tokens)  # fmt: skip


if __name__ == "__main__":
    main()
