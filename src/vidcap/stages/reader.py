"""VideoReaderStage: find the input videos, then probe each one.

Symlinked folders are followed (each real folder once, so a link loop ends
there); each real file is one video however many paths lead to it (a link
beside its target, a list naming it twice). A link that leads nowhere or into
a loop is reported as that entry's failure; the run goes on.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vidcap import paths
from vidcap.data import Video, record_error
from vidcap.errors import ConfigError, is_retryable
from vidcap.media.probe import VideoReadError, probe_source
from vidcap.media.sources import fingerprint, object_fingerprint, remove_stale, run_token, staged_path
from vidcap.paths import display_text, distinct_name, sanitize_relative
from vidcap.stages.base import Reader
from vidcap.storage import is_url, join, local_path, open_fs, unreachable

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts", ".m2ts", ".mts")


def _is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")


def _unreachable(path: Path) -> str | None:
    """Why ``path`` cannot be opened as a file (a broken link, a link loop), or None."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop: the link leads back to itself"
        if path.is_symlink():
            return f"broken symbolic link (to {display_text(os.readlink(path))})"
        return f"cannot open file: {exc.strerror or exc}"
    return None


def is_vidcap_output(folder: Path) -> bool:
    """A folder a vidcap run wrote into: its state folder, its lock, or its markers beside its metas."""
    try:
        return (
            (folder / paths.STATE_DIR).is_dir()
            or (folder / paths.LOCK_FILE).is_file()
            or ((folder / paths.MARKERS_DIR).is_dir() and (folder / paths.METAS_DIR).is_dir())
        )
    except OSError:
        return False


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return None


