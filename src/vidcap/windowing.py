"""Pure arithmetic of splitting: clip spans, caption windows, frame sampling, clip ids.

Kept free of I/O so each rule is tested directly.
"""

from __future__ import annotations

import math
import uuid

# Fixed namespace so clip ids are stable across machines and releases.
CLIP_NAMESPACE = uuid.UUID("5b0c3f0e-6f59-4c55-9a8e-7d1a0c2f4b11")

MIN_WINDOW_FRAMES = 4


def fixed_stride_spans(
    num_frames: int, fps: float, clip_len_s: float, clip_stride_s: float, min_clip_length_s: float
) -> list[tuple[int, int]]:
    """Clip frame ranges ``[start, stop)`` every ``clip_stride_s`` seconds.

    Boundaries are snapped to whole frames once, from seconds, so that a rerun
    and every later stage agree on the same frames.
    """
    if fps <= 0 or num_frames <= 0:
        return []
    spans = []
    k = 0
    while True:
        start = round(k * clip_stride_s * fps)
        if start >= num_frames:
            break
        stop = min(round((k * clip_stride_s + clip_len_s) * fps), num_frames)
        if (stop - start) / fps >= min_clip_length_s - 1e-9 and stop > start:
            spans.append((start, stop))
        k += 1
    return spans


def whole_video_span(num_frames: int) -> list[tuple[int, int]]:
    return [(0, num_frames)] if num_frames > 0 else []


def filter_spans(spans: list[tuple[int, int]], fps: float, min_clip_length_s: float) -> list[tuple[int, int]]:
    return [(a, b) for a, b in spans if b > a and (b - a) / fps >= min_clip_length_s - 1e-9]


def compute_windows(num_frames: int, window_size: int, remainder_threshold: int) -> list[tuple[int, int]]:
    """Windows ``(start, end)`` (end inclusive) over a clip of ``num_frames``.

    Fewer than 4 frames: none. Up to ``window_size``: one. Otherwise full windows;
    a remainder of at least ``remainder_threshold`` frames is its own window, a
    shorter one joins the last full window.
    """
    if window_size < MIN_WINDOW_FRAMES:
        raise ValueError(f"window_size must be at least {MIN_WINDOW_FRAMES}, got {window_size}")
    if num_frames < MIN_WINDOW_FRAMES:
        return []
    if num_frames <= window_size:
        return [(0, num_frames - 1)]
    full, remainder = divmod(num_frames, window_size)
    windows = [(i * window_size, (i + 1) * window_size - 1) for i in range(full)]
    if remainder:
        # A remainder too short to stand alone (or under 4 frames) extends the last window.
        if remainder >= remainder_threshold and remainder >= MIN_WINDOW_FRAMES:
            windows.append((full * window_size, num_frames - 1))
        else:
            windows[-1] = (windows[-1][0], num_frames - 1)
    return windows


def num_sampled_frames(window_frames: int, fps: float, sampling_fps: float) -> int:
    """Frames to show the model: ``sampling_fps`` per source second, even, >= 4, <= window."""
    wanted = window_frames / fps * sampling_fps if fps > 0 else MIN_WINDOW_FRAMES
    n = 2 * max(1, math.floor(wanted / 2 + 0.5))  # nearest even count, halves round up
    n = max(n, MIN_WINDOW_FRAMES)
    return min(n, window_frames - window_frames % 2)


def sample_frame_indices(start: int, end: int, fps: float, sampling_fps: float) -> list[int]:
    """Indices spread evenly from ``start`` to ``end`` (both included)."""
    frames = end - start + 1
    n = num_sampled_frames(frames, fps, sampling_fps)  # even and >= 4 for any window of 4+ frames
    # Evenly spaced, both ends included, always distinct because n <= frames.
    return [start + math.floor(i * (frames - 1) / (n - 1) + 0.5) for i in range(n)]


def preview_frame_indices(start: int, end: int, fps: float, target_fps: float) -> list[int]:
    """Frames a window's preview shows, as ffmpeg's fps filter picks them: frame i falls on output tick
    round(i * target / fps) (halves up); each tick shows the last frame that falls on or before it (so a
    slow source repeats frames); ticks run to round(frames * target / fps), at least one."""
    frames = end - start + 1
    count = max(1, math.floor(frames * target_fps / fps + 0.5))
    ticks = [math.floor(i * target_fps / fps + 0.5) for i in range(frames)]
    picks, i = [], 0
    for tick in range(count):
        while i + 1 < frames and ticks[i + 1] <= tick:
            i += 1
        picks.append(start + i)
    return picks


# libwebp's largest picture side.
WEBP_MAX_SIDE = 16383


def preview_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """(width, height) of a preview: ``target_height`` high, width in proportion, both within what libwebp
    takes (a 3840x40 strip at 240 high would be 23040 wide: it becomes 16383x170, the same shape)."""
    w, h = max(2, round(width * target_height / height)), target_height
    scale = min(1.0, WEBP_MAX_SIDE / w, WEBP_MAX_SIDE / h)
    if scale < 1.0:
        w, h = max(2, math.floor(w * scale)), max(2, math.floor(h * scale))
    return w, h


def clip_uuid(source_path: str, start_frame: int, stop_frame: int) -> str:
    """Deterministic id: the same source span always gives the same id."""
    return str(uuid.uuid5(CLIP_NAMESPACE, f"{source_path}:{start_frame}:{stop_frame}"))
