"""How much a clip moves, from the motion vectors its decoder already computes (no model).

NeMo Curator's measure: motion vectors of frames sampled at ``target_fps`` over the first ``duration_ratio``
of the clip become a flow field; its magnitude, relative to the frame's width plus height, is averaged over
all pixels (``global_mean``) and over 256-pixel patches, whose least-moving one is ``per_patch_min_256``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

# Block sizes H.264 motion vectors come in (width, height).
_BLOCKS = ((8, 8), (16, 16), (16, 8), (8, 16))
# Below this on a side there is no 256-pixel patch to measure.
MIN_SIDE = 256


class MotionError(Exception):
    """Why no motion could be measured (too small, not decodable, no motion vectors)."""


@dataclass
class MotionScores:
    global_mean: float
    per_patch_min_256: float
    frames: int

    def as_dict(self) -> dict[str, float]:
        return {"global_mean": self.global_mean, "per_patch_min_256": self.per_patch_min_256}


def decode_motion(
    buffer: bytes, target_fps: float, duration_ratio: float, threads: int = 0
) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Motion vectors of frames sampled every ``round(fps / target_fps)`` decoded frames from the start, until
    ``max(10, target_fps * seconds * duration_ratio)`` frames gave vectors; and the frame's (height, width)."""
    with av.open(io.BytesIO(buffer), "r", metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.flags2 |= av.codec.context.Flags2.export_mvs
        stream.thread_type = "AUTO"
        ctx.thread_count = threads
        source_fps = float(stream.average_rate or stream.base_rate or 30)
        seconds = int(container.duration / av.time_base) if container.duration else 0
        if seconds <= 0 and stream.duration and stream.time_base:
            seconds = int(stream.duration * stream.time_base)
        wanted = max(10, round(target_fps * (seconds or 30) * duration_ratio))
        step = max(1, round(source_fps / target_fps))
        vectors: list[np.ndarray] = []
        size: tuple[int, int] | None = None
        try:
            for i, frame in enumerate(container.decode(stream)):
                if size is None:
                    size = (frame.height, frame.width)
                    if min(size) < MIN_SIDE:
                        raise MotionError(f"the clip is {frame.width}x{frame.height}: motion is measured on 256-pixel "
                                          f"patches")  # fmt: skip
                if i % step:
                    continue
                data = frame.side_data.get("MOTION_VECTORS")
                if data is not None:
                    vectors.append(data.to_ndarray())
                if len(vectors) >= wanted:
                    break
        except av.FFmpegError as exc:
            raise MotionError(f"the clip could not be decoded ({exc})") from exc
    if size is None:
        raise MotionError("the clip has no frames")
    if not vectors:
        raise MotionError("the clip's frames carry no motion vectors")
    return vectors, size


def flow_field(vectors: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, 2) displacement of each pixel: each block's vector over the block around its
    destination; pixels no vector covers do not move."""
    flow = np.zeros((height, width, 2), np.float32)
    scale = np.maximum(vectors["motion_scale"].astype(np.float32), 1.0)
    delta = -np.stack([vectors["motion_x"] / scale, vectors["motion_y"] / scale], axis=1).astype(np.float32)
    for bw, bh in _BLOCKS:
        mine = (vectors["w"] == bw) & (vectors["h"] == bh)
        if not mine.any():
            continue
        xs = np.clip(vectors["dst_x"][mine].astype(np.int64)[:, None] + np.arange(-(bw // 2), bw // 2), 0, width - 1)
        ys = np.clip(vectors["dst_y"][mine].astype(np.int64)[:, None] + np.arange(-(bh // 2), bh // 2), 0, height - 1)
        flow[ys[:, :, None], xs[:, None, :]] = delta[mine][:, None, None, :]
    return flow


def motion_scores(vectors: list[np.ndarray], size: tuple[int, int]) -> MotionScores:
    import cv2

    height, width = size
    total = np.zeros((height, width), np.float64)
    for frame_vectors in vectors:
        flow = flow_field(frame_vectors, height, width)
        total += np.linalg.norm(flow, axis=2) / (width + height)
    per_pixel = (total / len(vectors)).astype(np.float32)
    global_mean = float(per_pixel.mean())
    patches = cv2.resize(per_pixel, None, fx=1 / 256, fy=1 / 256)  # bilinear, as NeMo Curator measures it
    return MotionScores(global_mean, float(patches.min()), len(vectors))
