"""The output layout under OUTPUT, in one place: names only, no I/O.

Only clip uuids and sanitised relative paths ever become file names, so nothing
written can land outside OUTPUT.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path, PurePosixPath

CLIPS_DIR = "clips"
FILTERED_DIR = "filtered_clips"
PREVIEWS_DIR = "previews"
METAS_DIR = "metas/v0"
MARKERS_DIR = "processed_videos"
CHUNKS_DIR = "processed_clip_chunks"
WINDOWS_PARQUET = "windows.parquet"
SUMMARY_JSON = "summary.json"
GALLERY_HTML = "index.html"
# vidcap's own state: the journal of files it wrote, and scratch space for ffmpeg.
STATE_DIR = ".vidcap"
JOURNAL = f"{STATE_DIR}/journal"
SCRATCH_DIR = f"{STATE_DIR}/tmp"
TMP_SUFFIX = ".vidcap-tmp"
LOCK_FILE = ".vidcap.lock"
# Folders vidcap owns under OUTPUT: never searched for input videos, never symlinks.
MANAGED_DIRS = (CLIPS_DIR, FILTERED_DIR, PREVIEWS_DIR, "metas", MARKERS_DIR, CHUNKS_DIR, STATE_DIR)
# Files at OUTPUT's top that vidcap rewrites on every run.
RUN_FILES = (WINDOWS_PARQUET, SUMMARY_JSON, GALLERY_HTML)

# One file name may hold at most this many bytes on common file systems (ext4, xfs, btrfs).
NAME_MAX = 255

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The names vidcap gives the files it writes per clip: the only ones its sweep may ever remove.
ARTIFACT_NAMES = re.compile(
    rf"^(?:(?:{CLIPS_DIR}|{FILTERED_DIR})/{_UUID}\.mp4|{PREVIEWS_DIR}/{_UUID}/\d+_\d+\.webp|{re.escape(METAS_DIR)}/{_UUID}\.json"
    rf"|{CHUNKS_DIR}/.+_\d+\.json)$"
)


def _checked_uuid(clip_uuid: str) -> str:
    # Raises on anything that is not a uuid, e.g. "../x".
    return str(uuid.UUID(clip_uuid))


def clip_path(output: Path, clip_uuid: str, *, filtered: bool = False) -> Path:
    """Where a clip goes: clips/, or filtered_clips/ when a filter took it out."""
    return Path(output) / (FILTERED_DIR if filtered else CLIPS_DIR) / f"{_checked_uuid(clip_uuid)}.mp4"


def preview_path(output: Path | str, clip_uuid: str, start_frame: int, end_frame: int) -> Path:
    """Where the WebP preview of one window lives."""
    return Path(output) / PREVIEWS_DIR / _checked_uuid(clip_uuid) / f"{int(start_frame)}_{int(end_frame)}.webp"


def meta_path(output: Path, clip_uuid: str) -> Path:
    return Path(output) / METAS_DIR / f"{_checked_uuid(clip_uuid)}.json"


def display_text(text: str) -> str:
    """``text`` as valid Unicode: bytes of a file name that are not UTF-8 (kept by Python as surrogates)
    become ``\\xff`` escapes, so JSON, parquet and logs can hold every name."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sanitize_relative(relative_path: str) -> str:
    """A relative path that stays inside its folder: no root, '..' or '.'; valid Unicode.

    Backslashes and colons are ordinary characters in POSIX names and are kept.
    """
    parts = [p for p in PurePosixPath(display_text(relative_path)).parts if p not in ("", ".", "..", "/")]
    if not parts:
        raise ValueError(f"empty relative path from {display_text(relative_path)!r}")
    return "/".join(parts)


def _fit(name: str, suffix: str) -> str:
    """``name + suffix``, shortened with a digest of the whole name when it would exceed NAME_MAX bytes."""
    if len((name + suffix).encode()) <= NAME_MAX:
        return name + suffix
    digest = hashlib.sha1(name.encode()).hexdigest()[:16]
    room = NAME_MAX - len(suffix.encode()) - len(digest) - 1
    head = name.encode()[:room].decode("utf-8", "ignore")
    return f"{head}~{digest}{suffix}"


_JSON_DIR = re.compile(r"\.json(\.d)*$")


def marker_relative(relative_path: str, top: str = MARKERS_DIR, suffix: str = ".json") -> str:
    """``processed_videos/<relative_path>.json``, made injective and legal.

    A folder named like a marker (``a.mp4.json/``) would collide with the marker
    of ``a.mp4``: such folder names get ``.d`` appended. Names too long for one
    more suffix are shortened with a digest.
    """
    *folders, name = sanitize_relative(relative_path).split("/")
    folders = [_fit(f, ".d") if _JSON_DIR.search(f) else f for f in folders]
    return "/".join([top, *folders, _fit(name, suffix)])


def chunk_relative(relative_path: str, chunk: int) -> str:
    """``processed_clip_chunks/<relative_path>_<chunk>.json``: NeMo Curator's summary of one chunk of clips."""
    return marker_relative(relative_path, CHUNKS_DIR, f"_{int(chunk)}.json")


def distinct_name(relative_path: str, source: str) -> str:
    """``relative_path`` with a digest of ``source`` before its extension (``a.mp4`` -> ``a-1f2e3d4c.mp4``): a
    name of its own for a video whose usual name another source already holds."""
    digest = hashlib.sha1(source.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    stem, dot, ext = relative_path.rpartition(".")
    return f"{stem}-{digest}.{ext}" if dot and "/" not in ext else f"{relative_path}-{digest}"


def marker_path(output: Path, relative_path: str) -> Path:
    return Path(output) / marker_relative(relative_path)


def temp_name(final_name: str) -> str:
    """A hidden temp file name beside ``final_name`` that always fits NAME_MAX."""
    head = final_name.encode()[:100].decode("utf-8", "ignore")
    return f".{head}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
