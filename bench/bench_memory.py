"""Peak memory of a previews-only run (the vidcap process's own peak RSS, ffmpeg children aside): it must not
grow with a video's length, with the number of videos, with one clip's length (--splitting-algorithm none),
nor with the number of frames a preview shows (a 1 fps source at --preview-target-fps 240). Each run is a
fresh process.

    .venv/bin/python bench/bench_memory.py [--size 640x360] [--short 20 200] [--clip-minutes 0.5 2]
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
app(['run', sys.argv[1], sys.argv[2], '--generate-previews', *sys.argv[3:]], standalone_mode=False)
peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print('PEAK_KB', peak)
"""


def generate(path: Path, seconds: float, size: str, rate: float = 30) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def peak_mb(src: Path, out: Path, *flags: str) -> float:
    proc = subprocess.run([sys.executable, "-c", RUN, str(src), str(out), *flags], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK_KB")), None)
    if line is None:
        raise RuntimeError(proc.stderr[-2000:])
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--minutes", type=float, nargs=2, default=[1, 10])
    parser.add_argument("--short", type=int, nargs=2, default=[20, 200])
    parser.add_argument("--clip-minutes", type=float, nargs=2, default=[0.5, 2])
    parser.add_argument("--slow-seconds", type=float, nargs=2, default=[20, 120])
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
        peaks = []
        for minutes in args.clip_minutes:  # the whole video as one clip: its windows stream through
            src = tmp / f"clip{minutes:g}"
            src.mkdir()
            generate(src / "v.mp4", minutes * 60, args.size)
            peaks.append(peak_mb(src, tmp / f"out-clip{minutes:g}", "--splitting-algorithm", "none"))
            logger.info("one %g-minute %s clip (--splitting-algorithm none): peak %.0f MB", minutes, args.size,
                        peaks[-1])  # fmt: skip
        logger.info("  %g min / %g min: x%.2f", args.clip_minutes[1], args.clip_minutes[0], peaks[1] / peaks[0])
        peaks = []
        for seconds in args.slow_seconds:  # one window of a 1 fps source at 240 preview frames a second
            src = tmp / f"slow{seconds:g}"
            src.mkdir()
            generate(src / "v.mp4", seconds, args.size, rate=1)
            flags = ("--preview-target-fps", "240", "--fixed-stride-split-duration", str(seconds))
            peaks.append(peak_mb(src, tmp / f"out-slow{seconds:g}", *flags))
            logger.info("a %g s 1 fps video at --preview-target-fps 240 (%d preview frames): peak %.0f MB", seconds,
                        seconds * 240, peaks[-1])  # fmt: skip
        logger.info("  %g s / %g s: x%.2f", args.slow_seconds[1], args.slow_seconds[0], peaks[1] / peaks[0])


if __name__ == "__main__":
    main()
