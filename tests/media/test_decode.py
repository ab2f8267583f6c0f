from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import count_decoded_frames, level_to_index_mod, make_index_video

from vidcap.media import decode
from vidcap.media.decode import Need, WindowPlan, count_frames, decode_windows
from vidcap.media.encode import transcode_clip
from vidcap.windowing import compute_windows, sample_frame_indices


@pytest.fixture(scope="module")
def index_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_index_video(tmp_path_factory.mktemp("idx") / "idx.mp4", frames=130, fps=30).read_bytes()


def _plans(total: int, size: int, threshold: int) -> list[WindowPlan]:
    return [
        WindowPlan(s, e, {"model": sample_frame_indices(s, e, 30, 2.0)})
        for s, e in compute_windows(total, size, threshold)
    ]


MODEL = {"model": Need()}


def _picked(plan: WindowPlan, name: str = "model") -> list[int]:
    return plan.picks[name]


def test_count_frames(index_clip: bytes) -> None:
    assert count_frames(index_clip) == 130


def test_sampled_frames_are_the_right_frames(index_clip: bytes) -> None:
    plans = _plans(130, 40, 20)  # windows 0-39, 40-79, 80-129 (10-frame remainder merged)
    assert [(p.start, p.end) for p in plans] == [(0, 39), (40, 79), (80, 129)]
    results, decoded = decode_windows(index_clip, plans, MODEL, fps=Fraction(30), keep_mp4=False)
    assert decoded == 130
    for plan, res in zip(plans, results, strict=True):
        assert res.error is None and res.mp4_bytes is None
        frames = res.frames["model"]
        assert frames.frames.shape == (len(_picked(plan)), 48, 64, 3) and frames.indices == _picked(plan)
        got = [level_to_index_mod(float(f.mean())) for f in frames.frames]
        assert got == [i % 50 for i in _picked(plan)]


def test_window_mp4_has_window_frames(index_clip: bytes) -> None:
    plans = _plans(130, 40, 20)
    results, _ = decode_windows(index_clip, plans, MODEL, fps=Fraction(30), keep_mp4=True)
    for plan, res in zip(plans, results, strict=True):
        assert res.mp4_bytes is not None
        assert count_decoded_frames(res.mp4_bytes) == plan.end - plan.start + 1
        # The window mp4 starts at the window's first frame.
        with av.open(io.BytesIO(res.mp4_bytes)) as c:
            first = next(c.decode(video=0)).to_ndarray(format="rgb24")
        assert level_to_index_mod(float(first.mean())) == plan.start % 50


