"""vidcap: videos in, captioned clip windows with WebP previews out."""

from vidcap.data import Clip, Video, VideoMetadata, Window
from vidcap.paths import preview_path
from vidcap.pipeline import Pipeline
from vidcap.report import RunResult

__all__ = ["Clip", "Pipeline", "RunResult", "Video", "VideoMetadata", "Window", "preview_path"]
__version__ = "0.1.0"
