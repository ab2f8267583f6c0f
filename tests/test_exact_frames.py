"""Frame-exact outputs: sources carry their frame number in their pixels, and every decoded frame of every
clip, preview and model input is read back and compared with the frames its record names."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from helpers import frame_numbers, make_numbered_video, read_marker, read_number, webp_numbers

from vidcap import Pipeline
from vidcap.executors.local import LocalExecutor
from vidcap.media.probe import probe_source
from vidcap.stages import (
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ClipWriterStage,
    PreviewStage,
    VideoReaderStage,
)
from vidcap.windowing import preview_frame_indices

PREVIEW_FPS = 3.0


def run(source: Path, out: Path, **split: object) -> None:
    Pipeline(
        [
            VideoReaderStage(source),
            ClipSplittingStage(**split),  # type: ignore[arg-type]
            ClipTranscodingStage(num_cpus_per_worker=1, preset="ultrafast"),
            CaptionPreparationStage(window_size=64, remainder_threshold=32),
            PreviewStage(target_fps=PREVIEW_FPS, target_height=96, num_cpus_per_worker=1),
            ClipWriterStage(out),
        ]
    ).run(LocalExecutor(cpus=2))


def check_output(out: Path, total: int) -> list[tuple[int, int]]:
    """Every clip holds exactly the source frames its record names, once each, and every preview the frames
    its window names; returns the clips' spans, in order."""
    spans = []
    for meta_path in sorted((out / "metas/v0").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        start, stop = meta["start_frame"], meta["stop_frame"]
        assert meta["errors"] == {}, meta["errors"]
        assert frame_numbers(out / meta["clip_path"]) == list(range(start, stop)), meta_path
        assert meta["num_frames"] == stop - start
        fps = meta["framerate_source"]
        for w in meta["windows"]:
            picks = preview_frame_indices(w["start_frame"], w["end_frame"], fps, PREVIEW_FPS)
            assert webp_numbers(out / w["preview_location"]) == [start + i for i in picks], w
        spans.append((start, stop))
    spans.sort()
    covered = [f for a, b in spans for f in range(a, b)]
    assert covered == sorted(set(covered)), "a frame is in two clips"
    assert covered == list(range(spans[0][0], spans[-1][1])) and spans[0][0] == 0, "a frame is in no clip"
    assert spans[-1][1] <= total
    return spans


RATES = [24, 25, 30, 50, 60, Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)]
CASES = [(r, ".mp4") for r in RATES] + [
    (r, ext) for ext in (".mkv", ".webm", ".ts", ".mov") for r in (25, Fraction(30000, 1001), 60)
]


@pytest.mark.parametrize(("fps", "ext"), CASES, ids=[f"{float(r):.3f}{e}" for r, e in CASES])
def test_fixed_stride_clips_hold_every_source_frame_once(tmp_path: Path, fps: Fraction | int, ext: str) -> None:
    # 23 s: clips 0-10 s, 10-20 s and a 3 s tail (kept: above the 2 s minimum).
    total = round(23 * float(fps))
    src = make_numbered_video(tmp_path / "in" / f"v{ext}", frames=total, fps=fps, audio=ext != ".mov")
    run(src.parent, tmp_path / "out")
    spans = check_output(tmp_path / "out", total)
    rate = float(fps)
    assert spans == [(0, round(10 * rate)), (round(10 * rate), round(20 * rate)), (round(20 * rate), total)]


def test_a_short_tail_is_the_only_frames_left_out(tmp_path: Path) -> None:
    total = 25 * 21  # 21 s: the last second is under the 2 s minimum and is documented as dropped
    make_numbered_video(tmp_path / "in" / "v.mp4", frames=total, fps=25)
    run(tmp_path / "in", tmp_path / "out")
    assert check_output(tmp_path / "out", total) == [(0, 250), (250, 500)]


def test_variable_rate_source(tmp_path: Path) -> None:
    # 30 fps and 15 fps stretches in turn: index / fps is off by up to seconds here.
    times, t = [], 0.0
    for i in range(600):
        times.append(t)
        t += 1 / 30 if (i // 45) % 2 == 0 else 1 / 15
    src = make_numbered_video(tmp_path / "in" / "vfr.mp4", frames=600, fps=25, times=times)
    meta, timeline = probe_source(src)
    assert timeline.variable_rate and meta.num_frames == 600
    run(tmp_path / "in", tmp_path / "out", clip_len_s=8.0, clip_stride_s=8.0)
    spans = check_output(tmp_path / "out", 600)
    assert spans[-1][1] == 600


def test_ts_joined_with_cat_keeps_both_halves(tmp_path: Path) -> None:
    """Two recordings joined with `cat`: the second one's clock starts again at zero."""
    first = make_numbered_video(tmp_path / "a.ts", frames=300, fps=25, audio=True)
    # Frames 300..599, encoded on their own: their timestamps start at 0 again.
    second = make_numbered_video(tmp_path / "b.ts", frames=300, fps=25, audio=True, first=300)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "joined.ts").write_bytes(first.read_bytes() + second.read_bytes())
    meta, timeline = probe_source(tmp_path / "in" / "joined.ts")
    assert timeline.resets and meta.num_frames == 600
    run(tmp_path / "in", tmp_path / "out")
    assert check_output(tmp_path / "out", 600) == [(0, 250), (250, 500), (500, 600)]
    marker = read_marker(tmp_path / "out/processed_videos/joined.ts.json")
    assert marker["status"] == "ok", marker["errors"]


