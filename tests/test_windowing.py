from __future__ import annotations

import itertools

import pytest

from vidcap.windowing import (
    clip_uuid,
    compute_windows,
    filter_spans,
    fixed_stride_spans,
    num_sampled_frames,
    sample_frame_indices,
    whole_video_span,
)


def test_fixed_stride_exact_multiple() -> None:
    assert fixed_stride_spans(900, 30, 10, 10, 2) == [(0, 300), (300, 600), (600, 900)]


def test_fixed_stride_short_tail_dropped_long_tail_kept() -> None:
    # 65 s at 30 fps: six 10 s clips and a 5 s tail (>= 2 s) kept.
    spans = fixed_stride_spans(65 * 30, 30, 10, 10, 2)
    assert len(spans) == 7 and spans[-1] == (1800, 1950)
    # 61 s: the 1 s tail is under the 2 s minimum.
    assert fixed_stride_spans(61 * 30, 30, 10, 10, 2)[-1] == (1500, 1800)


def test_fixed_stride_overlap_and_gaps() -> None:
    assert fixed_stride_spans(300, 10, 10, 5, 2) == [
        (0, 100),
        (50, 150),
        (100, 200),
        (150, 250),
        (200, 300),
        (250, 300),
    ]
    assert fixed_stride_spans(300, 10, 5, 10, 2) == [(0, 50), (100, 150), (200, 250)]


def test_fixed_stride_video_shorter_than_min() -> None:
    assert fixed_stride_spans(30, 30, 10, 10, 2) == []
    assert fixed_stride_spans(30, 30, 10, 10, 0.5) == [(0, 30)]


def test_fixed_stride_fractional_rate_has_no_gaps() -> None:
    fps = 30000 / 1001
    spans = fixed_stride_spans(1800, fps, 10, 10, 2)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    # 60.06 s: six clips; the last 2 frames (0.07 s) are under the minimum.
    assert len(spans) == 6 and spans[0] == (0, 300) and spans[-1][1] == 1798


def test_whole_and_filter() -> None:
    assert whole_video_span(0) == []
    assert whole_video_span(42) == [(0, 42)]
    assert filter_spans([(0, 10), (10, 100)], 30, 1.0) == [(10, 100)]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (3, []),
        (4, [(0, 3)]),
        (256, [(0, 255)]),
        (257, [(0, 256)]),  # 1-frame remainder merged
        (256 + 127, [(0, 382)]),  # just under the threshold: merged
        (256 + 128, [(0, 255), (256, 383)]),  # at the threshold: own window
        (512, [(0, 255), (256, 511)]),
        (512 + 130, [(0, 255), (256, 511), (512, 641)]),
    ],
)
def test_windows_rule(frames: int, expected: list[tuple[int, int]]) -> None:
    assert compute_windows(frames, 256, 128) == expected


def test_windows_cover_every_frame_once() -> None:
    for frames in range(4, 900, 7):
        windows = compute_windows(frames, 64, 20)
        covered = [i for s, e in windows for i in range(s, e + 1)]
        assert covered == list(range(frames))
        assert all(e - s + 1 >= 4 for s, e in windows)


def test_windows_tiny_remainder_with_zero_threshold_is_merged() -> None:
    # A remainder under 4 frames can never stand alone.
    assert compute_windows(10, 8, 0) == [(0, 9)]


def test_window_size_below_four_rejected() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        compute_windows(100, 3, 1)


@pytest.mark.parametrize(
    ("frames", "fps", "sfps", "n"),
    [
        (256, 30, 2.0, 18),  # 8.53 s -> 17.07 -> nearest even 18
        (300, 30, 2.0, 20),
        (240, 24, 2.0, 20),
        (4, 30, 2.0, 4),  # at least 4
        (5, 30, 2.0, 4),  # even and no more than the window
        (7, 1, 2.0, 6),  # wants 14, capped at 6 (even, <= 7 frames)
        (600, 60, 1.0, 10),
    ],
)
def test_sampled_counts(frames: int, fps: float, sfps: float, n: int) -> None:
    assert num_sampled_frames(frames, fps, sfps) == n


def test_sampled_indices_span_window() -> None:
    idx = sample_frame_indices(256, 511, 30, 2.0)
    assert idx[0] == 256 and idx[-1] == 511
    assert len(idx) == len(set(idx)) == 18
    assert idx == sorted(idx)
    gaps = [b - a for a, b in itertools.pairwise(idx)]
    assert max(gaps) - min(gaps) <= 1


def test_sampled_indices_all_frames_when_window_small() -> None:
    assert sample_frame_indices(10, 13, 30, 2.0) == [10, 11, 12, 13]


def test_clip_uuid_deterministic() -> None:
    a = clip_uuid("/data/v.mp4", 0, 300)
    assert a == clip_uuid("/data/v.mp4", 0, 300)
    assert a != clip_uuid("/data/v.mp4", 300, 600)
    assert a != clip_uuid("/data/w.mp4", 0, 300)
