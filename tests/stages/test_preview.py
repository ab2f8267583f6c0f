from __future__ import annotations

import copy
import io
import logging
from pathlib import Path

import pytest
from helpers import count_decoded_frames, make_video
from PIL import Image

from vidcap.data import Video
from vidcap.stages import (
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ConfigError,
    PreviewStage,
    VideoReaderStage,
)


def _windows_with_mp4(path: Path, **prep: object) -> Video:
    video = Video(path=path, relative_path=path.name)
    stages = [
        VideoReaderStage(path),
        ClipSplittingStage(clip_len_s=10, clip_stride_s=10, min_clip_length_s=1),
        ClipTranscodingStage(num_cpus_per_worker=2),
        CaptionPreparationStage(keep_mp4=True, **prep),  # type: ignore[arg-type]
    ]
    for stage in stages:
        video = stage.process(video)
    return video


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Video:
    src = make_video(tmp_path_factory.mktemp("p") / "v.mp4", seconds=10, width=640, height=360, fps=30)
    return _windows_with_mp4(src, window_size=128, remainder_threshold=64)


def test_window_mp4_frame_counts(prepared: Video) -> None:
    clip = prepared.clips[0]
    assert [(w.start_frame, w.end_frame) for w in clip.windows] == [(0, 127), (128, 299)]
    for w in clip.windows:
        assert w.mp4_bytes and count_decoded_frames(w.mp4_bytes) == w.num_frames
        assert len(w.frame_indices) % 2 == 0 and len(w.frame_indices) >= 4


@pytest.mark.parametrize(("target_fps", "height"), [(1.0, 240), (2.0, 120)])
def test_webp_frames_and_size(prepared: Video, target_fps: float, height: int) -> None:
    PreviewStage(target_fps=target_fps, target_height=height, num_cpus_per_worker=2).process(prepared)
    for w in prepared.clips[0].windows:
        assert w.webp_bytes
        img = Image.open(io.BytesIO(w.webp_bytes))
        assert img.format == "WEBP" and img.is_animated
        seconds = w.num_frames / 30
        assert abs(img.n_frames - seconds * target_fps) <= 1
        assert img.size == (round(height * 640 / 360), height)


def test_lossless_level_zero_is_bigger(prepared: Video) -> None:
    window = prepared.clips[0].windows[0]
    PreviewStage(compression_level=6, quality=50).process(prepared)
    lossy = window.webp_bytes or b""
    PreviewStage(compression_level=0).process(prepared)
    assert len(window.webp_bytes or b"") > len(lossy) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quality": 101}, "quality must be between 0 and 100"),
        ({"quality": -1}, "quality must be between 0 and 100"),
        ({"compression_level": 7}, "compression_level must be between 0 and 6"),
        ({"target_height": 0}, "target_height must be between 16 and 4320"),
        ({"target_height": 10**20}, "target_height must be between 16 and 4320"),
        ({"target_fps": float("nan")}, "target_fps must be between"),
    ],
)
def test_invalid_settings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PreviewStage(**kwargs)  # type: ignore[arg-type]


def test_failed_encode_logs_command_and_goes_on(prepared: Video, caplog: pytest.LogCaptureFixture) -> None:
    prepared = copy.deepcopy(prepared)
    bad, good = prepared.clips[0].windows
    bad.mp4_bytes = b"definitely not an mp4"
    good.webp_bytes = None
    with caplog.at_level(logging.ERROR):
        PreviewStage().process(prepared)
    assert bad.webp_bytes is None and "ffmpeg failed" in bad.errors["preview"]
    assert good.webp_bytes
    assert "libwebp" in caplog.text and "command:" in caplog.text


