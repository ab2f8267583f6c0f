"""VideoReaderStage: find the input videos, then probe each one."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from vidcap.data import Video
from vidcap.media.probe import VideoReadError, probe_video
from vidcap.paths import sanitize_relative
from vidcap.stages.base import ConfigError, Reader

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


@dataclass
class VideoReaderStage(Reader):
    """Input is a video file, a folder (searched recursively) or a .txt list of paths."""

    input_path: str | Path
    # Folders never searched, e.g. an OUTPUT inside the input folder.
    exclude: list[str | Path] = field(default_factory=list)
    name: ClassVar[str] = "video_reader"

    def discover(self) -> list[Video]:
        root = Path(self.input_path).expanduser()
        if not root.exists():
            raise ConfigError(f"input {root} does not exist")
        if root.is_dir():
            return _unique_names(self._from_dir(root))
        if root.suffix.lower() == ".txt":
            return _unique_names(self._from_list(root))
        return [Video(path=root.resolve(), relative_path=sanitize_relative(root.name))]

    def _from_dir(self, root: Path) -> list[Video]:
        excluded = [Path(p).resolve() for p in self.exclude]
        videos = []
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath).resolve()
            dirnames[:] = sorted(d for d in dirnames if (here / d) not in excluded and not d.startswith("."))
            for name in sorted(filenames):
                if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith("."):
                    path = Path(dirpath) / name
                    rel = path.relative_to(root).as_posix()
                    videos.append(Video(path=path.resolve(), relative_path=sanitize_relative(rel)))
        return videos

    def _from_list(self, listing: Path) -> list[Video]:
        videos = []
        base = listing.parent.resolve()
        for line in listing.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line).expanduser()
            path = (base / path).resolve() if not path.is_absolute() else path.resolve()
            rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.as_posix()
            videos.append(Video(path=path, relative_path=sanitize_relative(rel)))
        return videos

    def process(self, video: Video) -> Video:
        """Probe the video; an unreadable one is recorded with the reason and passes on empty."""
        try:
            video.metadata = probe_video(video.path)
        except VideoReadError as exc:
            logger.error("%s: cannot read video: %s", video.path, exc)
            video.errors[self.name] = str(exc)
        return video


def _unique_names(videos: list[Video]) -> list[Video]:
    """Two inputs that sanitise to the same name (``a:b.mp4`` and ``a_b.mp4``, or list entries from different
    folders) would share a marker: suffix the later ones."""
    seen: set[str] = set()
    for video in videos:
        if video.relative_path in seen:
            digest = hashlib.sha1(str(video.path).encode()).hexdigest()[:8]
            stem, dot, ext = video.relative_path.rpartition(".")
            video.relative_path = f"{stem}-{digest}.{ext}" if dot else f"{ext}-{digest}"
        seen.add(video.relative_path)
    return videos
