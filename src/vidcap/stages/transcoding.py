"""ClipTranscodingStage: encode each clip as its own H.264 mp4 (``clip.buffer``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from vidcap.data import Video
from vidcap.media.decode import count_frames
from vidcap.media.encode import transcode_clip
from vidcap.media.ffmpeg import FFmpegError, ffmpeg_binary, ffmpeg_encoders
from vidcap.stages.base import ConfigError, Resources, Stage, require_range

logger = logging.getLogger(__name__)


@dataclass
class ClipTranscodingStage(Stage):
    encoder: str = "libx264"
    num_cpus_per_worker: float = 4.0
    # Force a keyframe every N clip frames. Set to the caption window size, each
    # window starts on a keyframe and its mp4 is a packet copy, not a re-encode.
    keyframe_interval: int | None = None
    name: ClassVar[str] = "clip_transcoding"

    def __post_init__(self) -> None:
        require_range("num_cpus_per_worker", self.num_cpus_per_worker, 0.0)

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
        meta = video.metadata
        if meta is None:
            return video
        threads = max(1, int(self.num_cpus_per_worker))
        for clip in video.clips:
            try:
                buffer = transcode_clip(
                    video.path,
                    clip.start_frame,
                    clip.num_frames,
                    meta.fps_fraction,
                    encoder=self.encoder,
                    threads=threads,
                    with_audio=meta.audio_codec is not None,
                    keyframe_interval=self.keyframe_interval,
                )
                frames = count_frames(buffer)
            except FFmpegError as exc:
                logger.error("%s: clip %s: %s\n  command: %s", video.path, clip.uuid, exc, exc.command_line)
                clip.errors[self.name] = str(exc)
                continue
            except Exception as exc:  # an unreadable result is this clip's failure only
                clip.errors[self.name] = f"transcoded clip unreadable: {exc}"
                continue
            if frames == 0:
                clip.errors[self.name] = "no frames could be decoded in this span of the source"
                continue
            if frames < clip.num_frames:
                logger.warning(
                    "%s: clip %s has %d of %d frames (source ends early)",
                    video.path,
                    clip.uuid,
                    frames,
                    clip.num_frames,
                )
            clip.buffer = buffer
            clip.decoded_frames = frames
        return video