def test_warns_on_low_fps_and_height(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = _windows_with_mp4(make_video(tmp_path / "small.mp4", seconds=4, width=160, height=90, fps=30))
    with caplog.at_level(logging.WARNING):
        PreviewStage(target_fps=40.0).process(video)
    assert "below the preview's 40.00 fps" in caplog.text
    assert "90 px high, below the preview's 240 px" in caplog.text
    assert video.clips[0].windows[0].webp_bytes


def test_missing_libwebp_stops_before_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import vidcap.stages.preview as preview

    monkeypatch.setattr(preview, "ffmpeg_encoders", lambda: frozenset({"libx264"}))
    with pytest.raises(ConfigError, match="previews need ffmpeg's libwebp encoder"):
        PreviewStage().prepare()


def _square_video(path: Path, frames: int, fps: int) -> Path:
    """Frame i shows a white square on black at a place that says i % 50 (robust to colour conversions)."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(frames):
            img = np.zeros((120, 160, 3), np.uint8)
            row, col = divmod(i % 50, 10)
            img[row * 24 : row * 24 + 16, col * 16 : col * 16 + 16] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _square_index(img: Image.Image) -> int:
    import numpy as np

    grey = np.asarray(img.convert("L").resize((160, 120)), float)
    row = int(np.argmax(grey.mean(axis=1)) // 24)
    col = int(np.argmax(grey.mean(axis=0)) // 16)
    return row * 10 + col


@pytest.mark.parametrize(
    ("fps", "frames", "target_fps"), [(30, 300, 1.0), (25, 175, 2.0), (60, 180, 1.0), (2, 24, 4.0)]
)
def test_preview_frames_from_the_one_decode_match_ffmpeg(tmp_path: Path, fps: int, frames: int,
                                                         target_fps: float) -> None:  # fmt: skip
    """Previews made from frames picked in preparation's decode show the frames ffmpeg's fps filter picks from
    the window's mp4, at the same size."""
    from vidcap.windowing import preview_frame_indices

    src = _square_video(tmp_path / "v.mp4", frames, fps)
    video = Video(path=src, relative_path="v.mp4")
    from vidcap.pipeline import bind

    prep = CaptionPreparationStage(keep_mp4=True, window_size=64, remainder_threshold=32)
    preview = PreviewStage(target_fps=target_fps, target_height=120, num_cpus_per_worker=1)
    bind([prep, preview])  # as a Pipeline does: the window step gathers the frames the preview declared
    for stage in (VideoReaderStage(src), ClipSplittingStage(algorithm="none"), ClipTranscodingStage(), prep):
        video = stage.process(video)
    windows = [w for c in video.clips for w in c.windows]
    assert windows and all("preview" in w.frames and w.mp4_bytes for w in windows)
    fast = copy.deepcopy(video)
    preview.process(fast)
    for w in windows:
        w.frames.pop("preview")  # the other way: ffmpeg decodes the window's mp4
    preview.process(video)

    def shown(webp: bytes | None) -> tuple[tuple[int, int], list[int]]:
        img = Image.open(io.BytesIO(webp or b""))
        picked = []
        for k in range(img.n_frames):
            img.seek(k)
            picked.append(_square_index(img))
        return img.size, picked

    for a, b in zip([w for c in fast.clips for w in c.windows], windows, strict=True):
        size, ours = shown(a.webp_bytes)
        assert size == (160, 120) and (size, ours) == shown(b.webp_bytes)
        expected = preview_frame_indices(a.start_frame, a.end_frame, fps, target_fps)
        assert ours == [i % 50 for i in expected]


@pytest.mark.parametrize(("fps", "repeats", "level"), [(1.0, [1, 1, 1], 6), (2.0, [1, 3, 2], 6), (0.5, [2, 1, 1], 0)])
def test_in_process_webp_is_byte_for_byte_ffmpegs(tmp_path: Path, fps: float, repeats: list[int], level: int) -> None:
    """Previews are encoded by libwebp in this process: the same bytes as ffmpeg's -c:v libwebp on the frames."""
    import subprocess

    import numpy as np

    from vidcap.media.encode import encode_webp_frames

    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (3, 30, 54, 3), dtype=np.uint8)
    frames = np.ascontiguousarray(np.repeat(np.repeat(small, 8, 1), 8, 2))  # 3 frames of 432x240
    mine = encode_webp_frames(frames, fps=fps, repeats=repeats, compression_level=level, quality=50)
    raw = b"".join(f.tobytes() for f, n in zip(frames, repeats, strict=True) for _ in range(n))
    out = tmp_path / "ffmpeg.webp"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                    "432x240", "-framerate", f"{fps:g}", "-i", "-", "-c:v", "libwebp", "-lossless",
                    "1" if level == 0 else "0", "-compression_level", str(level), "-q:v", "50", "-loop", "0",
                    str(out)], input=raw, check=True)  # fmt: skip
    assert mine == out.read_bytes()
    assert Image.open(io.BytesIO(mine)).n_frames == sum(repeats)
