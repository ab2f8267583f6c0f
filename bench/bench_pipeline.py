"""Whole pipeline (split, transcode, windows, previews, write) on generated videos:
the local executor with a thread per stage against the same stages run one video at a time.

    .venv/bin/python bench/bench_pipeline.py [--videos 6] [--seconds 20] [--repeat 2]
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


def pipeline(src: Path, out: Path) -> Pipeline:
    return Pipeline(
        [
            VideoReaderStage(src),
            ClipSplittingStage(),
            ClipTranscodingStage(num_cpus_per_worker=2, keyframe_interval=256),
            CaptionPreparationStage(keep_mp4=True, sample_frames=False),
            PreviewStage(num_cpus_per_worker=2),
            ClipWriterStage(out),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vidcap").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(args.videos):
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                 f"testsrc2=size={args.size}:rate=30:duration={args.seconds}", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p", str(src / f"v{i}.mp4")],
                check=True,
            )  # fmt: skip
        timings: dict[str, list[float]] = {"serial": [], "threaded": []}
        for _ in range(args.repeat):
            for name, threaded in (("serial", False), ("threaded", True)):
                out = Path(tmp) / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                result = pipeline(src, out).run(LocalExecutor(threaded=threaded))
                timings[name].append(time.perf_counter() - t0)
                assert all(r.status == "ok" for r in result.reports)
        serial, threaded = statistics.median(timings["serial"]), statistics.median(timings["threaded"])
        logger.info(
            "%d videos x %.0f s %s: one video at a time %.1f s, thread per stage %.1f s, speed-up x%.2f (median of %d)",
            args.videos, args.seconds, args.size, serial, threaded, serial / threaded, args.repeat,
        )  # fmt: skip


if __name__ == "__main__":
    main()
