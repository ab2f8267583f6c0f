"""PreviewStage: a small animated WebP per window, for review by eye."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

from vidcap.data import Video, Window, record_error
from vidcap.errors import ConfigError, describe
from vidcap.media.encode import encode_webp, encode_webp_frames
from vidcap.media.ffmpeg import FFmpegError, ffmpeg_binary, ffmpeg_encoders, ffmpeg_timeout
from vidcap.paths import display_text
from vidcap.stages.base import Resources, Stage, require_range
from vidcap.windowing import WEBP_MAX_SIDE, preview_size

logger = logging.getLogger(__name__)

# Previews are for looking at: beyond 8K or 240 fps a value is a slip, not a wish.
MAX_HEIGHT = 4320
MAX_FPS = 240.0


@dataclass
class PreviewStage(Stage):
    target_fps: float = 1.0
    target_height: int = 240
    # 0 = lossless; 1-6 = lossy, higher spends more effort for smaller files.
    compression_level: int = 6
    quality: int = 50
    num_cpus_per_worker: float = 4.0
    verbose: bool = False
    # Seconds one preview encode may take before it counts as hung; None scales it with the window.
    timeout_s: float | None = None
    _from_frames: bool = field(default=False, init=False, repr=False)
    name: ClassVar[str] = "preview"
    reads: ClassVar[frozenset[str]] = frozenset({"window.mp4_bytes", "window.preview_frames"})
    runtime_fields: ClassVar[frozenset[str]] = Stage.runtime_fields | {"timeout_s"}

    def __post_init__(self) -> None:
        require_range("quality", self.quality, 0, 100, integer=True)
        require_range("compression_level", self.compression_level, 0, 6, integer=True)
        require_range("target_fps", self.target_fps, 1e-3, MAX_FPS)
        require_range("target_height", self.target_height, 16, MAX_HEIGHT, integer=True)
        require_range("num_cpus_per_worker", self.num_cpus_per_worker, 0.01, 1024)
        if self.timeout_s is not None:
            require_range("timeout_s", self.timeout_s, 0.1, 7 * 24 * 3600)

    @property
    def resources(self) -> Resources:
        # From frames preparation already decoded, a preview is one libwebp encode: one core, whatever the
        # threads ffmpeg is allowed for decoding a window mp4.
        return Resources(cpus=1.0 if self._from_frames else self.num_cpus_per_worker)

    def bind(self, stages: list[Stage]) -> None:
        from vidcap.stages.caption_preparation import CaptionPreparationStage

        prep = next((s for s in stages if isinstance(s, CaptionPreparationStage)), None)
        if prep is None:
            raise ConfigError("PreviewStage encodes windows: put a CaptionPreparationStage before it")
        # Preparation decodes each clip once anyway: it picks and scales the preview's frames on the way, so
        # the preview costs an encode, not a second decode of every window.
        prep.preview = (self.target_fps, self.target_height)
        self._from_frames = True

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
        options = {"compression_level": self.compression_level, "quality": self.quality, "threads": threads}
        if window.preview_frames is not None:
            return encode_webp_frames(window.preview_frames, fps=self.target_fps, repeats=window.preview_repeats,
                                      timeout=timeout, **options)  # fmt: skip
        assert window.mp4_bytes is not None
        return encode_webp(
            window.mp4_bytes, target_fps=self.target_fps, target_height=self.target_height, timeout=timeout, **options
        )

    def process(self, video: Video) -> Video:
        meta = video.metadata
        if meta is not None:
            if meta.fps < self.target_fps:
                logger.warning(
                    "%s: source is %.2f fps, below the preview's %.2f fps; previews repeat frames",
                    video.path, meta.fps, self.target_fps,
                )  # fmt: skip
            width, height = preview_size(meta.width, meta.height, self.target_height)
            if height < self.target_height:
                logger.warning(
                    "%s: previews are %dx%d, not %d px high: libwebp takes at most %d px a side",
                    display_text(str(video.path)), width, height, self.target_height, WEBP_MAX_SIDE,
                )  # fmt: skip
            if meta.height < self.target_height:
                logger.warning(
                    "%s: source is %d px high, below the preview's %d px; previews are upscaled",
                    video.path, meta.height, self.target_height,
                )  # fmt: skip
        threads = max(1, int(self.num_cpus_per_worker))
        for clip in video.clips:
            for window in clip.windows:
                if window.preview_frames is None and not window.mp4_bytes:
                    continue
                timeout = self.timeout_s or ffmpeg_timeout(window.num_frames / clip.fps)
                try:
                    window.webp_bytes = self.encode(window, threads, timeout)
                except FFmpegError as exc:
                    logger.error(
                        "%s: preview of clip %s window %d-%d failed\n  command: %s\n  ffmpeg said: %s",
                        video.path, clip.uuid, window.start_frame, window.end_frame,
                        exc.command_line, exc.output,
                    )  # fmt: skip
                    window.webp_bytes = None
                    # The window mp4 is vidcap's own: a failed encode is this machine's, worth a rerun.
                    record_error(window, self.name, str(exc), retry=True)
                except Exception as exc:  # e.g. no space for the temp files: this window only
                    logger.error("%s: preview of clip %s window %d-%d failed: %s", video.path, clip.uuid,
                                 window.start_frame, window.end_frame, describe(exc))  # fmt: skip
                    window.webp_bytes = None
                    record_error(window, self.name, describe(exc), retry=True)
                else:
                    if self.verbose:
                        logger.info(
                            "%s: preview %s %d-%d: %d bytes",
                            video.path, clip.uuid, window.start_frame, window.end_frame, len(window.webp_bytes),
                        )  # fmt: skip
        return video
