"""What frames a stage needs from each window, declared as data; the window step decodes every clip once and
hands each need its frames.

A stage says ``frames = {"preview": FrameSpec(...)}``: which frames (picked as ffmpeg's fps filter picks them,
or spread evenly as a model samples them) and at what size. The payload travels as ``window.frames[name]``
and is dropped after the last stage that reads ``frames:<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidcap.windowing import preview_frame_indices, preview_size, sample_frame_indices


@dataclass(frozen=True)
class HeightSize:
    """``height`` pixels high, width in proportion, within libwebp's limits (previews)."""

    height: int

    def __call__(self, width: int, height: int, count: int) -> tuple[int, int]:
        return preview_size(width, height, self.height)


@dataclass(frozen=True)
class BudgetSize:
    """Within a vision model's pixel budget for a window of ``count`` frames (multiples of its patch size)."""

    budget: object  # a models.registry.PixelBudget; typed loosely so this module needs no model code

    def __call__(self, width: int, height: int, count: int) -> tuple[int, int]:
        from vidcap.models.inputs import frame_size

        return frame_size(self.budget, width, height, count)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FixedSize:
    """Exactly ``width`` x ``height``, whatever the source's shape (a model with a fixed input, e.g. TransNetV2's
    48x27)."""

    width: int
    height: int

    def __call__(self, width: int, height: int, count: int) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class WidthSize:
    """At most ``width`` pixels wide, height in proportion and even (a detector that needs only the gist)."""

    width: int

    def __call__(self, width: int, height: int, count: int) -> tuple[int, int]:
        w = min(self.width, width)
        return w, max(2, round(height * w / width / 2) * 2)


@dataclass(frozen=True)
class NativeSize:
    """The clip's own size."""

    def __call__(self, width: int, height: int, count: int) -> tuple[int, int]:
        return width, height


SizeRule = HeightSize | BudgetSize | FixedSize | WidthSize | NativeSize


@dataclass(frozen=True)
class FrameSpec:
    """Frames wanted from every window.

    ``pick``: "fps" takes frames as ffmpeg's fps filter would at ``fps`` (a slow source repeats frames);
    "sample" spreads ``fps`` frames a second of source time, an even count of at least 4, from the window's
    first frame to its last (what a vision model is given); "all" takes every frame (a shot detector).
    ``interpolation``: PyAV's scaler, AREA for large reductions, BICUBIC where a model's processor would use it.
    """

    pick: str
    fps: float
    size: SizeRule = field(default_factory=NativeSize)
    interpolation: str = "AREA"

    def indices(self, start: int, end: int, clip_fps: float) -> list[int]:
        """Clip frame indices for a window ``[start, end]``, repeated where a frame is shown more than once."""
        if self.pick == "fps":
            return preview_frame_indices(start, end, clip_fps, self.fps)
        if self.pick == "sample":
            return sample_frame_indices(start, end, clip_fps, self.fps)
        if self.pick == "all":
            return list(range(start, end + 1))
        raise ValueError(f"unknown frame pick {self.pick!r}")


@dataclass
class FrameSet:
    """The frames one need got from one window: each picked frame once, in order, with how many times it is
    shown (``repeats``) and which clip frame it is (``indices``)."""

    frames: np.ndarray  # (n, h, w, 3) uint8 RGB
    indices: list[int]
    repeats: list[int]

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)
