"""Source videos in object storage: a copy on the machine of each stage that reads the source (its
``reads`` names ``video.source``), gone once the last of them is done with the task.

Each task owns one name for its copy (``<part>of<parts>-<name>``): when a video becomes several tasks, its
copy is hard-linked under each task's name, so a task that lets go of its copy never pulls it from under
another. A task that arrives on a machine without its copy fetches it there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from vidcap.errors import SourceError
from vidcap.media.probe import source_fingerprint
from vidcap.paths import temp_name
from vidcap.storage import open_fs, process_alive, temp_folder, unreachable

if TYPE_CHECKING:
    from vidcap.data import Video

logger = logging.getLogger(__name__)

# Copies left by a killed run on another machine of a cluster are removed by a later run once this old.
STALE_S = 24 * 3600.0


def staging_root() -> Path:
    """This user's folder for source copies on this machine."""
    return temp_folder("sources")


def run_token() -> str:
    """Names this run's copies: unique, with the machine and pid of the process that found the videos."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return f"{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def staged_path(url: str, run: str) -> Path:
    """Where this run keeps its copy of ``url`` (the video's first and only task)."""
    digest = hashlib.sha1(url.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = PurePosixPath(url).name[-120:] or "video"
    return staging_root() / f"{run}-{digest}" / f"0of1-{name}"


def remove_stale() -> None:
    """Copies of runs found on this machine whose process is gone, or of any run long ago."""
    host = run_token().split(".", 1)[0]
    for entry in staging_root().iterdir():
        there, pid, *_ = [*entry.name.split("."), "", ""]
        killed_here = there == host and pid.isdigit() and not process_alive(int(pid))
        with contextlib.suppress(OSError):
            if killed_here or time.time() - entry.stat().st_mtime > STALE_S:
                shutil.rmtree(entry, ignore_errors=True)


def object_fingerprint(info: dict[str, Any]) -> dict[str, Any]:
    """Size and ETag of an object (from a listing or a HEAD): a source replaced in the bucket is done again."""
    return {"size": int(info.get("size") or 0), "etag": str(info.get("ETag") or info.get("mtime") or "")}


def remote_fingerprint(url: str) -> dict[str, Any]:
    """The object's fingerprint now; ``size`` -1 when it is gone."""
    fs, key = open_fs(url)
    try:
        fs.invalidate_cache(key)
        return object_fingerprint(fs.info(key))
    except FileNotFoundError:
        return {"size": -1}
    except Exception as exc:
        raise OSError(unreachable(url, exc)) from exc


def fingerprint(video: Video) -> dict[str, Any]:
    return remote_fingerprint(video.url) if video.url else source_fingerprint(video.path)


def ensure_local(video: Video) -> None:
    """This task's copy of its source on this machine (fetched whole, then renamed into place)."""
    if video.url is None:
        return
    # The name was given where the videos were found; the folder is this machine's.
    video.path = staging_root() / video.path.parent.name / video.path.name
    if video.path.is_file():
        return
    video.path.parent.mkdir(exist_ok=True)
    tmp = video.path.with_name(temp_name(video.path.name))
    try:
        fs, key = open_fs(video.url)
        fs.get_file(key, str(tmp))
        os.replace(tmp, video.path)
    except FileNotFoundError as exc:
        raise SourceError(f"{video.url} is no longer in the bucket") from exc
    except OSError:
        raise
    except Exception as exc:
        raise OSError(unreachable(video.url, exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def split_copies(video: Video, tasks: list[Video]) -> None:
    """Give each task of a video that became several its own name for the copy (a hard link)."""
    if video.url is None or len(tasks) < 2:
        return
    name = video.path.name.split("-", 1)[1]
    for task in tasks:
        task.path = video.path.with_name(f"{task.part}of{task.parts}-{name}")
        if video.path.is_file():
            with contextlib.suppress(OSError):  # then it is fetched again where it is needed
                os.link(video.path, task.path)
    release(video)


def release(video: Video) -> None:
    """Let go of this task's copy (and its folder, once no task's copy is left in it)."""
    if video.url is None:
        return
    video.path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        video.path.parent.rmdir()


def remove_copies(folders: set[str]) -> None:
    """Remove the named copy folders of a finished run on this machine (a Ray run does this on every node)."""
    root = staging_root()
    for name in folders:
        if name and "/" not in name and name not in (".", ".."):
            shutil.rmtree(root / name, ignore_errors=True)
