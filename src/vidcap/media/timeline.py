"""Where every frame of a source is: its presentation time, its packet, its byte position.

Clips are spans of frame indices (presentation order). Cutting them exactly needs each frame's
true time, not ``index / fps``: a variable-rate phone video drifts from it, an MPEG-TS starts
at 1.4 s, and two recordings joined with ``cat`` start their clock again half-way. One demux of
the source (no decoding) gives the truth: packets in decode order with their timestamps and byte
positions. Timestamps that jump back are carried on, so times always increase.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)

# Containers whose index ffmpeg seeks to an exact keyframe by time; others (MPEG-TS, raw streams) are cut
# from their packets by byte position instead.
INDEXED_FORMATS = ("mov", "mp4", "matroska", "webm", "avi")


@dataclass
class Timeline:
    """A source's video packets in decode order, and its frames in presentation order.

    ``pts`` and ``dts`` are in ``time_base`` units, already carried past clock resets. Frame ``i``
    (presentation order) is packet ``order[i]`` and shows at ``times[i]`` seconds.
    """

    time_base: Fraction
    pts: np.ndarray  # int64, decode order
    dts: np.ndarray  # int64, decode order
    pos: np.ndarray  # int64 byte position of each packet, -1 when unknown
    key: np.ndarray  # bool, decode order
    # Where the clock jumped back: (byte position, ticks added from there on), in decode order.
    resets: list[tuple[int, int]]
    format_name: str
    # The container's start time in seconds (ffmpeg's -ss counts from it).
    start_time: float

    def __post_init__(self) -> None:
        self.order = np.argsort(self.pts, kind="stable")
        self.times = self.pts[self.order].astype(np.float64) * float(self.time_base)
        # Presentation index of each packet (decode order).
        self.index_of = np.empty_like(self.order)
        self.index_of[self.order] = np.arange(len(self.order))

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    @property
    def indexed(self) -> bool:
        """ffmpeg can seek this source by time to an exact keyframe and its clock never jumps back."""
        names = self.format_name.split(",")
        return not self.resets and any(n in INDEXED_FORMATS for n in names)

    def bounds(self, start: int, stop: int) -> tuple[float, float]:
        """Seconds that take exactly frames ``[start, stop)``: halfway to the neighbouring frames."""
        t = self.times
        half = self.frame_duration / 2 or 0.5
        lo = (t[start - 1] + t[start]) / 2 if start > 0 else t[0] - half
        hi = (t[stop - 1] + t[stop]) / 2 if stop < len(t) else t[-1] + half
        return float(lo), float(hi)

    def packet_range(self, start: int, stop: int) -> tuple[int, int]:
        """Packets (decode order, ``[first, last)``) a decoder needs for frames ``[start, stop)``: from the last
        keyframe at or before the first frame, to the last packet any of those frames is in."""
        first_packet = int(self.order[start:stop].min())
        last_packet = int(self.order[start:stop].max())
        keys = np.flatnonzero(self.key[: first_packet + 1])
        begin = int(keys[-1]) if len(keys) else 0
        # A keyframe whose frame shows after ``start`` (an open GOP's leading frames): go one keyframe back.
        while begin > 0 and self.index_of[begin] > start:
            earlier = np.flatnonzero(self.key[:begin])
            begin = int(earlier[-1]) if len(earlier) else 0
        return begin, last_packet + 1

    def seek_time(self, start: int) -> float:
        """Seconds from the container's start to seek to so that decoding begins at or before frame ``start``."""
        begin, _ = self.packet_range(start, start + 1)
        keyframe_time = float(self.pts[begin] * self.time_base)
        return max(0.0, min(keyframe_time, float(self.times[start])) - self.start_time)

    def first(self, count: int) -> Timeline:
        """The same source with only its first ``count`` frames (presentation order)."""
        keep = self.index_of < count
        return Timeline(self.time_base, self.pts[keep], self.dts[keep], self.pos[keep], self.key[keep], self.resets,
                        self.format_name, self.start_time)  # fmt: skip

    def contiguous_head(self, tail: int = 32) -> int:
        """Frames before the first gap among the last ``tail`` ones: where a file cut short mid-GOP stops
        being whole (a P-frame that arrived before the B-frames shown ahead of it)."""
        d = np.diff(self.times[-tail:])
        if len(d) < 2:
            return self.num_frames
        gaps = np.flatnonzero(d > 1.5 * float(np.median(d)))
        return self.num_frames if not len(gaps) else self.num_frames - len(d) + int(gaps[0])

    def offset_at(self, pos: int) -> int:
        """Ticks to add to a packet found at byte ``pos`` (any stream), from the clock resets before it."""
        added = 0
        for at, ticks in self.resets:
            if pos >= at:
                added = ticks
        return added

    def span_seconds(self, start: int, stop: int) -> tuple[float, float]:
        """Frames ``[start, stop)`` as seconds from the first frame."""
        t0 = self.times[0]
        end = self.times[stop] if stop < len(self.times) else self.times[-1] + self.frame_duration
        return float(self.times[start] - t0), float(end - t0)

    @property
    def frame_duration(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return float(np.median(np.diff(self.times)))

    @property
    def variable_rate(self) -> bool:
        """Frame spacing varies by more than a timestamp's rounding."""
        if len(self.times) < 3:
            return False
        d = np.diff(self.times)
        return bool(d.max() - d.min() > max(2.5 * float(self.time_base), 1e-3))


def scan(path: Path | str, fps: float | None = None) -> Timeline:
    """One demux of the first video stream: packets, timestamps, keyframes, byte positions."""
    size = Path(path).stat().st_size
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base or Fraction(1, 90000))
        rate = fps or float(stream.average_rate or stream.guessed_rate or 25)
        rows: list[tuple[int | None, int | None, int, bool]] = []
        try:
            for packet in container.demux(stream):
                if packet.size > 0:
                    if packet.is_corrupt and packet.pos is not None and packet.pos + packet.size >= size:
                        break  # cut off by the end of the file
                    rows.append((packet.pts, packet.dts, packet.pos if packet.pos is not None else -1,
                                 bool(packet.is_keyframe)))  # fmt: skip
        except (av.FFmpegError, OSError) as exc:
            # A damaged or cut tail: the frames before it are the source.
            logger.debug("%s: demux stopped after %d packets: %s", path, len(rows), exc)
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
        name = container.format.name
    return _timeline(rows, time_base, rate, name, start)


