"""Captioning throughput on a GPU: plain transformers ``generate`` one window at a time against vidcap's whole
pipeline (transformers backend) over many short generated videos, in one run, with the model's busy share.

The model is the full-size Qwen2.5-VL-7B architecture with random bf16 weights, built on the GPU from the
public config (no download): its compute is the real model's. Its special-token ids are those of a small
tokenizer built here (the real one is not on this machine); the vocabulary keeps its real size.
``--tiny`` runs the same comparison on the CPU with a tiny random Qwen2.5-VL, as CI does.

    python bench/gpu_caption.py --videos 64 --new-tokens 128           # a GPU (H100/H200)
    .venv/bin/python bench/gpu_caption.py --tiny --videos 6 --new-tokens 8
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

logger = logging.getLogger("bench")

# Qwen2.5-VL-7B-Instruct's public configuration.
FULL_TEXT = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                 num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000, rope_theta=1000000.0,
                 rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})  # fmt: skip
FULL_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                   fullatt_block_indexes=[7, 15, 23, 31], window_size=112, patch_size=14, spatial_merge_size=2,
                   temporal_patch_size=2, tokens_per_second=2)  # fmt: skip

MODEL: Any = None  # the model built here, handed to vidcap's backend instead of weights from disk


def build_full(folder: Path) -> Path:
    """config.json and the processor in ``folder`` (what vidcap checks and loads); the model on the GPU."""
    global MODEL
    import torch
    from tiny_models import CHAT_TEMPLATE, QWEN25_VIDEO_SIZE, _vision_ids, build_tokenizer
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = build_tokenizer()
    ids = _vision_ids(tok)
    text = {**FULL_TEXT, "bos_token_id": tok.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>")}  # fmt: skip
    config = Qwen2_5_VLConfig(text_config=text, vision_config=FULL_VISION, **ids)
    config.save_pretrained(folder)
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(
        size=QWEN25_VIDEO_SIZE), tokenizer=tok, chat_template=CHAT_TEMPLATE).save_pretrained(folder)  # fmt: skip
    start = time.perf_counter()
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        MODEL = Qwen2_5_VLForConditionalGeneration(config).eval()
        torch.set_default_dtype(torch.float32)
    logger.info("built the full-size model on the GPU in %.1f s", time.perf_counter() - start)
    return folder


def make_videos(folder: Path, count: int, seconds: float, size: str) -> None:
    from helpers import make_video

    width, height = (int(v) for v in size.split("x"))
    for i in range(count):
        make_video(folder / f"v{i:03d}.mp4", seconds=seconds, width=width, height=height, fps=30)


def stages(src: Path, out: Path | None, model: Path, batch: int, new_tokens: int) -> list[Any]:
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        ClipWriterStage,
        VideoReaderStage,
    )

    class Captioning(CaptionGenerationStage):
        """Captioning with the model built here, when there is one (the full-size random model)."""

        name: ClassVar[str] = "caption_generation"

        def _start(self, **kwargs: Any) -> None:
            if MODEL is None:
                return super()._start(**kwargs)
            from vidcap.models.backends.hf import TransformersBackend

            self._engine = TransformersBackend(model, vision=kwargs["vision"], model=MODEL)

    found = [
        VideoReaderStage(src),
        ClipSplittingStage(),
        ClipTranscodingStage(preset="veryfast"),
        CaptionPreparationStage(),
        Captioning(model=str(model), backend="transformers", caption_batch_size=batch, max_output_tokens=new_tokens),
    ]
    return found + ([ClipWriterStage(out)] if out is not None else [])


def baseline(src: Path, model: Path, new_tokens: int) -> tuple[int, float]:
    """Plain transformers: each window's inputs through the processor, then generate, one at a time."""
    import torch

    from vidcap.data import Video
    from vidcap.executors.base import run_batch
    from vidcap.pipeline import bind

    prep = bind(stages(src, None, model, 1, new_tokens))
    captioning = prep.pop()
    captioning.setup()  # the processor and the model, as vidcap loads them
    backend = captioning._engine
    windows = []
    for path in sorted(src.glob("*.mp4")):
        tasks = [Video(path=path, relative_path=path.name)]
        for stage in prep:
            tasks = [t for task in tasks for t in run_batch(stage, [task])]
        windows += [captioning.llm_input(c, w) for t in tasks for c in t.clips for w in c.windows]
    start = time.perf_counter()
    for window in windows:
        batch = backend._batch([captioning._format.templated(window)]).to(backend.device)
        with torch.inference_mode():
            backend.model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(windows), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny random Qwen2.5-VL on the CPU (CI)")
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--batch", type=int, default=16, help="vidcap's --captioning-batch-size")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--baseline-windows", type=int, default=8, help="windows timed for plain generate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vidcap").setLevel(logging.WARNING)
    from vidcap import Pipeline

    with tempfile.TemporaryDirectory() as root:
        tmp = Path(root)
        if args.tiny:
            from tiny_models import build_qwen25_vl

            model = build_qwen25_vl(tmp / "model")
        else:
            model = build_full(tmp / "model")
        src = tmp / "src"
        src.mkdir()
        make_videos(src, args.videos, args.seconds, args.size)
        one = tmp / "one"  # the plain loop gets a few of the videos: at batch 1 it is slow
        one.mkdir()
        for path in sorted(src.glob("*.mp4"))[: max(1, args.baseline_windows)]:
            shutil.copy(path, one / path.name)
        windows, seconds = baseline(one, model, args.new_tokens)
        plain = windows / seconds
        logger.info("plain generate, batch 1: %d windows in %.1f s: %.3f windows/s", windows, seconds, plain)
        out = tmp / "out"
        start = time.perf_counter()
        result = Pipeline(stages(src, out, model, args.batch, args.new_tokens)).run()
        wall = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
        engine = summary["engines"]["caption_generation"]
        done = summary["caption_status"].get("ok", 0) + summary["caption_status"].get("truncated", 0)
        assert done == summary["windows"] > 0 and len(result.reports) == args.videos
        import pyarrow.parquet as pq

        tokens = [t for t in pq.read_table(out / "windows.parquet").column("output_tokens").to_pylist() if t]
        logger.info("vidcap pipeline: %d videos, %d windows in %.1f s (model loaded in the run): %.3f windows/s; "
                    "%d engine calls, largest %d; model busy %.0f%% of the run", args.videos, done, wall,
                    done / wall, engine["batches"], engine["largest_batch"], 100 * engine["busy_s"] / wall)  # fmt: skip
        # Plain generate always makes --new-tokens; a window that stops early at EOS would flatter vidcap.
        logger.info("vidcap generated %.1f tokens per window on average (plain: %d)", sum(tokens) / max(1, len(tokens)),
                    args.new_tokens)  # fmt: skip
        logger.info("vidcap / plain batch 1: x%.2f (%s, %d new tokens)", done / wall / plain,
                    "tiny model, CPU" if args.tiny else "Qwen2.5-VL-7B architecture, random bf16, GPU",
                    args.new_tokens)  # fmt: skip


if __name__ == "__main__":
    main()
