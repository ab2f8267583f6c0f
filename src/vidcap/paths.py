"""The output layout under OUTPUT, in one place.

Only clip uuids and sanitised relative paths ever become file names, so nothing
written can land outside OUTPUT.
"""

from __future__ import annotations

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
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
