"""vidcap against NeMo Curator 1.4.0, one stage at a time, on the same clips: caption preparation (windows and the
frames a captioning model is given, plus what previews need) and previews. Runs in .venv-curator
(scripts/install_curator.sh), which holds both.

Both sides get the same clip mp4s (transcoded once by vidcap) with the same settings; each side's stage runs
on every clip, alternating which side goes first, and the medians of --repeat are compared:
- preparation: Curator's CaptionPreparationStage (generate_previews=True: it cuts each window's mp4 for its
  previews; its Qwen processor is a local tiny model's, the same tokenizer work at any model size) against
  vidcap's CaptionPreparationStage serving the captioning stage's and the preview stage's frames;
- previews: Curator's PreviewStage (ffmpeg decodes each window mp4 again) against vidcap's PreviewStage (from the
  frames preparation picked), and both against ffmpeg's libwebp encode of vidcap's preview frames with nothing
  around it: the floor both sides pay.

    .venv-curator/bin/python bench/bench_curator.py [--repeat 3] [--window-size 64]
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench")

# Seven videos of 480p-1080p at 24-60 fps; with 4 s clips and 64-frame windows: 13 windows.
INPUTS = [
    ("854x480", 25, 4, "testsrc2"),
    ("1280x720", 30, 4, "mandelbrot"),
    ("1920x1080", 24, 4, "testsrc2"),
    ("1280x720", 60, 2, "smptehdbars"),
    ("960x540", 50, 2, "testsrc2"),
    ("640x360", 30, 4, "mandelbrot"),
    ("1920x1080", 30, 2, "testsrc2"),
]
PREVIEW = {"target_fps": 1.0, "target_height": 240}


def make_inputs(folder: Path) -> list[Path]:
    paths = []
    for i, (size, fps, seconds, pattern) in enumerate(INPUTS):
        path = folder / f"v{i}_{size}_{fps}.mp4"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"{pattern}=size={size}:rate={fps}", "-t", str(seconds), "-vf", "noise=alls=3:allf=t,format=yuv420p",
             "-c:v", "libx264", "-preset", "veryfast", str(path)],
            check=True,
        )  # fmt: skip
        paths.append(path)
    return paths


def vidcap_clips(paths: list[Path], window: int) -> tuple[list[Any], list[Any]]:
    """vidcap's videos after split and transcode (the shared input), and its preparation and preview stages."""
    from vidcap.data import Video
    from vidcap.pipeline import bind
    from vidcap.stages import (
        CaptionGenerationStage,
        CaptionPreparationStage,
        ClipSplittingStage,
        ClipTranscodingStage,
        PreviewStage,
        VideoReaderStage,
    )

    prep = CaptionPreparationStage(window_size=window, remainder_threshold=window // 2)
    preview = PreviewStage(**PREVIEW)  # type: ignore[arg-type]
    captions = CaptionGenerationStage(model_variant="qwen2.5")  # declares its frames; no model is loaded
    videos = []
    for path in paths:
        head = [VideoReaderStage(path), ClipSplittingStage(clip_len_s=4, clip_stride_s=4, min_clip_length_s=1),
                ClipTranscodingStage(preset="veryfast")]  # fmt: skip
        bind([*head, prep, preview, captions])
        video = Video(path=path, relative_path=path.name)
        for stage in head:
            video = stage.process(video)
        videos.append(video)
    return videos, [prep, preview]


def curator_videos(videos: list[Any]) -> list[Any]:
    from nemo_curator.tasks.video import Clip, Video, VideoTask

    tasks = []
    for mine in videos:
        video = Video(input_video=mine.path, source_bytes=mine.path.read_bytes())
        video.populate_metadata()
        video.clips = [Clip(uuid=uuid.UUID(c.uuid), source_video=str(mine.path), span=c.span, buffer=c.buffer)
                       for c in mine.clips]  # fmt: skip
        tasks.append(VideoTask(dataset_name="bench", data=video))
    return tasks


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bare_webp(videos: list[Any]) -> float:
    """ffmpeg's libwebp on the very frames vidcap's previews are made of, at the same settings, with nothing
    around it (no stage, no checks): the encode both sides pay (Curator's PreviewStage ends in the same encoder)."""
    from vidcap.media.encode import encode_webp_frames

    start = time.perf_counter()
    for video in videos:
        for clip in video.clips:
            for w in clip.windows:
                picked = w.frames["preview"]
                encode_webp_frames(picked.frames, fps=PREVIEW["target_fps"], repeats=picked.repeats,
                                   compression_level=6, quality=50)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window-size", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bench").setLevel(logging.INFO)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from nemo_curator.models import prompt_formatter
    from nemo_curator.stages.video.caption.caption_preparation import CaptionPreparationStage as CuratorPrep
    from nemo_curator.stages.video.preview.preview import PreviewStage as CuratorPreview
    from tiny_models import build_qwen25_vl

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_inputs(root)
        prompt_formatter.VARIANT_MAPPING["qwen2.5"] = str(build_qwen25_vl(root / "qwen25vl"))
        videos, (prep, preview) = vidcap_clips(paths, args.window_size)
        theirs_prep = CuratorPrep(model_variant="qwen2.5", window_size=args.window_size,
                                  remainder_threshold=args.window_size // 2, generate_previews=True)  # fmt: skip
        theirs_preview = CuratorPreview(**PREVIEW)  # type: ignore[arg-type]
        for stage in (prep, preview, theirs_prep, theirs_preview):
            stage.setup()
        times: dict[str, list[float]] = {k: [] for k in ("prep_v", "prep_c", "prev_v", "prev_c", "bare")}
        windows = 0
        for r in range(args.repeat):
            mine, tasks = copy.deepcopy(videos), curator_videos(videos)
            order = ["v", "c"] if r % 2 == 0 else ["c", "v"]
            for side in order:
                if side == "v":
                    t, mine = timed(lambda m=mine: [prep.process(v) for v in m])
                    times["prep_v"].append(t)
                    t, mine = timed(lambda m=mine: [preview.process(v) for v in m])
                    times["prev_v"].append(t)
                else:
                    t, tasks = timed(lambda ts=tasks: [theirs_prep.process(x) for x in ts])
                    times["prep_c"].append(t)
                    t, tasks = timed(lambda ts=tasks: [theirs_preview.process(x) for x in ts])
                    times["prev_c"].append(t)
            times["bare"].append(bare_webp(mine))
            windows = sum(len(c.windows) for v in mine for c in v.clips)
            assert windows == sum(len(c.windows) for x in tasks for c in x.data.clips)
        med = {k: statistics.median(v) for k, v in times.items()}
        logger.info("%d videos, %d windows, window %d frames, median of %d runs", len(paths), windows,
                    args.window_size, args.repeat)  # fmt: skip
        logger.info("preparation: NeMo Curator %.2f s, vidcap %.2f s: x%.2f", med["prep_c"], med["prep_v"],
                    med["prep_c"] / med["prep_v"])  # fmt: skip
        logger.info("previews:    NeMo Curator %.2f s, vidcap %.2f s: x%.2f", med["prev_c"], med["prev_v"],
                    med["prev_c"] / med["prev_v"])  # fmt: skip
        bare = med["bare"]
        logger.info("previews against libwebp's bare encode of the same frames (%.2f s): vidcap x%.2f, "
                    "NeMo Curator x%.2f", bare, med["prev_v"] / bare, med["prev_c"] / bare)  # fmt: skip


if __name__ == "__main__":
    main()