def test_scene_split_cuts_at_the_shots(tmp_path: Path) -> None:
    shots = [70, 160, 300]
    make_numbered_video(tmp_path / "in" / "shots.mp4", frames=400, fps=25, shots=shots)
    run(tmp_path / "in", tmp_path / "out", algorithm="scene", min_clip_length_s=1.0)
    assert check_output(tmp_path / "out", 400) == [(0, 70), (70, 160), (160, 300), (300, 400)]


def test_whole_video_as_one_clip(tmp_path: Path) -> None:
    make_numbered_video(tmp_path / "in" / "v.mkv", frames=150, fps=Fraction(30000, 1001))
    run(tmp_path / "in", tmp_path / "out", algorithm="none")
    assert check_output(tmp_path / "out", 150) == [(0, 150)]


def test_model_frames_are_the_frames_their_window_names(tmp_path: Path) -> None:
    from vidcap.pipeline import bind
    from vidcap.stages import CaptionGenerationStage

    src = make_numbered_video(tmp_path / "in" / "v.mp4", frames=500, fps=25)
    video = VideoReaderStage(src).discover()[0]
    stages = [VideoReaderStage(src), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
              CaptionPreparationStage(window_size=96, remainder_threshold=48)]  # fmt: skip
    captioning = CaptionGenerationStage(backend="transformers")  # declares the frames it needs; not loaded
    bind([*stages, captioning])
    for stage in stages:
        video = stage.process(video)
    assert len(video.clips) == 2
    for clip in video.clips:
        assert len(clip.windows) == 3
        for w in clip.windows:
            frames = w.frames["caption"]
            assert frames.indices == w.frame_indices and len(frames.frames) == len(w.frame_indices) >= 4
            assert [read_number(f) for f in frames.frames] == [clip.start_frame + i for i in w.frame_indices]
            assert w.frame_indices[0] == w.start_frame and w.frame_indices[-1] == w.end_frame
            # and the model's input names them by their true place in the window
            inp = captioning.llm_input(clip, w)
            assert inp is not None and inp.frame_indices == [i - w.start_frame for i in w.frame_indices]


def test_ts_files_are_found_in_folders(tmp_path: Path) -> None:
    for name in ("a.ts", "b.m2ts", "c.MTS"):
        make_numbered_video(tmp_path / "in" / name, frames=60, fps=25)
    found = sorted(v.relative_path for v in VideoReaderStage(tmp_path / "in").discover())
    assert found == ["a.ts", "b.m2ts", "c.MTS"]


def test_a_download_cut_short_is_the_sources_fault(tmp_path: Path) -> None:
    """A file whose index promises 20 s and whose data stops at about half: the clips hold what is there,
    exactly, and the record says where the source ends; a rerun does not redo it."""
    full = make_numbered_video(tmp_path / "full.mp4", frames=500, fps=25)
    fast = tmp_path / "fast.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(full), "-c", "copy", "-movflags", "+faststart", str(fast)],
                   check=True)  # fmt: skip
    (tmp_path / "in").mkdir()
    data = fast.read_bytes()
    (tmp_path / "in" / "cut.mp4").write_bytes(data[: len(data) * 55 // 100])
    out = tmp_path / "out"
    run(tmp_path / "in", out)
    marker = read_marker(out / "processed_videos/cut.mp4.json")
    assert marker["retry"] is False and marker["status"] == "partial"
    assert any("source ends early at" in e["reason"] for e in marker["errors"]), marker["errors"]
    there = marker["metadata"]["num_frames"]
    assert 100 < there < 400
    for meta_path in (out / "metas/v0").glob("*.json"):
        meta = json.loads(meta_path.read_text())
        assert frame_numbers(out / meta["clip_path"]) == list(range(meta["start_frame"], meta["stop_frame"]))


def test_a_preview_faster_than_its_source_repeats_the_right_frames(tmp_path: Path) -> None:
    make_numbered_video(tmp_path / "in" / "slow.mp4", frames=24, fps=2)  # 12 s at 2 fps
    out = tmp_path / "out"
    Pipeline(
        [
            VideoReaderStage(tmp_path / "in"),
            ClipSplittingStage(clip_len_s=12.0, clip_stride_s=12.0),
            ClipTranscodingStage(preset="ultrafast"),
            CaptionPreparationStage(window_size=256),
            PreviewStage(target_fps=7.0, target_height=96),
            ClipWriterStage(out),
        ]
    ).run()
    (meta,) = [json.loads(p.read_text()) for p in (out / "metas/v0").glob("*.json")]
    (window,) = meta["windows"]
    shown = webp_numbers(out / window["preview_location"])
    assert shown == preview_frame_indices(0, 23, 2.0, 7.0) and len(shown) == 84
    assert sorted(set(shown)) == list(range(24)) and all(shown.count(i) in (3, 4) for i in range(24))


def test_previews_fit_libwebp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 3840x40 strip at 240 high would be 23040 px wide; libwebp takes 16383: the preview keeps the shape."""
    from PIL import Image

    make_numbered_video(tmp_path / "in" / "strip.mp4", frames=75, fps=25, width=3840, height=40)
    out = tmp_path / "out"
    Pipeline(
        [
            VideoReaderStage(tmp_path / "in"),
            ClipSplittingStage(),
            ClipTranscodingStage(preset="ultrafast"),
            CaptionPreparationStage(),
            PreviewStage(target_height=240),
            ClipWriterStage(out),
        ]
    ).run()
    marker = read_marker(out / "processed_videos/strip.mp4.json")
    assert marker["status"] == "ok", marker["errors"]
    (preview,) = (out / "previews").rglob("*.webp")
    with Image.open(preview) as im:
        assert im.size == (16383, 170)
    assert "libwebp takes at most 16383 px a side" in caplog.text
