"""The files NeMo Curator's own tools read, as vidcap writes them: processed_videos/ markers with Curator's fields,
processed_clip_chunks/ per chunk of clips, and metas with Curator's clip_location and caption keys."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import count_decoded_frames

pytestmark = [pytest.mark.models]

CURATOR_VIDEO_KEYS = {"video", "height", "width", "framerate", "num_frames", "duration", "video_codec",
                      "pixel_format", "audio_codec", "num_total_clips", "num_clip_chunks"}  # fmt: skip
CURATOR_CHUNK_KEYS = {"video", "clip_chunk_index", "num_clips_filtered_by_motion", "num_clips_filtered_by_aesthetic",
                      "num_clips_passed", "num_clips_transcoded", "num_clips_with_embeddings",
                      "num_clips_with_caption", "num_clips_with_webp", "total_clip_duration", "max_clip_duration",
                      "clips", "filtered_clips", "all_windows", "all_windows_enhanced_caption"}  # fmt: skip


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_qwen25: Path) -> tuple[Path, Path]:
    src = tmp_path_factory.mktemp("curator_in")
    # A pan (moves: kept) of 6 s and a still grey card (no motion: filtered) of 4 s.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x288:rate=25:duration=6", "-vf", "crop=384:288:x='t*100':y=0",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src / "pan.mp4"))  # fmt: skip
    (src / "cam").mkdir()
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=384x288:rate=25:duration=4", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(src / "cam" / "still.mp4"))  # fmt: skip
    out = tmp_path_factory.mktemp("curator_out") / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "run", str(src), str(out), "--fixed-stride-split-duration", "2",
         "--transcode-preset", "ultrafast", "--motion-filter", "enable", "--clip-re-chunk-size", "2",
         "--generate-previews", "--generate-captions", "--captioning-algorithm", "qwen",
         "--captioning-model", str(tiny_qwen25), "--captioning-max-output-tokens", "4",
         "--captioning-window-size", "24", "--captioning-remainder-threshold", "12"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return src, out


def test_processed_videos_has_curators_fields_and_vidcaps_own(run: tuple[Path, Path]) -> None:
    src, out = run
    pan = json.loads((out / "processed_videos/pan.mp4.json").read_text())
    assert set(pan) - {"audio_format", "vidcap"} == CURATOR_VIDEO_KEYS
    assert pan["video"] == str(src / "pan.mp4")
    assert (pan["width"], pan["height"], pan["framerate"], pan["num_frames"]) == (384, 288, 25.0, 150)
    assert pan["duration"] == pytest.approx(6.0, abs=0.05)
    assert (pan["video_codec"], pan["pixel_format"], pan["audio_codec"]) == ("h264", "yuv420p", None)
    assert pan["num_total_clips"] == 3 and pan["num_clip_chunks"] == math.ceil(3 / 2)
    assert pan["vidcap"]["status"] == "ok" and len(pan["vidcap"]["clips"]) == 3
    still = json.loads((out / "processed_videos/cam/still.mp4.json").read_text())
    assert still["num_total_clips"] == 2 and still["num_clip_chunks"] == 1


def test_processed_clip_chunks_as_curator_writes_them(run: tuple[Path, Path]) -> None:
    src, out = run
    chunks = [json.loads((out / f"processed_clip_chunks/pan.mp4_{i}.json").read_text()) for i in range(2)]
    assert not (out / "processed_clip_chunks/pan.mp4_2.json").exists()
    passed = []
    for i, chunk in enumerate(chunks):
        assert set(chunk) == CURATOR_CHUNK_KEYS
        assert chunk["clip_chunk_index"] == i and chunk["video"] == str(src / "pan.mp4")
        assert chunk["num_clips_filtered_by_motion"] == 0 and chunk["num_clips_with_embeddings"] == 0
        assert chunk["num_clips_passed"] == chunk["num_clips_transcoded"] == len(chunk["clips"])
        assert chunk["num_clips_with_webp"] == chunk["num_clips_with_caption"] == len(chunk["clips"])
        assert set(chunk["all_windows"]) == set(chunk["clips"])
        for uuid, windows in chunk["all_windows"].items():
            meta = json.loads((out / f"metas/v0/{uuid}.json").read_text())
            # {"start_end": caption} for every window of the clip, the caption its meta holds.
            assert windows == {f"{w['start_frame']}_{w['end_frame']}": w["qwen_caption"] for w in meta["windows"]}
        passed += chunk["clips"]
    assert [len(c["clips"]) for c in chunks] == [2, 1]
    assert sorted(passed) == sorted(json.loads((out / "processed_videos/pan.mp4.json").read_text())["vidcap"]["clips"])
    assert sum(c["total_clip_duration"] for c in chunks) == pytest.approx(6.0, abs=0.05)
    still = json.loads((out / "processed_clip_chunks/cam/still.mp4_0.json").read_text())
    assert still["num_clips_filtered_by_motion"] == 2 and len(still["filtered_clips"]) == 2
    assert still["num_clips_passed"] == 0 and still["clips"] == [] and still["all_windows"] == {}


def test_metas_name_clips_as_curator_does(run: tuple[Path, Path]) -> None:
    _, out = run
    metas = [json.loads(p.read_text()) for p in sorted((out / "metas/v0").glob("*.json"))]
    assert len(metas) == 5
    for meta in metas:
        folder = "filtered_clips" if meta.get("filtered") else "clips"
        assert meta["clip_location"] == f"{out}/{folder}/{meta['span_uuid']}.mp4"
        assert (out / meta["clip_path"]) == Path(meta["clip_location"])
        # The clip file's own facts, as Curator's extract_metadata records them.
        assert count_decoded_frames(out / meta["clip_path"]) == meta["num_frames"] == 50
        assert (meta["width"], meta["height"], meta["framerate"]) == (384, 288, 25.0)
        assert meta["num_bytes"] == (out / meta["clip_path"]).stat().st_size
        assert meta["motion_score"].keys() == {"global_mean", "per_patch_min_256"}
        if meta.get("filtered"):
            assert meta["valid"] is False and meta["windows"] == []
            assert meta["filtered"]["motion_filter"].startswith("little motion")
        else:
            assert meta["valid"] is True and meta["windows"]
            # The caption under older Curator's key (its algorithm, qwen) and Curator 1.4's (its variant).
            for w in meta["windows"]:
                assert isinstance(w["qwen_caption"], str) and w["qwen2.5_caption"] == w["qwen_caption"]
                assert sorted(k for k in w if k.endswith("_caption")) == ["qwen2.5_caption", "qwen_caption"]


def test_gallery_filters_on_degenerate_captions_and_filtered_clips(run: tuple[Path, Path]) -> None:
    import pyarrow.parquet as pq

    _, out = run
    proc = subprocess.run([sys.executable, "-m", "vidcap.cli", "gallery", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    degenerate = sum(1 for r in rows if r["caption_degenerate"])
    assert page.count('data-degenerate="1"') == degenerate
    if degenerate:
        assert f'<option value="degenerate">degenerate ({degenerate})</option>' in page
    assert '<option value="filtered">filtered (2)</option>' in page
    assert page.count('data-status="filtered"') == 2 and page.count("little motion") == 2


def test_summary_names_the_backend_that_ran(run: tuple[Path, Path]) -> None:
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engines"]["caption_generation"]["backend"] == "transformers"  # auto, resolved on a CPU
    assert summary["settings"]["caption_generation"]["backend"] == "auto"
