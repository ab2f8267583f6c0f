"""Window preparation: vidcap's one forward pass against a per-window baseline, same run, same clip.

The baseline does what a per-window pipeline does: for each window it opens
the clip and decodes from the first frame up to the window's end to pick the
sampled frames, and it cuts the window's mp4 with an ffmpeg call (-ss, re-encode).

    .venv/bin/python bench/bench_windows.py [--seconds 30] [--size 1280x720] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcap.media.decode import Need, WindowPlan, decode_windows
from vidcap.media.encode import transcode_clip
from vidcap.windowing import compute_windows, sample_frame_indices

logger = logging.getLogger("bench")


def baseline(buffer: bytes, plans: list[WindowPlan], fps: Fraction, keep_mp4: bool) -> int:
    produced = 0
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        clip.write_bytes(buffer)
        for plan in plans:
            wanted = set(plan.picks.get("model", []))
            frames = []
            if wanted:
                with av.open(io.BytesIO(buffer)) as c:
                    for i, frame in enumerate(c.decode(video=0)):
                        if i in wanted:
                            frames.append(frame.to_ndarray(format="rgb24"))
                        if i >= plan.end:
                            break
                produced += len(np.stack(frames))
            if keep_mp4:
                out = Path(tmp) / f"w{plan.start}.mp4"
                start = float(plan.start / fps)
                cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{start:.6f}", "-i", str(clip)]
                cmd += ["-frames:v", str(plan.end - plan.start + 1), "-c:v", "libx264", "-preset", "veryfast"]
                subprocess.run([*cmd, "-an", str(out)], check=True)
    return produced


def vidcap_pass(buffer: bytes, plans: list[WindowPlan], fps: Fraction, keep_mp4: bool) -> int:
    results, _ = decode_windows(buffer, plans, {"model": Need()}, fps=fps, keep_mp4=keep_mp4)
    return sum(len(r.frames["model"].frames) for r in results if "model" in r.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--window-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.mp4"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={args.size}:rate={args.fps}:duration={args.seconds}",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
            check=True,
        )  # fmt: skip
        total = round(args.seconds * args.fps)
        plain, _ = transcode_clip(src, 0, total, f"{args.fps}/1", threads=2)
        # What the CLI does with previews on: a keyframe on every window boundary.
        keyed, _ = transcode_clip(src, 0, total, f"{args.fps}/1", threads=2, keyframe_interval=args.window_size)
    fps = Fraction(args.fps)
    spans = compute_windows(total, args.window_size, args.window_size // 2)
    sampled = [WindowPlan(s, e, {"model": sample_frame_indices(s, e, args.fps, 2.0)}) for s, e in spans]
    unsampled = [WindowPlan(s, e) for s, e in spans]
    logger.info(
        "clip: %s, %.0f s at %d fps (%d frames), %d windows of up to %d frames; clip sizes %d / %d bytes (keyed)",
        args.size, args.seconds, args.fps, total, len(spans), args.window_size, len(plain), len(keyed),
    )  # fmt: skip
    cases = [
        ("sampled frames only", sampled, False, plain),
        ("sampled frames + window mp4s", sampled, True, plain),
        ("  same, keyframe-aligned clip", sampled, True, keyed),
        ("window mp4s only (previews)", unsampled, True, keyed),
    ]
    for what, plans, keep_mp4, ours_clip in cases:
        timings: dict[str, list[float]] = {"baseline": [], "vidcap": []}
        for _ in range(args.repeat):
            # Alternate the order so drift on a shared machine hits both.
            for name, fn, buf in (("baseline", baseline, plain), ("vidcap", vidcap_pass, ours_clip)):
                t0 = time.perf_counter()
                n = fn(buf, plans, fps, keep_mp4)
                timings[name].append(time.perf_counter() - t0)
                assert n == sum(len(p.picks.get("model", [])) for p in plans)
        base, ours = statistics.median(timings["baseline"]), statistics.median(timings["vidcap"])
        logger.info(
            "%-30s baseline %6.2f s   vidcap %6.2f s   speed-up x%.2f  (median of %d)",
            what, base, ours, base / ours, args.repeat,
        )  # fmt: skip


if __name__ == "__main__":
    main()
