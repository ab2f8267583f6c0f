"""The local executor against the designs before it, on the same generated videos, in one run: videos/s of
- the engine: a worker pool per stage sized from its resources, tasks of a few clips;
- one thread per stage with whole videos (the previous executor's design);
- one video at a time through every stage.

    .venv/bin/python bench/bench_pipeline.py [--videos 8] [--seconds 30] [--size 640x360] [--repeat 2]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from vidcap import Pipeline
from vidcap.executors.local import LocalExecutor
from vidcap.stages import (
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ClipWriterStage,
    PreviewStage,
    VideoReaderStage,
)

logger = logging.getLogger("bench")

DESIGNS = {
    "worker pools": lambda: LocalExecutor(),
    "thread per stage": lambda: LocalExecutor(max_workers=1, clips_per_task=None),
    "one video at a time": lambda: LocalExecutor(serial=True, clips_per_task=None),
}


def pipeline(src: Path, out: Path) -> Pipeline:
    """What `vidcap run --generate-previews` builds."""
    return Pipeline([
        VideoReaderStage(src),
        ClipSplittingStage(),
        ClipTranscodingStage(),
        CaptionPreparationStage(),
        PreviewStage(),
        ClipWriterStage(out),
    ])  # fmt: skip


def compare(src: Path, tmp: Path, videos: int, repeat: int, label: str) -> None:
    timings: dict[str, list[float]] = {name: [] for name in DESIGNS}
    for k in range(repeat):
        for name in list(DESIGNS)[:: 1 if k % 2 == 0 else -1]:  # alternate the order against drift
            out = tmp / "out"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            result = pipeline(src, out).run(DESIGNS[name]())
            timings[name].append(time.perf_counter() - start)
            assert len(result.reports) == videos and all(r.status == "ok" for r in result.reports)
    base = statistics.median(timings["one video at a time"])
    logger.info("%s, median of %d:", label, repeat)
    for name, seconds in timings.items():
        s = statistics.median(seconds)
        logger.info("  %-20s %6.1f s  %.3f videos/s  x%.2f against one video at a time", name, s, videos / s,
                    base / s)  # fmt: skip


def make(folder: Path, count: int, seconds: float, size: str) -> Path:
    folder.mkdir()
    for i in range(count):
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={size}:rate=30:duration={seconds}", "-c:v", "libx264",
             "-pix_fmt", "yuv420p", str(folder / f"v{i}.mp4")],
            check=True,
        )  # fmt: skip
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8, help="long videos")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--short", type=int, default=60, help="short videos (3 s, 426x240) in a second set")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vidcap").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        tmp = Path(root)
        long = make(tmp / "long", args.videos, args.seconds, args.size)
        compare(long, tmp, args.videos, args.repeat, f"{args.videos} videos x {args.seconds:.0f} s {args.size}")
        if args.short:
            short = make(tmp / "short", args.short, 3.0, "426x240")
            compare(short, tmp, args.short, args.repeat, f"{args.short} videos x 3 s 426x240")


if __name__ == "__main__":
    main()
