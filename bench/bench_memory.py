"""Peak memory of a previews-only run (the vidcap process's own peak RSS, ffmpeg children aside): it must not
grow with a video's length, nor with the number of videos. Each run is a fresh process.

    .venv/bin/python bench/bench_memory.py [--size 640x360] [--short 20 200]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger("bench")

RUN = """
import sys
from vidcap.cli import app
app(['run', sys.argv[1], sys.argv[2], '--generate-previews'], standalone_mode=False)
peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print('PEAK_KB', peak)
"""


def generate(path: Path, seconds: float, size: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}:rate=30:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def peak_mb(src: Path, out: Path) -> float:
    proc = subprocess.run([sys.executable, "-c", RUN, str(src), str(out)], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK_KB")), None)
    if line is None:
        raise RuntimeError(proc.stderr[-2000:])
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--minutes", type=float, nargs=2, default=[1, 10])
    parser.add_argument("--short", type=int, nargs=2, default=[20, 200])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as root:
        tmp = Path(root)
        peaks = []
        for minutes in args.minutes:
            src = tmp / f"long{minutes:g}"
            src.mkdir()
            generate(src / "v.mp4", minutes * 60, args.size)
            peaks.append(peak_mb(src, tmp / f"out-long{minutes:g}"))
            logger.info("one %g-minute %s video: peak %.0f MB", minutes, args.size, peaks[-1])
        logger.info("  %g min / %g min: x%.2f", args.minutes[1], args.minutes[0], peaks[1] / peaks[0])
        peaks = []
        shared = tmp / "one.mp4"
        generate(shared, 2, "320x180")
        for count in args.short:
            src = tmp / f"short{count}"
            src.mkdir()
            for i in range(count):
                (src / f"v{i:04d}.mp4").write_bytes(shared.read_bytes())  # distinct files, the same content
            peaks.append(peak_mb(src, tmp / f"out-short{count}"))
            logger.info("%d short videos: peak %.0f MB", count, peaks[-1])
        logger.info("  %d videos / %d videos: x%.2f", args.short[1], args.short[0], peaks[1] / peaks[0])


if __name__ == "__main__":
    main()
