"""The motion filter on real decoded motion vectors: a still scene, a moving object and a pan score in that order,
and a threshold between them takes out the still clip (to filtered_clips/, with its scores and the reason)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import read_marker

from vidcap import Pipeline
from vidcap.media.motion import flow_field
from vidcap.stages import (
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ClipWriterStage,
    MotionFilterStage,
    PreviewStage,
    VideoReaderStage,
)

W, H, FRAMES = 384, 288, 150  # 6 s at 25 fps; both sides above the 256 pixels motion is measured on


def _texture(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth random texture (blurred noise): something for motion estimation to lock onto."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    big = np.kron(small, np.ones((8, 8, 1), np.float32))
    for _ in range(2):
        big = (big + np.roll(big, 3, 0) + np.roll(big, 3, 1) + np.roll(big, -3, 0) + np.roll(big, -3, 1)) / 5
    return big[:height, :width].astype(np.uint8)


def _write(path: Path, frames: list[np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.options = {"preset": "fast", "crf": "20"}
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("motion") / "in"
    background = _texture(1, H, W)
    _write(root / "still.mp4", [background] * FRAMES)
    wide = _texture(2, H, W + 3 * FRAMES)
    _write(root / "pan.mp4", [wide[:, 3 * i : 3 * i + W] for i in range(FRAMES)])  # 3 pixels a frame
    thing = _texture(3, 64, 64)
    moving = []
    for i in range(FRAMES):
        img = background.copy()
        x = 20 + 2 * i
        img[112:176, x : x + 64] = thing
        moving.append(img)
    _write(root / "object.mp4", moving)
    return root


def _run(src: Path, out: Path, **motion: object) -> dict[str, dict]:
    Pipeline([
        VideoReaderStage(src), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
        MotionFilterStage(**motion),  # type: ignore[arg-type]
        CaptionPreparationStage(), PreviewStage(), ClipWriterStage(out),
    ]).run()  # fmt: skip
    metas = [json.loads(p.read_text()) for p in (out / "metas/v0").glob("*.json")]
    return {Path(m["source_video"]).stem: m for m in metas}


def test_still_object_and_pan_score_in_that_order(scenes: Path, tmp_path: Path) -> None:
    metas = _run(scenes, tmp_path / "scores", score_only=True)
    score = {name: m["motion_score"] for name, m in metas.items()}
    assert score["still"]["global_mean"] < score["object"]["global_mean"] < score["pan"]["global_mean"]
    assert score["still"]["global_mean"] < 1e-5 < score["object"]["global_mean"]
    # Some 256-pixel patch of the object scene does not move; in the pan every one does.
    assert score["object"]["per_patch_min_256"] < score["pan"]["per_patch_min_256"]
    assert all(not m.get("filtered") and m["clip_path"].startswith("clips/") for m in metas.values())


def test_a_threshold_between_them_takes_out_the_still_clip(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "filtered"
    metas = _run(scenes, out, global_mean_threshold=1e-5, per_patch_min_256_threshold=0.0)
    still = metas["still"]
    assert still["filtered"]["motion_filter"].startswith("little motion: global mean")
    assert still["clip_path"].startswith("filtered_clips/") and (out / still["clip_path"]).is_file()
    assert still["windows"] == [] and not still["valid"]  # not windowed, not previewed
    assert all(not metas[n].get("filtered") and metas[n]["windows"] for n in ("object", "pan"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips_filtered"] == {"motion_filter": 1} and summary["previews"] == 2
    marker = read_marker(out / "processed_videos/still.mp4.json")
    assert marker["status"] == "ok" and marker["filtered_clips"] == [still["span_uuid"]]


def test_flow_field_puts_each_vector_on_its_block() -> None:
    dtype = np.dtype([("source", "int32"), ("w", "uint8"), ("h", "uint8"), ("src_x", "int16"), ("src_y", "int16"),
                      ("dst_x", "int16"), ("dst_y", "int16"), ("flags", "uint64"), ("motion_x", "int32"),
                      ("motion_y", "int32"), ("motion_scale", "uint16")])  # fmt: skip
    vectors = np.array([(-1, 16, 16, 0, 0, 8, 8, 0, -8, 4, 2)], dtype)
    flow = flow_field(vectors, 32, 32)
    assert (flow[0:16, 0:16] == [4.0, -2.0]).all() and not flow[16:, :].any() and not flow[:, 16:].any()
