"""PreviewStage: a small animated WebP per window, for review by eye."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from vidcap.data import Video
from vidcap.errors import describe
from vidcap.media.encode import encode_webp
from vidcap.media.ffmpeg import FFmpegError, ffmpeg_binary, ffmpeg_encoders
from vidcap.stages.base import ConfigError, Resources, Stage, require_range

logger = logging.getLogger(__name__)


@dataclass
class PreviewStage(Stage):
    target_fps: float = 1.0
    target_height: int = 240
    # 0 = lossless; 1-6 = lossy, higher spends more effort for smaller files.
    compression_level: int = 6
    quality: int = 50
    num_cpus_per_worker: float = 4.0
    verbose: bool = False
    name: ClassVar[str] = "preview"

    def __post_init__(self) -> None:
        require_range("preview quality", self.quality, 0, 100)
        require_range("preview compression_level", self.compression_level, 0, 6)
        require_range("preview target_fps", self.target_fps, 1e-3)
        require_range("preview target_height", self.target_height, 2)
        require_range("num_cpus_per_worker", self.num_cpus_per_worker, 0.01)

    @property
    def resources(self) -> Resources:
        return Resources(cpus=self.num_cpus_per_worker)

    def bind(self, stages: list[Stage]) -> None:
        from vidcap.stages.caption_preparation import CaptionPreparationStage

        prep = next((s for s in stages if isinstance(s, CaptionPreparationStage)), None)
        if prep is None or not prep.keep_mp4:
            raise ConfigError(
                "PreviewStage encodes window mp4s: put a CaptionPreparationStage(keep_mp4=True) before it"
            )

    def prepare(self) -> None:
        if ffmpeg_binary() is None:
            raise ConfigError("previews need ffmpeg on PATH; install it (Debian: apt-get install -y ffmpeg)")
        if "libwebp" not in ffmpeg_encoders():
            raise ConfigError(
                "previews need ffmpeg's libwebp encoder and this ffmpeg has none; "
                "install an ffmpeg built with libwebp (Debian's ffmpeg package has it) or drop --generate-previews"
            )

    def process(self, video: Video) -> Video:
        meta = video.metadata
        if meta is not None:
            if meta.fps < self.target_fps:
                logger.warning(
                    "%s: source is %.2f fps, below the preview's %.2f fps; previews repeat frames",
                    video.path, meta.fps, self.target_fps,
                )  # fmt: skip
            if meta.height < self.target_height:
                logger.warning(
                    "%s: source is %d px high, below the preview's %d px; previews are upscaled",
                    video.path, meta.height, self.target_height,
                )  # fmt: skip
        threads = max(1, int(self.num_cpus_per_worker))
        for clip in video.clips:
            for window in clip.windows:
                if not window.mp4_bytes:
                    continue
                try:
                    window.webp_bytes = encode_webp(
                        window.mp4_bytes,
                        target_fps=self.target_fps,
                        target_height=self.target_height,
                        compression_level=self.compression_level,
                        quality=self.quality,
                        threads=threads,
                    )
                except FFmpegError as exc:
                    logger.error(
                        "%s: preview of clip %s window %d-%d failed\n  command: %s\n  ffmpeg said: %s",
                        video.path, clip.uuid, window.start_frame, window.end_frame,
                        exc.command_line, exc.output,
                    )  # fmt: skip
                    window.webp_bytes = None
                    window.errors[self.name] = str(exc)
                except Exception as exc:  # e.g. no space for the temp files: this window only
                    logger.error("%s: preview of clip %s window %d-%d failed: %s", video.path, clip.uuid,
                                 window.start_frame, window.end_frame, describe(exc))  # fmt: skip
                    window.webp_bytes = None
                    window.errors[self.name] = describe(exc)
                else:
                    if self.verbose:
                        logger.info(
                            "%s: preview %s %d-%d: %d bytes",
                            video.path, clip.uuid, window.start_frame, window.end_frame, len(window.webp_bytes),
                        )  # fmt: skip
        return video
