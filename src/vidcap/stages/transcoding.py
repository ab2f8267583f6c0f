"""ClipTranscodingStage: encode each clip as its own H.264 mp4 (``clip.buffer``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from vidcap.data import Clip, Video
from vidcap.media.decode import count_frames
from vidcap.media.encode import transcode_clip
from vidcap.media.ffmpeg import FFmpegError, ffmpeg_binary, ffmpeg_encoders
from vidcap.stages.base import ConfigError, Resources, Stage, require_range

logger = logging.getLogger(__name__)


def missing_frames_matter(got: int, wanted: int) -> bool:
    """A clip short by more than a rounding slip (container frame counts are estimates)."""
    return wanted - got > max(2, wanted // 20)


@dataclass
class ClipTranscodingStage(Stage):
    encoder: str = "libx264"
    num_cpus_per_worker: float = 4.0
    # Force a keyframe every N clip frames. Set to the caption window size, each
    # window starts on a keyframe and its mp4 is a packet copy, not a re-encode.
    keyframe_interval: int | None = None
    # Encoder preset (libx264: ultrafast ... veryslow); None keeps the encoder's default.
    preset: str | None = None
    name: ClassVar[str] = "clip_transcoding"

    def __post_init__(self) -> None:
        require_range("num_cpus_per_worker", self.num_cpus_per_worker, 0.01)
        if self.keyframe_interval is not None:
            require_range("keyframe_interval", self.keyframe_interval, 1)

    @property
    def resources(self) -> Resources:
        return Resources(cpus=self.num_cpus_per_worker)

    def prepare(self) -> None:
        if ffmpeg_binary() is None:
            raise ConfigError("ffmpeg is not on PATH; install it (Debian: apt-get install -y ffmpeg)")
        if self.encoder not in ffmpeg_encoders():
            raise ConfigError(
                f"this ffmpeg has no {self.encoder} encoder; install an ffmpeg built with it "
                f"or pass --transcode-encoder with one of: libx264, libopenh264, h264_nvenc"
            )

    def process(self, video: Video) -> Video:
        if video.metadata is None:
            return video
        for clip in video.clips:
            self._transcode(video, clip)
        return video

    def _transcode(self, video: Video, clip: Clip) -> None:
        assert video.metadata is not None
        try:
            buffer, problems = transcode_clip(
                video.path,
                clip.start_frame,
                clip.num_frames,
                video.metadata.fps_fraction,
                encoder=self.encoder,
                threads=max(1, int(self.num_cpus_per_worker)),
                with_audio=video.metadata.audio_codec is not None,
                keyframe_interval=self.keyframe_interval,
                preset=self.preset,
            )
            frames = count_frames(buffer)
        except FFmpegError as exc:
            logger.error("%s: clip %s: %s\n  command: %s", video.path, clip.uuid, exc, exc.command_line)
            clip.errors[self.name] = str(exc)
            return
        except Exception as exc:  # an unreadable result is this clip's failure only
            clip.errors[self.name] = f"transcoded clip unreadable: {exc}"
            return
        if frames == 0:
            clip.errors[self.name] = "no frames could be decoded in this span of the source"
            return
        clip.buffer = buffer
        clip.decoded_frames = frames
        notes = []
        if missing_frames_matter(frames, clip.num_frames):
            notes.append(f"source ends early: {frames} of {clip.num_frames} frames")
        if problems:
            notes.append(f"source has decode errors ({len(problems)} kinds, first: {problems[0]})")
        if notes:
            # The clip is kept (it may still be useful) but marked, so it is not taken as clean.
            clip.errors[self.name] = "; ".join(notes)
            logger.warning("%s: clip %s: %s", video.path, clip.uuid, clip.errors[self.name])
