"""Decoding clip buffers forward, once, for every window of the clip and every need of every stage.

Seeking per frame or re-opening the clip per window re-decodes from the last
keyframe each time; one forward pass hands each window the frames each stage
asked for (by name: "preview", "caption", ...), at each one's size, and
(optionally) its own mp4, as the frames go by.
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

from vidcap.frames import FrameSet, FrameSpec
from vidcap.media.encode import Mp4Writer, remux_mp4

logger = logging.getLogger(__name__)

# (width, height) of a decoded frame -> (width, height) a need wants it at.
FrameSizer = Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Need:
    """How one named need takes its frames from this clip: their size, and the scaler's filter."""

    size: FrameSizer | None = None  # None: as decoded
    interpolation: str = "AREA"


@dataclass
class WindowPlan:
    start: int
    end: int  # inclusive
    # Need name -> the clip frames it takes from this window, in order; a frame shown twice is listed twice.
    picks: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class WindowFrames:
    frames: dict[str, FrameSet] = field(default_factory=dict)
    mp4_bytes: bytes | None = None
    seen: int = 0
    error: str | None = None
    _taken: dict[str, tuple[list[np.ndarray], list[int], list[int]]] = field(default_factory=dict, repr=False)


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


def decode_frames(path: str, spec: FrameSpec, pixel_format: str = "rgb24") -> Iterator[np.ndarray]:
    """Every frame of a video file in presentation order, at ``spec``'s size: the video-wide need of a
    splitter (scene detection, TransNetV2). Frames are numbered by this order, as the clips are: the n-th
    frame here is source frame n.
    """
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size: tuple[int, int] | None = None
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = spec.size(frame.width, frame.height, 1)
                yield frame.to_ndarray(format=pixel_format, width=size[0], height=size[1],
                                       interpolation=spec.interpolation)  # fmt: skip
        except (av.FFmpegError, OSError) as exc:
            logger.warning("%s: decoding stopped early: %s", path, exc)


def decode_windows(
    buffer: bytes, plans: list[WindowPlan], needs: dict[str, Need], *, fps: Fraction, keep_mp4: bool
) -> tuple[list[WindowFrames], int]:
    """One forward pass over ``buffer`` filling every window; returns results and frames decoded.

    A window that starts on a keyframe gets its mp4 by copying its packets (no re-encode); other windows are
    re-encoded from the decoded frames. Every need's frames are taken from the same pass, each at its own size,
    so no frame is decoded twice, and a frame two needs want at one size is converted once. When nothing needs
    pixels nothing is decoded at all. A decode error part-way keeps the windows finished before it and marks
    the rest. Packets stream through: a first demux notes only where frames and keyframes are, so memory
    follows a window, not the clip.
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
    need_pixels = any(any(p.picks.values()) for p in plans) or (keep_mp4 and not all(copies))
    if not need_pixels and not any(copies):
        for plan, res in zip(plans, results, strict=True):
            res.seen = sum(1 for i in indices if i is not None and plan.start <= i <= plan.end)
            _close(plan, res, None)
        return results, 0
    with av.open(io.BytesIO(buffer), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        pass_ = _DecodePass(stream, plans, needs, results, copies, keep_mp4, fps, need_pixels, pts0)
        packets = (p for p in container.demux(stream) if p.size > 0)
        decoded = pass_.run(packets, indices)
    return results, decoded


def _close(plan: WindowPlan, res: WindowFrames, writer: Mp4Writer | None) -> None:
    wanted = plan.end - plan.start + 1
    if res.error is None and res.seen < wanted:
        res.error = f"clip ended early: got {res.seen} of {wanted} frames of this window"
    if res.error is None:
        # Each picked frame once; how often it is shown is in repeats.
        res.frames = {
            name: FrameSet(np.stack(frames), list(at), list(repeats))
            for name, (frames, at, repeats) in res._taken.items()
            if frames
        }
        if writer is not None:
            res.mp4_bytes = writer.finish()
    else:
        res.mp4_bytes = None
    res._taken = {}


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
        needs: dict[str, Need],
        results: list[WindowFrames],
        copies: list[bool],
        keep_mp4: bool,
        fps: Fraction,
        need_pixels: bool,
        pts0: int,
    ) -> None:
        self.stream, self.plans, self.needs, self.results, self.fps = stream, plans, needs, results, fps
        self.need_pixels = need_pixels
        # Windows re-encoded from frames need every frame; the others only their picked frames.
        self.every_frame = [keep_mp4 and not copies[w] for w in range(len(plans))]
        self.copies = copies
        self.collected: dict[int, list[av.Packet]] = {}
        self.picks = [{name: Counter(at) for name, at in p.picks.items() if at} for p in plans]
        self.wanted = [set().union(*(set(c) for c in picks.values())) for picks in self.picks]
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
        return w is None or self.every_frame[w] or index in self.wanted[w]

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
        converted: dict[tuple[int, int, str], np.ndarray] = {}
        for name, counts in self.picks[w].items():
            if not (repeat := counts[index]):
                continue
            need = self.needs.get(name, Need())
            width, height = need.size(frame.width, frame.height) if need.size else (frame.width, frame.height)
            key = (width, height, need.interpolation)
            if key not in converted:  # two needs at one size: one conversion
                converted[key] = frame.to_ndarray(format="rgb24", width=width, height=height,
                                                  interpolation=need.interpolation)  # fmt: skip
            frames, at, repeats = res._taken.setdefault(name, ([], [], []))
            frames.append(converted[key])
            at.append(index)
            repeats.append(repeat)  # a slow source shows a frame more than once: kept once, counted
        if self.every_frame[w]:
            if self.writer is None:
                self.writer = Mp4Writer(self.fps, frame.width, frame.height)
            self.writer.add(frame)