def _timeline(
    rows: list[tuple[int | None, int | None, int, bool]], time_base: Fraction, fps: float, name: str, start: float
) -> Timeline:
    step = max(1, round(1 / (fps * time_base))) if fps > 0 else 1
    n = len(rows)
    pts = np.zeros(n, np.int64)
    dts = np.zeros(n, np.int64)
    resets: list[tuple[int, int]] = []
    added = 0
    previous: int | None = None  # the last real decode timestamp, corrected
    last = -step  # the last corrected timestamp of any kind
    for i, (p, d, pos, _) in enumerate(rows):
        if d is not None and previous is not None and d + added <= previous:
            # The clock went back (two recordings joined): carry on one frame after the last.
            added = previous + step - d
            resets.append((pos, added))
        raw_pts = p if p is not None else d
        dts[i] = d + added if d is not None else last + step
        # No timestamps at all (some raw streams): one frame duration after the last.
        pts[i] = raw_pts + added if raw_pts is not None else dts[i]
        if d is not None:
            previous = int(dts[i])
        last = int(dts[i])
    return Timeline(
        time_base=time_base,
        pts=pts,
        dts=dts,
        pos=np.array([r[2] for r in rows], np.int64),
        key=np.array([r[3] for r in rows], bool),
        resets=resets,
        format_name=name,
        start_time=start,
    )
