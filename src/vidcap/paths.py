"""The output layout under OUTPUT, in one place.

Only clip uuids and sanitised relative paths ever become file names, so nothing
written can land outside OUTPUT.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from pathlib import Path, PurePosixPath

CLIPS_DIR = "clips"
PREVIEWS_DIR = "previews"
METAS_DIR = "metas/v0"
MARKERS_DIR = "processed_videos"
WINDOWS_PARQUET = "windows.parquet"
SUMMARY_JSON = "summary.json"
GALLERY_HTML = "index.html"
TMP_SUFFIX = ".vidcap-tmp"
LOCK_FILE = ".vidcap.lock"

# Open lock files of the outputs this process writes to (released with the process, even on kill -9).
_LOCKS: dict[Path, int] = {}


def _checked_uuid(clip_uuid: str) -> str:
    # Raises on anything that is not a uuid, e.g. "../x".
    return str(uuid.UUID(clip_uuid))


def clip_path(output: Path, clip_uuid: str) -> Path:
    return Path(output) / CLIPS_DIR / f"{_checked_uuid(clip_uuid)}.mp4"


def preview_path(output: Path | str, clip_uuid: str, start_frame: int, end_frame: int) -> Path:
    """Where the WebP preview of one window lives."""
    return Path(output) / PREVIEWS_DIR / _checked_uuid(clip_uuid) / f"{int(start_frame)}_{int(end_frame)}.webp"


def meta_path(output: Path, clip_uuid: str) -> Path:
    return Path(output) / METAS_DIR / f"{_checked_uuid(clip_uuid)}.json"


def sanitize_relative(relative_path: str) -> str:
    """A relative path that stays inside its folder: no root, drive, '..' or '.'."""
    parts = [p for p in PurePosixPath(relative_path.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    parts = [p.replace(":", "_") for p in parts]
    if not parts:
        raise ValueError(f"empty relative path from {relative_path!r}")
    return "/".join(parts)


def marker_path(output: Path, relative_path: str) -> Path:
    return Path(output) / MARKERS_DIR / f"{sanitize_relative(relative_path)}.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file.

    The data is flushed to disk before the rename, so a file under its final
    name is never partial, and a marker written after its files never points
    at half-written data. (The folder itself is not synced: after a power cut a
    rename may be lost, which resume sees as a missing file and redoes.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def lock_output(output: Path) -> bool:
    """Take OUTPUT for this process; False when another live run holds it."""
    key = Path(output).resolve()
    if key in _LOCKS:
        return True
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _LOCKS[key] = fd
    return True


def unlock_output(output: Path) -> None:
    fd = _LOCKS.pop(Path(output).resolve(), None)
    if fd is not None:
        os.close(fd)
