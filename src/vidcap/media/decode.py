"""Decoding clip buffers forward, once, for every window of the clip.

Seeking per frame or re-opening the clip per window re-decodes from the last
keyframe each time; one forward pass hands each window its sampled frames and
(optionally) its own mp4 as the frames go by.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from vidcap.media.encode import Mp4Writer, remux_mp4

logger = logging.getLogger(__name__)

# (width, height) of a source frame -> (width, height) the model should get.
FrameSizer = Callable[[int, int], tuple[int, int]]


@dataclass
class WindowPlan:
    start: int
    end: int  # inclusive
    sample_indices: list[int]


@dataclass
class WindowFrames:
    frames: np.ndarray | None = None
    mp4_bytes: bytes | None = None
    seen: int = 0
    error: str | None = None
    _sampled: list[np.ndarray] = field(default_factory=list, repr=False)


def count_frames(buffer: bytes) -> int:
    """Frames in an mp4 buffer, from the index when it has one, else by demuxing packets."""
    with av.open(io.BytesIO(buffer), "r") as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for p in container.demux(stream) if p.size > 0)


def _frame_index(packet: av.Packet, pts0: int, fps: Fraction) -> int | None:
    if packet.pts is None or packet.time_base is None:
        return None
    return round((packet.pts - pts0) * packet.time_base * fps)


def decode_windows(
    buffer: bytes,
    plans: list[WindowPlan],
    *,
    fps: Fraction,
    keep_mp4: bool,
    sizer: FrameSizer | None = None,
) -> tuple[list[WindowFrames], int]:
    """One forward pass over ``buffer`` filling every window; returns results and frames decoded.

    A window that starts on a keyframe gets its mp4 by copying its packets (no
    re-encode); the clip transcoder puts keyframes on window boundaries for
    that. Other windows are re-encoded from the decoded frames. When nothing
    needs pixels (no sampling, all windows copied) nothing is decoded at all.
    A decode error part-way keeps the windows finished before it and marks the rest.
    """
    results = [WindowFrames() for _ in plans]
    with av.open(io.BytesIO(buffer), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        packets = [p for p in container.demux(stream) if p.size > 0]
        pts0 = min((p.pts for p in packets if p.pts is not None), default=0)
        indices = [_frame_index(p, pts0, fps) for p in packets]
        copied = [False] * len(plans)
        if keep_mp4:
            keyframes = {i for p, i in zip(packets, indices, strict=True) if p.is_keyframe}
            last = max((i for i in indices if i is not None), default=-1)
            for w, plan in enumerate(plans):
                # Closed GOPs: a run from one keyframe up to the next (or the end) stands alone.
                if plan.start in keyframes and (plan.end + 1 in keyframes or plan.end == last):
                    mine = [
                        p
                        for p, i in zip(packets, indices, strict=True)
                        if i is not None and plan.start <= i <= plan.end
                    ]
                    if len(mine) == plan.end - plan.start + 1:
                        results[w].mp4_bytes = remux_mp4(stream, mine)
                        copied[w] = True
        need_pixels = any(p.sample_indices for p in plans) or (keep_mp4 and not all(copied))
        if not need_pixels:
            for plan, res in zip(plans, results, strict=True):
                res.seen = sum(1 for i in indices if i is not None and plan.start <= i <= plan.end)
                _close(plan, res, None)
            return results, 0
        decoded = _decode_pass(stream, packets, plans, results, copied if keep_mp4 else None, fps, sizer)
    return results, decoded


def _close(plan: WindowPlan, res: WindowFrames, writer: Mp4Writer | None) -> None:
    wanted = plan.end - plan.start + 1
    if res.error is None and res.seen < wanted:
        res.error = f"clip ended early: got {res.seen} of {wanted} frames of this window"
    if res.error is None:
        res.frames = np.stack(res._sampled) if res._sampled else None
        if writer is not None:
            res.mp4_bytes = writer.finish()
    else:
        res.mp4_bytes = None
    res._sampled = []


def _decode_pass(
    stream: av.video.stream.VideoStream,
    packets: list[av.Packet],
    plans: list[WindowPlan],
    results: list[WindowFrames],
    copied: list[bool] | None,
    fps: Fraction,
    sizer: FrameSizer | None,
) -> int:
    """Decode every packet once, in order, routing frames to their window."""
    sample_sets = [set(p.sample_indices) for p in plans]
    writer: Mp4Writer | None = None
    current = 0
    decoded = 0

    def frames() -> Iterator[av.VideoFrame]:
        for packet in packets:
            yield from packet.decode()
        yield from stream.codec_context.decode(None)

    try:
        for index, frame in enumerate(frames()):
            decoded = index + 1
            while current < len(plans) and index > plans[current].end:
                _close(plans[current], results[current], writer)
                writer = None
                current += 1
            if current >= len(plans):
                continue  # frames past the last window (none, unless the index undercounted)
            plan, res = plans[current], results[current]
            if index < plan.start:
                continue
            res.seen += 1
            if index in sample_sets[current]:
                if sizer is None:
                    res._sampled.append(frame.to_ndarray(format="rgb24"))
                else:
                    width, height = sizer(frame.width, frame.height)
                    res._sampled.append(
                        frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BICUBIC")
                    )
            if copied is not None and not copied[current]:
                if writer is None:
                    writer = Mp4Writer(fps, frame.width, frame.height)
                writer.add(frame)
    except (av.FFmpegError, OSError) as exc:
        logger.debug("decode stopped at frame %d: %s", decoded, exc)
        for res in results[current:]:
            res.error = f"decode failed after frame {decoded}: {exc}"
    while current < len(plans):
        _close(plans[current], results[current], writer)
        writer = None
        current += 1
    return decoded
