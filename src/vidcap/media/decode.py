"""Decoding clip buffers forward, once, for every window of the clip.

Seeking per frame or re-opening the clip per window re-decodes from the last
keyframe each time; one forward pass hands each window its sampled frames and
(optionally) its own mp4 as the frames go by.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
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
    # Frames for the window's preview (see windowing.preview_frame_indices), scaled to preview_height.
    preview_indices: list[int] = field(default_factory=list)


@dataclass
class WindowFrames:
    frames: np.ndarray | None = None
    mp4_bytes: bytes | None = None
    preview_frames: np.ndarray | None = None
    preview_repeats: list[int] | None = None
    seen: int = 0
    error: str | None = None
    _sampled: list[np.ndarray] = field(default_factory=list, repr=False)
    _preview: list[np.ndarray] = field(default_factory=list, repr=False)
    _repeats: list[int] = field(default_factory=list, repr=False)


def count_frames(buffer: bytes) -> int:
    """Frames in an mp4 buffer, from the index when it has one, else by demuxing packets."""
    if not buffer:
        return 0
    with av.open(io.BytesIO(buffer), "r") as container:
        if not container.streams.video:
            return 0  # ffmpeg wrote no video: no frame of the span could be decoded
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for p in container.demux(stream) if p.size > 0)


def decode_frames(path: str, *, width: int, pixel_format: str = "rgb24") -> Iterator[np.ndarray]:
    """Every frame of a video file in presentation order, scaled to ``width`` (height in proportion, even).

    Frames are numbered by this order, as the clips are: the n-th frame here is source frame n.
    """
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size: tuple[int, int] | None = None
        try:
            for frame in container.decode(stream):
                if size is None:
                    w = min(width, frame.width)
                    size = (w, max(2, round(frame.height * w / frame.width / 2) * 2))
                yield frame.to_ndarray(format=pixel_format, width=size[0], height=size[1], interpolation="AREA")
        except (av.FFmpegError, OSError) as exc:
            logger.warning("%s: decoding stopped early: %s", path, exc)


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
    preview_size: FrameSizer | None = None,
) -> tuple[list[WindowFrames], int]:
    """One forward pass over ``buffer`` filling every window; returns results and frames decoded.

    A window that starts on a keyframe gets its mp4 by copying its packets (no
    re-encode). Other windows are re-encoded from the decoded frames. The model's
    frames and the preview's frames (scaled by ``preview_size``) are taken from
    the same pass, so no frame is decoded twice. When nothing needs pixels
    nothing is decoded at all. A decode error part-way keeps the windows
    finished before it and marks the rest. Packets stream through: a first demux
    notes only where frames and keyframes are, so memory follows a window, not
    the clip.
    """
    results = [WindowFrames() for _ in plans]
    with av.open(io.BytesIO(buffer), "r") as container:
        stream = container.streams.video[0]
        marks = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size > 0]
    pts0 = min((pts for pts, _ in marks if pts is not None), default=0)
    time_base = stream.time_base
    indices = [None if pts is None or time_base is None else round((pts - pts0) * time_base * fps) for pts, _ in marks]
    copies = [False] * len(plans)
    if keep_mp4:
        keyframes = {i for (_, key), i in zip(marks, indices, strict=True) if key}
        known = [i for i in indices if i is not None]
        last = max(known, default=-1)
        for w, plan in enumerate(plans):
            # Closed GOPs: a run from one keyframe up to the next (or the end) stands alone.
            inside = sum(1 for i in known if plan.start <= i <= plan.end)
            if plan.start in keyframes and (plan.end + 1 in keyframes or plan.end == last):
                copies[w] = inside == plan.end - plan.start + 1
    need_pixels = any(p.sample_indices or p.preview_indices for p in plans) or (keep_mp4 and not all(copies))
    if not need_pixels and not any(copies):
        for plan, res in zip(plans, results, strict=True):
            res.seen = sum(1 for i in indices if i is not None and plan.start <= i <= plan.end)
            _close(plan, res, None)
        return results, 0
    with av.open(io.BytesIO(buffer), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        pass_ = _DecodePass(stream, plans, results, copies, keep_mp4, fps, sizer, preview_size, need_pixels, pts0)
        packets = (p for p in container.demux(stream) if p.size > 0)
        decoded = pass_.run(packets, indices)
    return results, decoded


def _close(plan: WindowPlan, res: WindowFrames, writer: Mp4Writer | None) -> None:
    wanted = plan.end - plan.start + 1
    if res.error is None and res.seen < wanted:
        res.error = f"clip ended early: got {res.seen} of {wanted} frames of this window"
    if res.error is None:
        res.frames = np.stack(res._sampled) if res._sampled else None
        # Each picked frame once; how often the preview shows it is in preview_repeats.
        res.preview_frames = np.stack(res._preview) if res._preview else None
        res.preview_repeats = list(res._repeats) if res._preview else None
        if writer is not None:
            res.mp4_bytes = writer.finish()
    else:
        res.mp4_bytes = None
    res._sampled, res._preview, res._repeats = [], [], []


def disposable(packet: av.Packet) -> bool:
    """An H.264 packet (length-prefixed NAL units, as in mp4) whose slices no other frame refers to
    (nal_ref_idc 0): leaving it out of the decoder loses that one frame and nothing else."""
    data = bytes(packet)
    at, slices = 0, 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        at += 4
        if size <= 0 or at + size > len(data):
            return False
        header = data[at]
        if header & 0x1F in (1, 5):  # a coded slice
            if header >> 5 & 3:
                return False
            slices += 1
        at += size
    return slices > 0


class _DecodePass:
    """Every frame routed to its window, in one forward pass; frames nobody needs are not even decoded when
    nothing refers to them (non-reference B-frames, about half of an x264 clip's frames). Windows whose mp4 is a
    packet copy collect their packets as they go by, one window at a time."""

    def __init__(
        self,
        stream: av.video.stream.VideoStream,
        plans: list[WindowPlan],
        results: list[WindowFrames],
        copies: list[bool],
        keep_mp4: bool,
        fps: Fraction,
        sizer: FrameSizer | None,
        preview_size: FrameSizer | None,
        need_pixels: bool,
        pts0: int,
    ) -> None:
        self.stream, self.plans, self.results, self.fps = stream, plans, results, fps
        self.sizer, self.preview_size, self.need_pixels = sizer, preview_size, need_pixels
        # Windows re-encoded from frames need every frame; the others only their sampled and preview frames.
        self.every_frame = [keep_mp4 and not copies[w] for w in range(len(plans))]
        self.copies = copies
        self.collected: dict[int, list[av.Packet]] = {}
        self.samples = [set(p.sample_indices) for p in plans]
        self.previews = [Counter(p.preview_indices) for p in plans]
        self.writer: Mp4Writer | None = None
        self.current = 0
        self.decoded = 0
        self.time_base = stream.time_base
        self.pts0 = pts0
        # AVCC H.264 (length-prefixed NALs) is what the transcoder writes; other streams are decoded whole.
        extradata = stream.codec_context.extradata or b""
        self.can_skip = stream.codec_context.name == "h264" and extradata[:1] == b"\x01"

    def _window(self, index: int) -> int | None:
        return next((w for w, p in enumerate(self.plans) if p.start <= index <= p.end), None)

    def _wanted(self, index: int | None) -> bool:
        if index is None:
            return True
        w = self._window(index)
        return w is None or self.every_frame[w] or index in self.samples[w] or index in self.previews[w]

    def run(self, packets: Iterator[av.Packet], indices: list[int | None]) -> int:
        high = -1
        try:
            for packet, index in zip(packets, indices, strict=False):
                w = self._window(index) if index is not None else None
                high = max(high, index if index is not None else -1)
                if w is not None and self.copies[w]:
                    self._collect(w, packet)
                if not self.need_pixels or (self.can_skip and not self._wanted(index) and disposable(packet)):
                    self._skipped(w)
                    continue
                for frame in packet.decode():
                    self._frame(frame)
            if self.need_pixels:
                for frame in self.stream.codec_context.decode(None):
                    self._frame(frame)
        except (av.FFmpegError, OSError) as exc:
            logger.debug("decode stopped after %d frames: %s", self.decoded, exc)
            for res in self.results[self.current :]:
                res.error = f"decode failed after frame {self.decoded}: {exc}"
        self._advance(high + 1)
        self._advance(self.plans[-1].end + 1 if self.plans else 0)  # windows the clip ran out before
        return self.decoded

    def _collect(self, w: int, packet: av.Packet) -> None:
        mine = self.collected.setdefault(w, [])
        mine.append(packet)
        plan = self.plans[w]
        if len(mine) == plan.end - plan.start + 1:
            self.results[w].mp4_bytes = remux_mp4(self.stream, mine)
            del self.collected[w]

    def _advance(self, index: int) -> None:
        """Close every window that ends before ``index``."""
        while self.current < len(self.plans) and index > self.plans[self.current].end:
            _close(self.plans[self.current], self.results[self.current], self.writer)
            self.writer = None
            self.current += 1

    def _skipped(self, w: int | None) -> None:
        if w is not None:
            self.results[w].seen += 1

    def _frame(self, frame: av.VideoFrame) -> None:
        index = self.decoded
        if frame.pts is not None and self.time_base is not None:
            index = round((frame.pts - self.pts0) * self.time_base * self.fps)
        self.decoded += 1
        self._advance(index)
        if self.current >= len(self.plans) or index < self.plans[self.current].start:
            return  # outside every window (none, unless the index undercounted)
        w, res = self.current, self.results[self.current]
        res.seen += 1
        if index in self.samples[w]:
            if self.sizer is None:
                res._sampled.append(frame.to_ndarray(format="rgb24"))
            else:
                width, height = self.sizer(frame.width, frame.height)
                res._sampled.append(frame.to_ndarray(format="rgb24", width=width, height=height,
                                                     interpolation="BICUBIC"))  # fmt: skip
        if self.preview_size is not None and (repeat := self.previews[w][index]):
            width, height = self.preview_size(frame.width, frame.height)
            # Area averaging: the right filter for a large reduction, and the cheapest.
            res._preview.append(frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA"))
            res._repeats.append(repeat)  # a slow source shows a frame more than once: kept once, counted
        if self.every_frame[w]:
            if self.writer is None:
                self.writer = Mp4Writer(self.fps, frame.width, frame.height)
            self.writer.add(frame)