@dataclass
class VideoReaderStage(Reader):
    """Input is a video file, a folder (searched recursively) or a .txt list of paths."""

    input_path: str | Path
    # Folders never searched, e.g. an OUTPUT inside the input folder.
    exclude: list[str | Path] = field(default_factory=list)
    name: ClassVar[str] = "video_reader"
    reads: ClassVar[frozenset[str]] = frozenset({"video.source"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.input_path = local_path(self.input_path)
        if not isinstance(self.input_path, str | os.PathLike):
            raise TypeError(
                f"VideoReaderStage input_path must be a path (str or pathlib.Path), got {self.input_path!r}"
            )

    def keep_out(self, folders: list[Path | str]) -> None:
        if is_url(self.input_path):
            given = str(self.input_path).rstrip("/") + "/"
            for url in (f for f in folders if is_url(f)):
                if given.startswith(str(url).rstrip("/") + "/"):
                    raise ConfigError(
                        f"input {self.input_path} is inside {url}, where vidcap keeps its own results; vidcap does "
                        "not take its outputs as inputs: point INPUT at your videos"
                    )
            self.exclude = [*self.exclude, *folders]
            return
        root = Path(self.input_path).expanduser()
        if root.exists():
            real = root.resolve()
            for folder in (Path(f) for f in folders if not is_url(f)):
                if real == folder.resolve() or real.is_relative_to(folder.resolve()):
                    raise ConfigError(
                        f"input {display_text(str(root))} is inside {folder}, where vidcap keeps its own results; "
                        f"vidcap does not take its outputs as inputs: point INPUT at your videos"
                    )
        self.exclude = [*self.exclude, *folders]

    def discover(self) -> list[Video]:
        if is_url(self.input_path):
            return _unique_names(self._from_bucket(str(self.input_path).rstrip("/")))
        root = Path(self.input_path).expanduser()
        if not root.exists() and not root.is_symlink():
            raise ConfigError(f"input {display_text(str(root))} does not exist")
        if root.is_dir():
            found = self._from_dir(root)
        elif root.suffix.lower() == ".txt":
            found = self._from_list(root)
        else:
            found = [(root, root.name)]
        return _unique_names(self._once_each(found))

    def _excluded(self) -> list[Path]:
        return [Path(p).resolve() for p in self.exclude if not is_url(p)]

    def _from_bucket(self, url: str) -> list[Video]:
        """Every video object under a prefix (or one object, or a .txt list of URLs); vidcap OUTPUTs inside
        the prefix and hidden folders are skipped, as on a disk."""
        fs, base = open_fs(url)
        infos: dict[str, dict[str, Any]] = {}  # what the listing says of each object: its fingerprint, as found
        try:
            if fs.isfile(base):
                if base.lower().endswith(".txt"):
                    entries = _remote_list(fs.cat_file(base).decode("utf-8", "replace"), url.rsplit("/", 1)[0])
                else:
                    entries, infos = [(url, base.rsplit("/", 1)[-1])], {url: fs.info(base)}
            elif fs.isdir(base):
                found = {k[len(base) + 1 :]: v for k, v in fs.find(base, detail=True).items()}
                infos = {join(url, rel): v for rel, v in found.items()}
                entries = self._bucket_videos(url, list(found))
            elif not fs.exists(base.split("/", 1)[0]):
                raise ConfigError(f"cannot use input {url}: bucket {base.split('/', 1)[0]} does not exist")
            else:
                raise ConfigError(f"input {url} does not exist")
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(unreachable(url, exc)) from exc
        remove_stale()
        run = run_token()
        videos, seen = [], set()
        for source, rel in entries:
            if source not in seen:
                seen.add(source)
                video = Video(path=staged_path(source, run), relative_path=sanitize_relative(rel), url=source)
                if source in infos:
                    video.fingerprint = object_fingerprint(infos[source])
                videos.append(video)
        return videos

    def _bucket_videos(self, url: str, rels: list[str]) -> list[tuple[str, str]]:
        excluded = [str(e).rstrip("/") + "/" for e in self.exclude if is_url(e)]
        outputs = {r.rsplit("/", 1)[0] + "/" for r in rels if r.endswith("/" + paths.LOCK_FILE)}
        outputs |= {r.split("/" + paths.STATE_DIR + "/", 1)[0] + "/" for r in rels if "/" + paths.STATE_DIR + "/" in r}
        for folder in sorted(outputs):
            logger.warning("%s: skipped, it is a vidcap OUTPUT (its clips are vidcap's own, not new videos)",
                           join(url, folder))  # fmt: skip
        found = []
        for rel in sorted(rels):
            source = join(url, rel)
            parts = rel.split("/")
            if any(p.startswith(".") for p in parts[:-1]) or not _is_video_name(parts[-1]):
                continue
            if any(source.startswith(e) for e in excluded) or any(rel.startswith(o) for o in outputs):
                continue
            found.append((source, rel))
        return found

    def _from_dir(self, root: Path) -> list[tuple[Path, str]]:
        excluded = self._excluded()
        seen_dirs: set[tuple[int, int]] = set()
        found: list[tuple[Path, str]] = []
        own: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            here = Path(dirpath)
            st = here.stat()
            if (st.st_dev, st.st_ino) in seen_dirs:  # a folder reached again through a link: once is enough
                logger.info("%s: already searched (a symbolic link leads here again)", display_text(dirpath))
                dirnames[:] = []
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            kept = []
            for d in sorted(dirnames):
                sub = here / d
                if d.startswith("."):
                    continue
                if _resolved(sub) in excluded:
                    own.append(sub.relative_to(root).as_posix() + "/")
                    continue
                if is_vidcap_output(sub):
                    logger.warning("%s: skipped, it is a vidcap OUTPUT (its clips are vidcap's own, not new videos)",
                                   display_text(str(sub)))  # fmt: skip
                    continue
                if sub.is_symlink():
                    logger.info("following symbolic link %s -> %s", display_text(str(sub)),
                                display_text(os.readlink(sub)))  # fmt: skip
                kept.append(d)
            # Real folders before linked ones: a folder reached both ways keeps its real name.
            dirnames[:] = sorted(kept, key=lambda d: ((here / d).is_symlink(), d))
            for name in sorted(filenames):
                if _is_video_name(name):
                    path = here / name
                    found.append((path, path.relative_to(root).as_posix()))
        if own:
            logger.info("%s: vidcap's own folders are not searched for videos: %s", display_text(str(root)),
                        ", ".join(own))  # fmt: skip
        return found

    def _from_list(self, listing: Path) -> list[tuple[Path, str]]:
        found = []
        base = listing.parent.resolve()
        # Names that are not UTF-8 survive as surrogates, as os.listdir gives them.
        text = listing.read_bytes().decode("utf-8", "surrogateescape")
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line).expanduser()
            path = path if path.is_absolute() else base / path
            path = Path(os.path.normpath(path))
            rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.as_posix()
            found.append((path, rel))
        return found

    def _once_each(self, found: list[tuple[Path, str]]) -> list[Video]:
        """One Video per real file; links that lead nowhere become videos that failed with the reason."""
        excluded = self._excluded()
        videos: list[Video] = []
        by_file: dict[tuple[int, int], int] = {}
        linked: dict[tuple[int, int], bool] = {}
        for path, rel in found:
            problem = _unreachable(path)
            if problem is not None:
                video = Video(path=path.absolute(), relative_path=sanitize_relative(rel))
                record_error(video, self.name, problem, retry=False)
                videos.append(video)
                continue
            real = path.resolve()
            if any(real == ex or real.is_relative_to(ex) for ex in excluded):
                logger.warning("%s: skipped, it is one of vidcap's own outputs", display_text(str(path)))
                continue
            st = real.stat()
            key = (st.st_dev, st.st_ino)
            video = Video(path=real, relative_path=sanitize_relative(rel))
            if key not in by_file:
                by_file[key], linked[key] = len(videos), path.is_symlink()
                videos.append(video)
                continue
            first = videos[by_file[key]]
            if linked[key] and not path.is_symlink():  # keep the name that is not a link
                videos[by_file[key]], linked[key] = video, False
                first, video = video, first
            logger.info("%s is the same file as %s: processed once, as %s", video.relative_path,
                        first.relative_path, first.relative_path)  # fmt: skip
        return videos

    def process(self, video: Video) -> Video:
        """Probe the video; an unreadable one is recorded with the reason and passes on empty."""
        if video.errors:
            return video  # failed while it was being found (a broken link)
        # Taken before the probe: a file replaced after this is noticed when the video is marked done.
        if video.fingerprint is None:  # a source in object storage has its fingerprint from the listing
            video.fingerprint = fingerprint(video)
        try:
            video.metadata, video.timeline = probe_source(video.path)
        except VideoReadError as exc:
            logger.error("%s: cannot read video: %s", video.source, exc)
            record_error(video, self.name, str(exc), retry=is_retryable(exc))
        return video


def _remote_list(text: str, folder: str) -> list[tuple[str, str]]:
    """A .txt list in object storage: URLs, or keys relative to the list's own prefix."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        source = line if is_url(line) else join(folder, line.lstrip("/"))
        rel = source[len(folder) + 1 :] if source.startswith(folder + "/") else source.split("://", 1)[1]
        found.append((source, rel))
    return found


def _unique_names(videos: list[Video]) -> list[Video]:
    """Two inputs that sanitise to the same name (``bad\\xff.mp4`` and a file really named so, or list entries
    from different folders) would share a marker: suffix the later ones."""
    seen: set[str] = set()
    for video in videos:
        if video.relative_path in seen:
            video.relative_path = distinct_name(video.relative_path, video.source)
        seen.add(video.relative_path)
    return videos
