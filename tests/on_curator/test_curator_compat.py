"""vidcap against NeMo Curator 1.4.0 on the same clips: Curator's CaptionPreparationStage, PreviewStage and
ClipWriterStage run on the clips a vidcap run wrote, and both sides must agree on the windows, the sampled frame
counts, the previews' frame counts and sizes, and the fields of the metas and markers both write (apart from the
differences the README lists, asserted here as such)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import make_video
from PIL import Image

pytestmark = [pytest.mark.curator, pytest.mark.slow]

WINDOW, REMAINDER, SAMPLING_FPS, PREVIEW_FPS, PREVIEW_HEIGHT = 64, 32, 2.0, 1.0, 240


@pytest.fixture(scope="module")
def vidcap_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    src = tmp_path_factory.mktemp("compat_in")
    make_video(src / "hd.mp4", seconds=9, width=1280, height=720, fps=30, audio=True)
    make_video(src / "sd.mov", seconds=5, width=640, height=360, fps=25)
    (src / "sub").mkdir()
    make_video(src / "sub" / "film.mkv", seconds=4, width=1920, height=1080, fps=24)
    out = tmp_path_factory.mktemp("compat_out") / "vidcap"
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "run", str(src), str(out), "--fixed-stride-split-duration", "4",
         "--transcode-preset", "ultrafast", "--generate-previews", "--captioning-window-size", str(WINDOW),
         "--captioning-remainder-threshold", str(REMAINDER), "--preview-target-fps", str(PREVIEW_FPS),
         "--preview-target-height", str(PREVIEW_HEIGHT)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return src, out


@pytest.fixture(scope="module")
def curator_out(vidcap_out: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Curator's stages on vidcap's clips: its windows, model inputs and previews in memory, its writer's files."""
    from nemo_curator.models import prompt_formatter
    from nemo_curator.stages.video.caption.caption_preparation import CaptionPreparationStage
    from nemo_curator.stages.video.io.clip_writer import ClipWriterStage
    from nemo_curator.stages.video.preview.preview import PreviewStage
    from nemo_curator.tasks.video import Clip, Video, VideoTask
    from tiny_models import build_qwen25_vl

    src, out = vidcap_out
    # Curator's PromptFormatter loads the Qwen processor from the Hub: point its table at a local tiny model.
    tiny = build_qwen25_vl(tmp_path_factory.mktemp("tiny") / "qwen25vl")
    prompt_formatter.VARIANT_MAPPING["qwen2.5"] = str(tiny)
    prep = CaptionPreparationStage(model_variant="qwen2.5", window_size=WINDOW, remainder_threshold=REMAINDER,
                                   sampling_fps=SAMPLING_FPS, generate_previews=True)  # fmt: skip
    preview = PreviewStage(target_fps=PREVIEW_FPS, target_height=PREVIEW_HEIGHT)
    cur = tmp_path_factory.mktemp("compat_out") / "curator"
    writer = ClipWriterStage(output_path=str(cur), input_path=str(src), upload_clips=True, dry_run=False,
                             generate_embeddings=False, generate_previews=True, generate_captions=False,
                             caption_models=[], enhanced_caption_models=[])  # fmt: skip
    for stage in (prep, preview, writer):
        stage.setup()
    metas = [json.loads(p.read_text()) for p in (out / "metas/v0").glob("*.json")]
    windows: dict[str, list[tuple[int, int, int, bytes | None]]] = {}
    for rel in ("hd.mp4", "sd.mov", "sub/film.mkv"):
        video = Video(input_video=src / rel, source_bytes=(src / rel).read_bytes())
        video.populate_metadata()
        mine = sorted((m for m in metas if m["relative_path"] == rel), key=lambda m: m["start_frame"])
        video.clips = [Clip(uuid=uuid.UUID(m["span_uuid"]), source_video=str(src / rel),
                            span=tuple(m["duration_span"]), buffer=(out / m["clip_path"]).read_bytes())
                       for m in mine]  # fmt: skip
        video.num_total_clips, video.num_clip_chunks, video.clip_chunk_index = len(mine), 1, 0
        task = VideoTask(dataset_name="compat", data=video)
        task = preview.process(prep.process(task))
        # What Curator made per window, kept before its writer frees the frames and previews.
        for clip in task.data.clips:
            assert not clip.errors, clip.errors
            windows[str(clip.uuid)] = [
                (w.start_frame, w.end_frame, w.llm_inputs["qwen2.5"]["multi_modal_data"]["video"][0].shape[0],
                 w.webp_bytes) for w in clip.windows
            ]  # fmt: skip
        writer.process(task)
    return {"windows": windows, "out": cur, "metas": {m["span_uuid"]: m for m in metas}}


