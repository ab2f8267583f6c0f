"""OUTPUT as vidcap uses it: checked once, locked, written atomically, every file it writes on record.

The record (``.vidcap/journal*``) is what lets vidcap clean up after a killed
run without ever touching a file it did not write: the sweep removes only
files that are in the journal, carry vidcap's own names, and no finished video
owns. Each process appends to its own journal file (Ray workers may run on
other nodes); the driver folds them into one at the end of the run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from vidcap import paths
from vidcap.errors import ConfigError
from vidcap.media.scratch import SCRATCH_ENV

logger = logging.getLogger(__name__)

_TEMP = re.compile(r"^\..*" + re.escape(paths.TMP_SUFFIX) + "$")

# Open lock files of the outputs this process writes to (released with the process, even on kill -9).
_LOCKS: dict[Path, int] = {}


class ForeignFileError(OSError):
    """A file vidcap would write is already there and vidcap did not write it (a NeMo Curator run's marker in
    the same OUTPUT, say): it is left as it is. Moving it away and rerunning fixes it."""

    retryable = True

    def __init__(self, path: Path | str) -> None:
        super().__init__(errno.EEXIST, f"{path} exists and was not written by vidcap; it is left as it is: move it "
                         "away (or choose another OUTPUT) and rerun")  # fmt: skip


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file.

    The data is flushed to disk before the rename, so a file under its final
    name is never partial. The file's mode follows the umask, like any file a
    program creates. A symlink at ``path`` is replaced, never followed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / paths.temp_name(path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unlinked(fd: int) -> bool:
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


class OutputDir:
    """One OUTPUT folder. ``open`` on the driver before any work; ``attach`` in a worker process."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._real = Path(os.path.realpath(self.root))
        self._journal: int | None = None
        self._journal_lock = threading.Lock()
        self._safe_dirs: set[Path] = set()
        # What the journals say vidcap wrote, read again only when a file to be written is already there.
        self._known: set[str] = set()

    def __getstate__(self) -> dict[str, object]:
        # Sent to other processes (Ray) without its open file or lock.
        return {"root": self.root, "_real": self._real}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["root"])  # type: ignore[misc]

    # -- checks, done once before any work -----------------------------------------------

    def check(self) -> None:
        """OUTPUT can be used: a folder (or creatable), writable, and its own folders are not symlinks."""
        existing = next(p for p in [self.root, *self.root.parents] if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"cannot use output {self.root}: {existing} is a file, not a folder")
        for name in (*paths.MANAGED_DIRS, paths.METAS_DIR):
            folder = self.root / name
            if folder.is_symlink():
                raise ConfigError(
                    f"{folder} is a symbolic link (to {os.readlink(folder)}); vidcap writes and cleans up only "
                    f"real folders inside OUTPUT: replace the link with a folder or choose another OUTPUT"
                )
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"{folder} is a file; vidcap needs that name for a folder: move it away")

    def open(self) -> None:
        """Check, create, lock; then clear what a killed run left (temp files, scratch)."""
        self.check()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._real = Path(os.path.realpath(self.root))
            probe = self.root / paths.temp_name("write-test")
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"output {self.root} is not writable: {exc.strerror or exc}") from exc
        if not self.lock():
            raise ConfigError(f"another vidcap run is writing to {self.root}; wait for it or use another OUTPUT")
        self.remove_temp_files()
        self.reset_scratch()

    def lock(self) -> bool:
        """Take OUTPUT for this process; False when another live run holds it."""
        key = self._real
        if key in _LOCKS:
            return True
        fd = os.open(key / paths.LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _LOCKS[key] = fd
        return True

    def unlock(self) -> None:
        self.close_journal()
        fd = _LOCKS.pop(self._real, None)
        if fd is not None:
            os.close(fd)

    # -- writing ---------------------------------------------------------------------------

    def _inside(self, folder: Path) -> None:
        """Refuse to write through a symlink that leads out of OUTPUT."""
        if folder in self._safe_dirs:
            return
        real = Path(os.path.realpath(folder))
        if real != self._real and not real.is_relative_to(self._real):
            raise OSError(f"refusing to write to {folder}: it leads out of OUTPUT (to {real})")
        self._safe_dirs.add(folder)

    def write(self, files: Iterable[tuple[str, bytes]]) -> dict[str, int]:
        """Write ``(relative path, bytes)`` pairs atomically; each is on the journal before it exists.

        Returns the size of each file written, keyed by its relative path.
        """
        files = list(files)
        for rel, _ in files:
            if os.path.lexists(self.root / rel) and not self._wrote(rel):
                raise ForeignFileError(self.root / rel)
        self.record(rel for rel, _ in files)
        sizes: dict[str, int] = {}
        for rel, data in files:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            self._inside(path.parent)
            atomic_write(path, data)
            sizes[rel] = len(data)
        return sizes

    def _wrote(self, rel: str) -> bool:
        """Whether vidcap wrote ``rel`` (this run, in any process, or an earlier run): the journals say."""
        if rel not in self._known:
            self._known = self.written()
        return rel in self._known

    def record(self, rels: Iterable[str]) -> None:
        lines = "".join(json.dumps(rel, ensure_ascii=True) + "\n" for rel in rels).encode()
        with self._journal_lock:
            if self._journal is not None and _unlinked(self._journal):
                # OUTPUT was removed under the run: a new journal, so what is written from now on is known.
                os.close(self._journal)
                self._journal = None
            if self._journal is None:
                folder = self.root / paths.STATE_DIR
                folder.mkdir(parents=True, exist_ok=True)
                self._inside(folder)
                name = folder / f"journal-{uuid.uuid4().hex[:12]}"
                self._journal = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
            os.write(self._journal, lines)
            os.fsync(self._journal)

    def close_journal(self) -> None:
        with self._journal_lock:
            if self._journal is not None:
                os.close(self._journal)
                self._journal = None

    # -- what vidcap wrote -------------------------------------------------------------------

    def _journal_files(self) -> list[Path]:
        folder = self.root / paths.STATE_DIR
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.name == "journal" or p.name.startswith("journal-"))

    def written(self) -> set[str]:
        """Every relative path vidcap has recorded writing to (and not yet folded away)."""
        out: set[str] = set()
        for path in self._journal_files():
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                logger.warning("cannot read %s: %s", path, exc)
                continue
            for line in text.splitlines():
                with contextlib.suppress(ValueError):
                    rel = json.loads(line)
                    if isinstance(rel, str):
                        out.add(rel)
        return out

    def fold_journal(self) -> None:
        """Replace every journal file by one that lists what vidcap wrote and is still there."""
        self.close_journal()
        keep = {rel for rel in self.written() if (self.root / rel).is_file()}
        old = self._journal_files()
        text = "".join(json.dumps(rel, ensure_ascii=True) + "\n" for rel in sorted(keep)).encode()
        target = self.root / paths.JOURNAL
        if not target.is_file() or target.read_bytes() != text:
            atomic_write(target, text)
        for path in old:
            if path.name != "journal":
                path.unlink(missing_ok=True)

    # -- what is there (the same calls as BucketOutput's) -----------------------------------------

    def confirm(self) -> None:
        """Still this run's OUTPUT: an flock is held until the process ends."""

    @property
    def url(self) -> str:
        return str(self.root)

    def refresh(self) -> None:
        """A folder is always current."""

    def size(self, rel: str) -> int:
        try:
            return (self.root / rel).stat().st_size
        except OSError:
            return -1

    def read(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def files(self, top: str) -> list[str]:
        """Files under OUTPUT/``top``, relative to OUTPUT, never through a symlink."""
        folder = self.root / top
        if not folder.is_dir() or folder.is_symlink():
            return []
        found = []
        for dirpath, _dirs, names in os.walk(folder, followlinks=False):
            here = Path(dirpath).relative_to(self.root).as_posix()
            found += [f"{here}/{name}" for name in names]
        return sorted(found)

    def foreign(self, rel: str, looks_ours: Callable[[bytes], bool]) -> bool:
        """A file at ``rel`` that vidcap did not write (a link, or not on the journal and not of its kind)."""
        path = self.root / rel
        if path.is_symlink():
            return True
        data = self.read(rel) if path.is_file() else None
        return path.exists() and rel not in self.written() and not (data is not None and looks_ours(data))

    def remove(self, rel: str) -> None:
        """Remove a file vidcap wrote, and its preview folder once empty."""
        (self.root / rel).unlink()
        if rel.startswith(paths.PREVIEWS_DIR + "/"):
            with contextlib.suppress(OSError):  # not empty, or already gone: leave it
                (self.root / rel).parent.rmdir()

    def is_ours(self, rel: str) -> bool:
        """A path vidcap may remove: on its journal, and a plain file that is reached without symlinks."""
        path = self.root / rel
        if not path.is_file() or path.is_symlink():
            return False
        real = Path(os.path.realpath(path))
        return real.is_relative_to(self._real) and real.relative_to(self._real).as_posix() == rel

    # -- leftovers of killed runs ------------------------------------------------------------

    def _walk(self) -> Iterator[tuple[Path, list[str]]]:
        """OUTPUT's top and vidcap's own folders, never through a symlink."""
        yield self.root, [e.name for e in os.scandir(self.root) if e.is_file(follow_symlinks=False)]
        for name in paths.MANAGED_DIRS:
            top = self.root / name
            if top.is_dir() and not top.is_symlink():
                for dirpath, _dirs, files in os.walk(top, followlinks=False):
                    yield Path(dirpath), files

    def remove_temp_files(self) -> None:
        removed = 0
        for folder, files in self._walk():
            for name in files:
                if _TEMP.match(name):
                    (folder / name).unlink(missing_ok=True)
                    removed += 1
        if removed:
            logger.info("removed %d temp files left by an interrupted run", removed)

    @property
    def scratch_root(self) -> Path:
        return self.root / paths.SCRATCH_DIR

    def reset_scratch(self) -> None:
        clear_scratch(self.scratch_root)


def clear_scratch(root: Path) -> None:
    """Empty a scratch folder (ffmpeg's temp files, left by a killed run) and point this process's scratch at it."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name.startswith("scratch-"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    os.environ[SCRATCH_ENV] = str(root)
