"""The CPU side against the per-window ffmpeg method, on the same generated 480p-1080p videos at 25-60 fps.

The method, per window: one ffmpeg decodes the clip from its first frame and keeps frames S..E
(``select=between(n,S,E)``) to cut the window's mp4; a second ffmpeg decodes that mp4 again for the WebP.
Its whole run adds its own clip transcode (vidcap's ffmpeg arguments, without the keyframes on window
boundaries), one clip and one window after the other.

Two figures, each a ratio in one run (medians of --repeat, alternating which side goes first):
- windows + previews: the method's per-window work against vidcap's (the window step's one decode per clip
  for every declared need: the sampled model frames a captioning run asks for and each preview's frames, then a
  WebP per window);
- the whole CPU pipeline (split, transcode, windows, previews, files on disk): the method's whole run
  against ``vidcap run --generate-previews`` (plus the model frames) through the Python API with the default
  local executor.

    .venv/bin/python bench/bench_cpu.py [--seconds 20] [--repeat 2] [--window-size 256]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidcap.media.encode import transcode_clip
from vidcap.media.ffmpeg import run_ffmpeg
from vidcap.media.probe import probe_video
from vidcap.windowing import compute_windows, fixed_stride_spans

logger = logging.getLogger("bench")

# (size, fps, lavfi pattern): real footage is not to be had here, so patterns of different kinds with grain.
INPUTS = [
    ("854x480", 25, "testsrc2"),
    ("1280x720", 30, "mandelbrot"),
    ("1920x1080", 30, "testsrc2"),
    ("1280x720", 60, "smptehdbars"),
    ("960x540", 50, "life=mold=10:ratio=0.3:death_color=#333333:life_color=#ccddaa"),
]
PREVIEW: dict[str, Any] = {"target_fps": 1.0, "target_height": 240, "compression_level": 6, "quality": 50}


def make_inputs(folder: Path, seconds: float) -> list[Path]:
    paths = []
    for i, (size, fps, pattern) in enumerate(INPUTS):
        path = folder / f"v{i}_{size}_{fps}.mp4"
        source = f"{pattern}{':' if '=' in pattern else '='}size={size}:rate={fps}"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
             "-vf", "noise=alls=3:allf=t,format=yuv420p", "-c:v", "libx264", "-preset", "veryfast", str(path)],
            check=True,
        )  # fmt: skip
        paths.append(path)
    return paths


def method_windows(clip: Path, windows: list[tuple[int, int]], fps: float, tmp: Path) -> None:
    """The per-window method: cut each window's mp4 by decoding from the clip's start, then WebP it."""
    for s, e in windows:
        mp4 = tmp / f"w{s}.mp4"
        run_ffmpeg(["-i", str(clip), "-an", "-vf", f"select=between(n\\,{s}\\,{e}),setpts=N/FRAME_RATE/TB",
                    "-c:v", "libx264", str(mp4)])  # fmt: skip
        webp = tmp / f"w{s}.webp"
        run_ffmpeg(["-i", str(mp4), "-an", "-vf", f"fps={PREVIEW['target_fps']},scale=-1:{PREVIEW['target_height']}",
                    "-c:v", "libwebp", "-lossless", "0", "-compression_level", str(PREVIEW["compression_level"]),
                    "-q:v", str(PREVIEW["quality"]), "-loop", "0", str(webp)])  # fmt: skip


class ModelFrames:
    """A stage that only declares the frames a captioning model is given (Qwen2.5-VL, 2 fps): the window step
    decodes them with the preview's, and nothing loads a model."""

    @staticmethod
    def make() -> Any:
        from vidcap.frames import BudgetSize, FrameSpec
        from vidcap.models.registry import caption_model
        from vidcap.stages import Stage

        class _ModelFrames(Stage):
            name = "model_frames"
            reads = frozenset({"frames:caption"})

            @property
            def frames(self) -> dict[str, FrameSpec]:
                return {"caption": FrameSpec("sample", 2.0, BudgetSize(caption_model("qwen2.5").budget), "BICUBIC")}

            def process(self, video: Any) -> Any:
                return video

        return _ModelFrames()