def test_same_windows_and_sampled_frame_counts(curator_out: dict[str, Any]) -> None:
    assert curator_out["windows"].keys() == curator_out["metas"].keys()
    for clip, theirs in curator_out["windows"].items():
        mine = curator_out["metas"][clip]["windows"]
        assert [(s, e) for s, e, _, _ in theirs] == [(w["start_frame"], w["end_frame"]) for w in mine]
        assert [n for _, _, n, _ in theirs] == [len(w["sampled_frame_indices"]) for w in mine]
    assert sum(len(w) for w in curator_out["windows"].values()) >= 8


def test_previews_have_the_same_frame_count_and_size(
    curator_out: dict[str, Any], vidcap_out: tuple[Path, Path]
) -> None:
    import io

    _, out = vidcap_out
    for clip, theirs in curator_out["windows"].items():
        for (_, _, _, webp), mine in zip(theirs, curator_out["metas"][clip]["windows"], strict=True):
            assert webp, "Curator made no preview"
            with Image.open(io.BytesIO(webp)) as a, Image.open(out / mine["preview_location"]) as b:
                assert (a.n_frames, a.size) == (b.n_frames, b.size), mine["preview_location"]


def test_metas_and_markers_agree_where_both_write(curator_out: dict[str, Any], vidcap_out: tuple[Path, Path]) -> None:
    _, out = vidcap_out
    cur: Path = curator_out["out"]
    for uuid_, mine in curator_out["metas"].items():
        theirs = json.loads((cur / f"metas/v0/{uuid_}.json").read_text())
        # Where they differ on purpose (README, "Differences from NeMo Curator"): clip_location names each run's
        # own OUTPUT; vidcap's windows carry more fields (times, sampled frames, statuses) beside Curator's.
        assert theirs.pop("clip_location") == f"{cur}/clips/{uuid_}.mp4"
        assert mine["clip_location"] == f"{out}/clips/{uuid_}.mp4"
        windows = theirs.pop("windows")
        assert [{k: w[k] for k in windows[0]} for w in mine["windows"]] == windows
        for key, value in theirs.items():
            assert key in mine, f"Curator writes {key}, vidcap does not"
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-6), key
            else:
                assert mine[key] == value, key
    for folder in ("clips", "previews", "metas/v0"):  # the same layout, file for file
        assert sorted(p.relative_to(cur).as_posix() for p in (cur / folder).rglob("*") if p.is_file()) == sorted(
            p.relative_to(out).as_posix() for p in (out / folder).rglob("*") if p.is_file()
        )
    for rel in ("hd.mp4", "sd.mov", "sub/film.mkv"):
        theirs = json.loads((cur / f"processed_videos/{rel}.json").read_text())
        mine = json.loads((out / f"processed_videos/{rel}.json").read_text())
        theirs.pop("video"), mine.pop("video")  # each names the source as it was given
        for key, value in theirs.items():
            assert mine[key] == (pytest.approx(value) if isinstance(value, float) else value), (rel, key)
        chunk_t = json.loads((cur / f"processed_clip_chunks/{rel}_0.json").read_text())
        chunk_m = json.loads((out / f"processed_clip_chunks/{rel}_0.json").read_text())
        assert set(chunk_t) == set(chunk_m)
        for key in ("clip_chunk_index", "num_clips_filtered_by_motion", "num_clips_passed", "num_clips_transcoded",
                    "num_clips_with_caption", "clips", "filtered_clips"):  # fmt: skip
            assert chunk_m[key] == chunk_t[key], (rel, key)
