from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from helpers import count_decoded_frames, make_video

from vidcap.data import Video
from vidcap.executors.base import run_batch
from vidcap.stages import ClipSplittingStage, ClipTranscodingStage, ConfigError, VideoReaderStage


def _split_and_transcode(path: Path, **split: object) -> Video:
    video = Video(path=path, relative_path=path.name)
    for stage in (VideoReaderStage(path), ClipSplittingStage(**split), ClipTranscodingStage(num_cpus_per_worker=2)):
        (video,) = run_batch(stage, [video])
    return video


@pytest.mark.parametrize(
    ("fps", "audio", "expected_frames"),
    [(24, True, [96, 96, 48]), ("30000/1001", False, [120, 120, 60])],
)
def test_clips_have_exact_frames(tmp_path: Path, fps: object, audio: bool, expected_frames: list[int]) -> None:
    seconds = 10 if fps == 24 else 10.01
    src = make_video(tmp_path / "v.mp4", seconds=seconds, fps=fps, audio=audio)  # type: ignore[arg-type]
    video = _split_and_transcode(src, clip_len_s=4.0, clip_stride_s=4.0, min_clip_length_s=1.0)
    assert not video.errors
    assert [c.num_frames for c in video.clips] == expected_frames
    for clip in video.clips:
        assert clip.buffer and not clip.errors
        assert clip.decoded_frames == count_decoded_frames(clip.buffer) == clip.num_frames
        with av.open(io.BytesIO(clip.buffer)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert bool(c.streams.audio) is audio


def test_odd_size_source_gives_even_clip(tmp_path: Path) -> None:
    # ffmpeg keeps the 16:9 picture when it squeezes 640x360 into 641x359: its pixels are no longer square.
    src = make_video(
        tmp_path / "odd.mp4", seconds=2, width=640, height=360, extra=["-vf", "scale=641:359", "-pix_fmt", "yuv444p"]
    )
    video = _split_and_transcode(src, algorithm="none")
    clip = video.clips[0]
    with av.open(io.BytesIO(clip.buffer or b"")) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (638, 358)  # even sides, square pixels, still 16:9
        assert s.codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize(("sar", "size"), [("32/27", (852, 480)), ("8/9", (640, 480))])
def test_non_square_pixels_become_display_size(tmp_path: Path, sar: str, size: tuple[int, int]) -> None:
    # A DVD-style 720x480 frame whose pixels are 32:27 (16:9 on screen) or 8:9 (4:3 on screen).
    src = make_video(tmp_path / "dvd.mp4", seconds=2, width=720, height=480, fps=25, extra=["-vf", f"setsar={sar}"])
    video = _split_and_transcode(src, algorithm="none")
    assert video.metadata is not None and video.metadata.sample_aspect_ratio == sar
    assert video.metadata.width == round(720 * eval(sar))  # display width, as users see it
    with av.open(io.BytesIO(video.clips[0].buffer or b"")) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == size
        assert s.sample_aspect_ratio in (None, 1)


def test_missing_encoder_stops_before_work() -> None:
    with pytest.raises(ConfigError, match="encoder libnotreal cannot encode on this machine"):
        ClipTranscodingStage(encoder="libnotreal").prepare()


def test_encoder_that_cannot_run_or_bad_preset_stops_before_work() -> None:
    # Listed by `ffmpeg -encoders` here, but there is no NVIDIA GPU to run it.
    with pytest.raises(ConfigError, match=r"encoder h264_nvenc cannot encode on this machine \(.+\)"):
        ClipTranscodingStage(encoder="h264_nvenc").prepare()
    with pytest.raises(ConfigError, match="preset 'fast-ish' is not a preset of encoder libx264"):
        ClipTranscodingStage(preset="fast-ish").prepare()
    ClipTranscodingStage(preset="ultrafast").prepare()  # a real preset passes


def test_splitting_modes_on_long_video(tmp_path: Path) -> None:
    src = make_video(tmp_path / "long.mp4", seconds=65, width=160, height=90, fps=30)
    video = Video(path=src, relative_path="long.mp4")
    video = VideoReaderStage(src).process(video)
    fixed = ClipSplittingStage().process(video)
    assert [(c.start_frame, c.stop_frame) for c in fixed.clips] == [
        (i * 300, min(i * 300 + 300, 1950)) for i in range(7)
    ]
    assert fixed.clips[-1].span == pytest.approx((60.0, 65.0))
    whole = ClipSplittingStage(algorithm="none").process(video)
    assert [(c.start_frame, c.stop_frame) for c in whole.clips] == [(0, 1950)]


def test_scene_splitting_finds_cuts(tmp_path: Path) -> None:
    import subprocess

    src = tmp_path / "scenes.mp4"
    parts = [
        "color=c=red:size=160x90:rate=25:duration=3",
        "color=c=blue:size=160x90:rate=25:duration=3",
        "testsrc2=size=160x90:rate=25:duration=3",
    ]
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    for p in parts:
        cmd += ["-f", "lavfi", "-i", p]
    cmd += ["-filter_complex", "[0][1][2]concat=n=3:v=1:a=0", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)]
    subprocess.run(cmd, check=True)
    video = VideoReaderStage(src).process(Video(path=src, relative_path="scenes.mp4"))
    video = ClipSplittingStage(algorithm="scene", min_clip_length_s=1.0).process(video)
    assert [(c.start_frame, c.stop_frame) for c in video.clips] == [(0, 75), (75, 150), (150, 225)]


def test_too_short_video_has_no_clips(tmp_path: Path) -> None:
    src = make_video(tmp_path / "one.mp4", seconds=1, fps=30)
    short = _split_and_transcode(src)
    assert short.clips == []
    assert short.errors["clip_splitting"] == "no clip of at least 2 s in a 1.00 s video (30 frames)"
    video = _split_and_transcode(src, min_clip_length_s=0.5)
    assert len(video.clips) == 1 and video.clips[0].decoded_frames == 30
