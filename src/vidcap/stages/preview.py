"""PreviewStage: a small animated WebP per window, for review by eye."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from vidcap.data import Video, Window, record_error
from vidcap.errors import ConfigError, describe
from vidcap.frames import FrameSpec, HeightSize
from vidcap.media.encode import encode_webp, encode_webp_frames
from vidcap.media.ffmpeg import FFmpegError, ffmpeg_binary, ffmpeg_encoders, ffmpeg_timeout
from vidcap.params import param
from vidcap.stages.base import Resources, Stage
from vidcap.windowing import WEBP_MAX_SIDE, preview_size

logger = logging.getLogger(__name__)

# Previews are for looking at: beyond 8K or 240 fps a value is a slip, not a wish.
MAX_HEIGHT = 4320
MAX_FPS = 240.0


PREVIEWS = "Previews"


@dataclass
class PreviewStage(Stage):
    """An animated WebP per window: frames picked as ffmpeg's fps filter picks them, from the window step's one
    decode of the clip (or, in a pipeline of yours that gives window mp4s, from those), one libwebp encode."""

    target_fps: float = param(
        1.0, flag="--preview-target-fps", low=1e-3, high=MAX_FPS, panel=PREVIEWS, help="Frames per second in previews."
    )
    target_height: int = param(
        240,
        flag="--preview-target-height",
        low=16,
        high=MAX_HEIGHT,
        integer=True,
        panel=PREVIEWS,
        help="Preview height in pixels; width keeps the aspect ratio.",
    )
    # 0 = lossless; 1-6 = lossy, higher spends more effort for smaller files.
    compression_level: int = param(
        6,
        flag="--preview-compression-level",
        low=0,
        high=6,
        integer=True,
        panel=PREVIEWS,
        help="libwebp compression level 0-6 (0 = lossless).",
    )
    quality: int = param(
        50, flag="--preview-quality", low=0, high=100, integer=True, panel=PREVIEWS, help="libwebp quality 0-100."
    )
    num_cpus_per_worker: float = param(
        4.0, low=0.01, high=1024, runtime=True, help="ffmpeg threads when a preview is made from a window mp4."
    )
    verbose: bool = param(False, runtime=True, help="Log every preview.")
    # Seconds one preview encode may take before it counts as hung; None scales it with the window.
    timeout_s: float | None = param(None, low=0.1, high=7 * 24 * 3600, runtime=True, help="Hung-encode limit.")
    name: ClassVar[str] = "preview"
    reads: ClassVar[frozenset[str]] = frozenset({"frames:preview", "window.mp4_bytes"})

    @property
    def frames(self) -> dict[str, FrameSpec]:
        return {"preview": FrameSpec("fps", self.target_fps, HeightSize(self.target_height))}

    def default_resources(self) -> Resources:
        # From frames already decoded, a preview is one libwebp encode: one core.
        return Resources(cpus=1.0)

    def bind(self, stages: list[Stage]) -> None:
        from vidcap.stages.caption_preparation import CaptionPreparationStage

        if not any(isinstance(s, CaptionPreparationStage) for s in stages[: stages.index(self)]):
            raise ConfigError("PreviewStage encodes windows: put a CaptionPreparationStage before it")

    def prepare(self) -> None:
        if ffmpeg_binary() is None:
            raise ConfigError("previews need ffmpeg on PATH; install it (Debian: apt-get install -y ffmpeg)")
        if "libwebp" not in ffmpeg_encoders():
            raise ConfigError(
                "previews need ffmpeg's libwebp encoder and this ffmpeg has none; "
                "install an ffmpeg built with libwebp (Debian's ffmpeg package has it) or drop --generate-previews"
            )

    def encode(self, window: Window, threads: int, timeout: float) -> bytes:
        """From the frames preparation picked (no decode), or else from the window's mp4."""
        options = {"compression_level": self.compression_level, "quality": self.quality}
        if (frames := window.frames.get("preview")) is not None:
            return encode_webp_frames(frames.frames, fps=self.target_fps, repeats=frames.repeats, **options)
        assert window.mp4_bytes is not None
        return encode_webp(window.mp4_bytes, target_fps=self.target_fps, target_height=self.target_height,
                           threads=threads, timeout=timeout, **options)  # fmt: skip

    def process(self, video: Video) -> Video:
        meta = video.metadata
        if meta is not None:
            if meta.fps < self.target_fps:
                logger.warning(
                    "%s: source is %.2f fps, below the preview's %.2f fps; previews repeat frames",
                    video.source, meta.fps, self.target_fps,
                )  # fmt: skip
            width, height = preview_size(meta.width, meta.height, self.target_height)
            if height < self.target_height:
                logger.warning(
                    "%s: previews are %dx%d, not %d px high: libwebp takes at most %d px a side",
                    video.source, width, height, self.target_height, WEBP_MAX_SIDE,
                )  # fmt: skip
            if meta.height < self.target_height:
                logger.warning(
                    "%s: source is %d px high, below the preview's %d px; previews are upscaled",
                    video.source, meta.height, self.target_height,
                )  # fmt: skip
        threads = max(1, int(self.num_cpus_per_worker))
        for clip in video.clips:
            for window in clip.windows:
                if "preview" not in window.frames and not window.mp4_bytes:
                    continue
                timeout = self.timeout_s or ffmpeg_timeout(window.num_frames / clip.fps)
                try:
                    window.webp_bytes = self.encode(window, threads, timeout)
                except FFmpegError as exc:
                    logger.error(
                        "%s: preview of clip %s window %d-%d failed\n  command: %s\n  ffmpeg said: %s",
                        video.source, clip.uuid, window.start_frame, window.end_frame,
                        exc.command_line, exc.output,
                    )  # fmt: skip
                    window.webp_bytes = None
                    # The window mp4 is vidcap's own: a failed encode is this machine's, worth a rerun.
                    record_error(window, self.name, str(exc), retry=True)
                except Exception as exc:  # e.g. no space for the temp files: this window only
                    logger.error("%s: preview of clip %s window %d-%d failed: %s", video.source, clip.uuid,
                                 window.start_frame, window.end_frame, describe(exc))  # fmt: skip
                    window.webp_bytes = None
                    record_error(window, self.name, describe(exc), retry=True)
                else:
                    if self.verbose:
                        logger.info(
                            "%s: preview %s %d-%d: %d bytes",
                            video.source, clip.uuid, window.start_frame, window.end_frame, len(window.webp_bytes),
                        )  # fmt: skip
        return video
