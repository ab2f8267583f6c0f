from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_video

from vidcap.media.probe import VideoReadError, probe_video


def test_probe_fields(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", seconds=2, width=352, height=288, fps=25, audio=True)
    meta = probe_video(path)
    assert (meta.width, meta.height, meta.fps, meta.num_frames) == (352, 288, 25.0, 50)
    assert meta.duration_s == pytest.approx(2.0, abs=0.05)
    assert meta.video_codec == "h264" and meta.pixel_format == "yuv420p"
    assert meta.audio_codec == "aac" and meta.size_bytes == path.stat().st_size
    assert meta.fps_fraction == "25/1"


def test_probe_mkv_without_frame_count(tmp_path: Path) -> None:
    meta = probe_video(make_video(tmp_path / "v.mkv", seconds=2, fps=24))
    assert meta.num_frames == 48 and meta.audio_codec is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am text\n" * 10, "not a readable video"),
    ],
)
def test_unreadable(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoReadError, match=reason):
        probe_video(path)


def test_truncated_moov_at_end(tmp_path: Path) -> None:
    data = make_video(tmp_path / "v.mp4", seconds=3).read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="not a readable video"):
        probe_video(tmp_path / "half.mp4")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="cannot open"):
        probe_video(tmp_path / "nope.mp4")