def vidcap_windows(clips: list[tuple[Path, bytes, int, Fraction]], window: int) -> None:
    """vidcap's per-window work as a run does it: the window step (one forward pass per clip for the model's
    sampled frames and the preview's frames) and PreviewStage (a WebP per window from those frames), each with
    its worker pool."""
    from vidcap.data import Clip, Video
    from vidcap.executors.local import LocalExecutor
    from vidcap.pipeline import bind
    from vidcap.progress import Progress
    from vidcap.stages import CaptionPreparationStage, PreviewStage

    prep = CaptionPreparationStage(window_size=window, remainder_threshold=window // 2)
    stages = bind([prep, PreviewStage(**PREVIEW), ModelFrames.make()])
    tasks = []
    for path, keyed, frames, fps in clips:
        clip = Clip(uuid=str(len(tasks)), source_video=str(path), start_frame=0, stop_frame=frames, fps=float(fps),
                    span=(0.0, frames / float(fps)), buffer=keyed, decoded_frames=frames)  # fmt: skip
        tasks.append(Video(path=path, relative_path=f"{path.name}-{len(tasks)}", clips=[clip]))
    reports = LocalExecutor().run(stages, tasks, Progress())
    assert all(r.status == "ok" for r in reports), [r.errors for r in reports]


def clips_of(path: Path, clip_s: float) -> list[tuple[int, int]]:
    meta = probe_video(path)
    return fixed_stride_spans(meta.num_frames, meta.fps, clip_s, clip_s, 2.0)


def method_run(paths: list[Path], window: int, tmp: Path) -> None:
    for path in paths:
        meta = probe_video(path)
        for start, stop in clips_of(path, 10.0):
            buffer, _ = transcode_clip(path, start, stop, meta.fps_fraction)
            clip = tmp / "clip.mp4"
            clip.write_bytes(buffer)
            method_windows(clip, compute_windows(stop - start, window, window // 2), meta.fps, tmp)


def vidcap_run(src: Path, out: Path, window: int, transcode_cpus: float) -> None:
    """What `vidcap run --generate-previews` builds, with the model frames a captioning run samples too."""
    from vidcap import Pipeline
    from vidcap.stages import (
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        ClipWriterStage,
        PreviewStage,
        VideoReaderStage,
    )

    result = Pipeline([
        VideoReaderStage(src),
        ClipSplittingStage(),
        ClipTranscodingStage(num_cpus_per_worker=transcode_cpus),
        CaptionPreparationStage(window_size=window, remainder_threshold=window // 2),
        PreviewStage(),
        ModelFrames.make(),
        ClipWriterStage(out),
    ]).run()  # fmt: skip
    assert all(r.status == "ok" for r in result.reports)


def median_pair(runs: int, first: object, second: object) -> tuple[float, float]:
    times: list[list[float]] = [[], []]
    for k in range(runs):
        order = [(0, first), (1, second)] if k % 2 == 0 else [(1, second), (0, first)]
        for slot, fn in order:
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times[slot].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each generated video")
    parser.add_argument("--window-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--transcode-cpus", type=float, default=None, help="vidcap's threads per clip encode")
    args = parser.parse_args()
    from vidcap.config import default

    transcode_cpus = args.transcode_cpus or default("transcode_cpus_per_worker")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vidcap").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        tmp = Path(root)
        src = tmp / "src"
        src.mkdir()
        paths = make_inputs(src, args.seconds)
        # Clips as a run makes them, for the windows figure.
        clips = []
        for path in paths:
            meta = probe_video(path)
            for start, stop in clips_of(path, 10.0):
                plain, _ = transcode_clip(path, start, stop, meta.fps_fraction)
                (tmp / f"c{len(clips)}.mp4").write_bytes(plain)
                clips.append((tmp / f"c{len(clips)}.mp4", plain, stop - start, Fraction(meta.fps_fraction)))
        windows = sum(len(compute_windows(n, args.window_size, args.window_size // 2)) for _, _, n, _ in clips)
        logger.info("%d videos (%s), %.0f s each: %d clips, %d windows of up to %d frames", len(paths),
                    ", ".join(f"{s}@{f}" for s, f, _ in INPUTS), args.seconds, len(clips), windows,
                    args.window_size)  # fmt: skip

        def method_w() -> None:
            for clip, _, frames, fps in clips:
                spans = compute_windows(frames, args.window_size, args.window_size // 2)
                method_windows(clip, spans, float(fps), tmp)

        def ours_w() -> None:
            vidcap_windows(clips, args.window_size)

        base, ours = median_pair(args.repeat, method_w, ours_w)
        logger.info("windows + previews:     per-window ffmpeg %7.2f s   vidcap %7.2f s   x%.2f", base, ours,
                    base / ours)  # fmt: skip

        def method_all() -> None:
            method_run(paths, args.window_size, tmp)

        def ours_all() -> None:
            out = tmp / "out"
            shutil.rmtree(out, ignore_errors=True)
            vidcap_run(src, out, args.window_size, transcode_cpus)

        base, ours = median_pair(args.repeat, method_all, ours_all)
        logger.info("whole CPU pipeline:     per-window ffmpeg %7.2f s   vidcap %7.2f s   x%.2f  (clip encodes with "
                    "%g threads each)", base, ours, base / ours, transcode_cpus)  # fmt: skip


if __name__ == "__main__":
    main()
