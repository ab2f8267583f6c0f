"""ClipTranscodingStage: encode each clip as its own H.264 mp4 (``clip.buffer``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from vidcap.data import Clip, Video, record_error
from vidcap.errors import ConfigError, SettingError, describe, is_retryable
from vidcap.media.decode import count_frames
from vidcap.media.encode import transcode_clip
from vidcap.media.ffmpeg import FFmpegError, ffmpeg_binary, ffmpeg_timeout, try_encoder
from vidcap.params import param
from vidcap.stages.base import Resources, Stage

logger = logging.getLogger(__name__)

MAX_CPUS = 1024.0


SPLIT = "Splitting and transcoding"


@dataclass
class ClipTranscodingStage(Stage):
    """Each clip as its own H.264 mp4 (``clip.buffer``), exactly the source frames of its span."""

    encoder: str = param(
        "libx264",
        flag="--transcode-encoder",
        panel=SPLIT,
        help="ffmpeg encoder for clips (libx264; libvpx-vp9, h264_nvenc where they run).",
    )
    num_cpus_per_worker: float = param(
        4.0,
        flag="--transcode-cpus-per-worker",
        low=0.01,
        high=MAX_CPUS,
        runtime=True,
        panel=SPLIT,
        help="ffmpeg threads per clip encode.",
    )
    encoder_threads: int | None = param(
        None,
        flag="--transcode-encoder-threads",
        low=1,
        high=1024,
        integer=True,
        runtime=True,
        panel=SPLIT,
        help="ffmpeg threads per clip encode (default: --transcode-cpus-per-worker).",
    )
    use_input_bit_rate: bool = param(
        False, flag="--transcode-use-input-video-bit-rate", panel=SPLIT, help="Encode clips at the source's bit rate."
    )
    # Force a keyframe every N clip frames: set to the window size, window mp4s become packet copies.
    keyframe_interval: int | None = param(
        None, low=1, high=100_000, integer=True, help="Force a keyframe every N clip frames."
    )
    preset: str | None = param(
        None,
        flag="--transcode-preset",
        panel=SPLIT,
        help="Encoder preset, e.g. libx264 ultrafast..veryslow (default: the encoder's).",
    )
    # Seconds one clip's encode may take before it counts as hung; None scales it with the clip.
    timeout_s: float | None = param(None, low=0.1, high=7 * 24 * 3600, runtime=True, help="Hung-encode limit.")
    name: ClassVar[str] = "clip_transcoding"
    reads: ClassVar[frozenset[str]] = frozenset({"video.source"})

    def default_resources(self) -> Resources:
        return Resources(cpus=self.num_cpus_per_worker)

    def prepare(self) -> None:
        """Encode a few frames with the chosen encoder and preset, so a setting that cannot work here stops the
        run now instead of failing every clip."""
        if ffmpeg_binary() is None:
            raise ConfigError("ffmpeg is not on PATH; install it (Debian: apt-get install -y ffmpeg)")
        problem = try_encoder(self.encoder)
        if problem is not None:
            raise SettingError(
                "encoder",
                f"{{encoder}} {self.encoder} cannot encode on this machine ({problem}); "
                f"libx264 works wherever Debian's ffmpeg is installed",
            )
        if self.preset is not None and (problem := try_encoder(self.encoder, preset=self.preset)) is not None:
            raise SettingError(
                "preset",
                f"{{preset}} {self.preset!r} is not a preset of {{encoder}} {self.encoder} ({problem})",
                also=("encoder",),
            )

    def process(self, video: Video) -> Video:
        if video.metadata is None:
            return video
        for clip in video.clips:
            self._transcode(video, clip)
        return video

    def _transcode(self, video: Video, clip: Clip) -> None:
        meta = video.metadata
        assert meta is not None
        timeout = self.timeout_s or ffmpeg_timeout(clip.num_frames / meta.fps, meta.width, meta.height, meta.fps)
        where = f"{video.source}: clip {clip.uuid}"
        try:
            buffer, problems = transcode_clip(
                video.path,
                clip.start_frame,
                clip.stop_frame,
                meta.fps_fraction,
                timeline=video.timeline,
                encoder=self.encoder,
                threads=self.encoder_threads or max(1, int(self.num_cpus_per_worker)),
                bit_rate=meta.bit_rate if self.use_input_bit_rate else None,
                with_audio=meta.audio_codec is not None,
                keyframe_interval=self.keyframe_interval,
                preset=self.preset,
                timeout=timeout,
            )
            frames = count_frames(buffer)
        except FFmpegError as exc:
            logger.error("%s: %s\n  command: %s", where, exc, exc.command_line)
            record_error(clip, self.name, str(exc), retry=exc.retryable)
            return
        except Exception as exc:  # e.g. a full disk under the scratch folder: this clip only
            logger.error("%s: %s", where, describe(exc))
            record_error(clip, self.name, describe(exc), retry=is_retryable(exc))
            return
        if frames == 0:
            start, end = clip.span
            reason = f"no frames could be decoded in this span of the source ({start:.2f}-{end:.2f} s)"
            record_error(clip, self.name, reason, retry=False)
            logger.warning("%s: %s", where, reason)
            return
        clip.buffer = buffer
        clip.decoded_frames = frames
        notes = []
        if frames < clip.num_frames:
            at = clip.span[0] + frames / meta.fps
            notes.append(f"source ends early at {at:.2f} s: {frames} of {clip.num_frames} frames decoded")
        if problems:
            notes.append(f"source has decode errors ({len(problems)} kinds, first: {problems[0]})")
        if notes:
            # The clip is kept (it may still be useful) but marked, so it is not taken as clean.
            record_error(clip, self.name, "; ".join(notes), retry=False)
            logger.warning("%s: %s", where, clip.errors[self.name])