def test_one_forward_pass_for_all_windows(index_clip: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every window is served from a single open + demux of the clip, no seeking, each frame decoded once."""
    opened: list[Spy] = []
    real_open = av.open

    class Spy:
        def __init__(self, container: av.container.InputContainer) -> None:
            self._c = container
            self.demuxes = 0
            self.packets = 0

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self._c.close()

        @property
        def streams(self) -> object:
            return self._c.streams

        def seek(self, *a: object, **k: object) -> None:
            raise AssertionError("decode_windows must not seek")

        def decode(self, *a: object, **k: object) -> None:
            raise AssertionError("frames come from the one demux pass")

        def demux(self, *a: object, **k: object):  # type: ignore[no-untyped-def]
            self.demuxes += 1
            for packet in self._c.demux(*a, **k):
                self.packets += 1
                yield packet

    def spy_open(src: object, mode: str = "r", **kw: object) -> object:
        c = real_open(src, mode, **kw)
        if mode != "r":
            return c
        spy = Spy(c)
        opened.append(spy)
        return spy

    monkeypatch.setattr(decode.av, "open", spy_open)
    plans = _plans(130, 16, 8)
    assert len(plans) == 8
    results, decoded = decode_windows(index_clip, plans, MODEL, fps=Fraction(30), keep_mp4=True)
    # A demux that only notes where frames and keyframes are, then one that decodes as it goes: packets are
    # never all held at once.
    assert [spy.demuxes for spy in opened] == [1, 1]
    assert decoded == 130  # every frame decoded exactly once for all 8 windows
    assert all(r.error is None and r.mp4_bytes for r in results)


@pytest.fixture(scope="module")
def keyed_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The index video transcoded the way the pipeline does, with keyframes every 40 frames."""
    src = make_index_video(tmp_path_factory.mktemp("keyed") / "idx.mp4", frames=130, fps=30)
    return transcode_clip(src, 0, 130, "30/1", threads=1, with_audio=False, keyframe_interval=40)[0]


def test_keyframe_aligned_windows_are_copied(keyed_clip: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []
    monkeypatch.setattr(decode.Mp4Writer, "add", lambda self, frame: encoded.append(1))
    plans = _plans(130, 40, 20)  # windows start at 0, 40, 80: all keyframes
    results, decoded = decode_windows(keyed_clip, plans, MODEL, fps=Fraction(30), keep_mp4=True)
    assert encoded == []  # no window was re-encoded
    assert 12 < decoded < 130  # frames were still decoded for the model: those sampled and those they need
    for plan, res in zip(plans, results, strict=True):
        assert res.error is None and res.mp4_bytes
        assert len(res.frames["model"].frames) == len(_picked(plan))
        assert count_decoded_frames(res.mp4_bytes) == plan.end - plan.start + 1
        with av.open(io.BytesIO(res.mp4_bytes)) as c:
            levels = [level_to_index_mod(float(f.to_ndarray(format="rgb24").mean())) for f in c.decode(video=0)]
        assert levels == [i % 50 for i in range(plan.start, plan.end + 1)]


def test_previews_only_needs_no_decode(keyed_clip: bytes) -> None:
    plans = [WindowPlan(s, e) for s, e in compute_windows(130, 40, 20)]
    results, decoded = decode_windows(keyed_clip, plans, {}, fps=Fraction(30), keep_mp4=True)
    assert decoded == 0
    assert [count_decoded_frames(r.mp4_bytes or b"") for r in results] == [40, 40, 50]


def test_unaligned_windows_fall_back_to_encoding(keyed_clip: bytes) -> None:
    plans = [WindowPlan(s, e) for s, e in compute_windows(130, 30, 15)]  # 30, 60, 90 are not keyframes
    results, decoded = decode_windows(keyed_clip, plans, {}, fps=Fraction(30), keep_mp4=True)
    assert decoded == 130
    assert [count_decoded_frames(r.mp4_bytes or b"") for r in results] == [30, 30, 30, 40]
    for plan, res in zip(plans, results, strict=True):
        with av.open(io.BytesIO(res.mp4_bytes or b"")) as c:
            levels = [level_to_index_mod(float(f.to_ndarray(format="rgb24").mean())) for f in c.decode(video=0)]
        assert levels == [i % 50 for i in range(plan.start, plan.end + 1)]


def test_resized_frames(index_clip: bytes) -> None:
    plans = _plans(130, 256, 128)
    needs = {"model": Need(size=lambda w, h: (32, 24))}
    results, _ = decode_windows(index_clip, plans, needs, fps=Fraction(30), keep_mp4=False)
    assert results[0].frames["model"].frames.shape[1:] == (24, 32, 3)


def test_clip_shorter_than_planned_marks_missing_windows(index_clip: bytes) -> None:
    plans = [WindowPlan(0, 99, {"model": [0, 50, 98, 99]}), WindowPlan(100, 199, {"model": [100, 150, 198, 199]})]
    results, decoded = decode_windows(index_clip, plans, MODEL, fps=Fraction(30), keep_mp4=False)
    assert decoded == 130
    assert results[0].error is None and isinstance(results[0].frames["model"].frames, np.ndarray)
    assert results[1].error is not None and "got 30 of 100" in results[1].error


def test_frames_nobody_needs_are_not_decoded(tmp_path: Path) -> None:
    """In an x264 clip about half the frames are B-frames no other frame refers to: those that are neither
    sampled nor previewed are left out of the decoder; every frame that is wanted is still exactly right."""
    from vidcap.media.decode import disposable
    from vidcap.windowing import preview_frame_indices

    src = make_index_video(tmp_path / "idx.mp4", frames=300, fps=30)
    clip, _ = transcode_clip(src, 0, 300, "30/1", keyframe_interval=100)  # x264's default preset: B-frames
    with av.open(io.BytesIO(clip)) as c:
        skippable = sum(disposable(p) for p in c.demux(video=0) if p.size)
    assert skippable > 100
    plans = [
        WindowPlan(
            s, e, {"model": sample_frame_indices(s, e, 30, 2.0), "preview": preview_frame_indices(s, e, 30, 1.0)}
        )
        for s, e in compute_windows(300, 100, 50)
    ]
    needs = {"model": Need(), "preview": Need(size=lambda w, h: (64, 48))}
    results, decoded = decode_windows(clip, plans, needs, fps=Fraction(30), keep_mp4=True)
    assert decoded < 300 - 100  # most non-reference frames were never decoded
    for plan, res in zip(plans, results, strict=True):
        assert res.error is None and res.mp4_bytes is not None  # packet copies: no frame needed for them
        model, preview = res.frames["model"].frames, res.frames["preview"].frames
        assert [level_to_index_mod(float(f.mean())) for f in model] == [i % 50 for i in _picked(plan)]
        assert [level_to_index_mod(float(f.mean())) for f in preview] == [i % 50 for i in _picked(plan, "preview")]
