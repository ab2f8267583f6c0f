"""OUTPUT in object storage (``s3://bucket/prefix``): the promises of a local OUTPUT, kept with objects.

- An object is put whole (one request, or a multipart upload completed at the end), so nothing half-written
  ever sits under a real key; the marker is put after the files it lists.
- The journal is a set of small objects under ``.vidcap/``, one per write, put before the files they name;
  the sweep removes only keys a journal names that carry vidcap's own artifact names.
- The lock is an object created only if absent (a conditional put) and refreshed while the run lives. A run
  killed on this machine is seen to be gone at once (its pid); one from another machine after ``STALE_S``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from vidcap import paths
from vidcap.errors import ConfigError
from vidcap.output.files import ForeignFileError, clear_scratch
from vidcap.storage import join, local_cache, open_fs, process_alive, unreachable

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# A lock not refreshed for this long belongs to a run that is gone; it is refreshed every BEAT_S.
STALE_S = 120.0
BEAT_S = 30.0
# The bucket prefixes this process holds the lock of.
_HELD: dict[str, BucketOutput] = {}


class LostLockError(OSError):
    """Another run took OUTPUT's lock (this one stalled past STALE_S): nothing more is written."""

    retryable = True


def _talking(method: F) -> F:
    """Whatever the store raises comes out as an OSError naming OUTPUT and the reason (s3fs passes some botocore
    errors through untranslated), so a bucket's failures are handled as a disk's are: per video, retried."""

    @functools.wraps(method)
    def call(self: BucketOutput, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (OSError, ConfigError):
            raise
        except Exception as exc:
            raise OSError(unreachable(self.url, exc)) from exc

    return cast(F, call)


class BucketOutput:
    """One OUTPUT prefix in object storage; the same methods as ``OutputDir``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.base = open_fs(self.url)
        self._listing: dict[str, int] | None = None
        self._proc = uuid.uuid4().hex[:12]
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._known: set[str] = set()
        self._token: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._lost: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    @property
    def root(self) -> str:
        return self.url

    def _key(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def _rel(self, key: str) -> str:
        return key[len(self.base) + 1 :]

    # -- checks, lock ------------------------------------------------------------------------

    def check(self) -> None:
        """The bucket answers and exists, and OUTPUT is not an object."""
        bucket = self.base.split("/", 1)[0]
        try:
            if self.fs.isfile(self.base):
                raise ConfigError(f"cannot use output {self.url}: it is an object, not a prefix")
            if not self.fs.exists(bucket):
                raise ConfigError(f"cannot use output {self.url}: bucket {bucket} does not exist; create it first")
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(unreachable(self.url, exc)) from exc

    def open(self) -> None:
        self.check()
        probe = self._key(paths.temp_name("write-test"))
        try:
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
            holder = self.lock()
        except Exception as exc:
            raise ConfigError(f"output {self.url} is not writable: {unreachable(self.url, exc)}") from exc
        if holder is not None:
            raise ConfigError(
                f"another vidcap run is writing to {self.url} ({holder}); wait for it or use another OUTPUT "
                f"(a run that is gone lets go of it after {STALE_S:.0f} s)"
            )
        try:
            self.refresh()
            self.reset_scratch()
        except BaseException:
            self.unlock()
            raise

    def _holder(self) -> tuple[dict[str, Any] | None, float]:
        """The lock's content ({} when unreadable: held, by whom unknown) and its age in seconds; None when
        there is no lock."""
        key = self._key(paths.LOCK_FILE)
        try:
            info = self.fs.info(key)
            raw = self.fs.cat_file(key)
        except FileNotFoundError:
            return None, 0.0
        try:
            held = json.loads(raw)
        except ValueError:
            held = {}
        modified = info.get("LastModified")
        age = time.time() - modified.timestamp() if modified is not None else 0.0
        return (held if isinstance(held, dict) else {}), age

    def lock(self) -> str | None:
        """Take OUTPUT; None when taken, else who holds it (a sentence)."""
        if self.url in _HELD:
            return None
        token = uuid.uuid4().hex
        me = json.dumps({"run": token, "host": socket.gethostname(), "pid": os.getpid()}).encode()
        key = self._key(paths.LOCK_FILE)
        for _ in range(3):
            try:
                self.fs.pipe_file(key, me, mode="create")  # only if absent (If-None-Match)
            except TypeError as exc:
                raise ConfigError("s3fs is too old for a lock in object storage: pip install -U s3fs") from exc
            except FileExistsError:
                held, age = self._holder()
                if held is None:
                    continue  # gone between the two requests
                host, pid = held.get("host"), held.get("pid")
                dead_here = host == socket.gethostname() and isinstance(pid, int) and not process_alive(pid)
                if not dead_here and age < STALE_S:
                    return f"host {host}, pid {pid}, seen {age:.0f} s ago"
                again, _ = self._holder()
                if again is not None and again.get("run") != held.get("run"):
                    continue  # another run took it over first
                logger.warning("%s: the run that held it (host %s, pid %s) is gone; taking over", self.url, host, pid)
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(key)
                continue
            self._token = token
            _HELD[self.url] = self
            self._stop.clear()
            self._beat = threading.Thread(target=self._keep_alive, name="vidcap-lock", daemon=True)
            self._beat.start()
            return None
        return "another run took it at the same moment"

    @_talking
    def confirm(self) -> None:
        """Still this run's OUTPUT (asked before the sweep removes anything): else LostLockError."""
        if self._token is None:
            return
        held, _ = self._holder()
        if self._lost or held is None or held.get("run") != self._token:
            self._lost = self._lost or f"another run took {self.url} (this one stalled for over {STALE_S:.0f} s)"
            raise LostLockError(self._lost)

    def _keep_alive(self) -> None:
        key = self._key(paths.LOCK_FILE)
        while not self._stop.wait(BEAT_S):
            try:
                held, _ = self._holder()
                if held is None or held.get("run") != self._token:
                    self._lost = f"another run took {self.url} (this one stalled for over {STALE_S:.0f} s)"
                    logger.error("%s; this run writes nothing more: rerun to finish", self._lost)
                    return
                self.fs.pipe_file(key, json.dumps(held).encode())  # a new LastModified
            except Exception as exc:  # the next beat tries again
                logger.warning("%s: could not refresh the lock: %s", self.url, unreachable(self.url, exc))

    def unlock(self) -> None:
        self._stop.set()
        if _HELD.get(self.url) is self:
            del _HELD[self.url]
            try:
                held, _ = self._holder()
                if held is not None and held.get("run") == self._token:
                    self.fs.rm_file(self._key(paths.LOCK_FILE))
            except Exception as exc:  # it goes stale on its own
                logger.warning("%s: could not remove the lock: %s", self.url, unreachable(self.url, exc))
        self._token = None

    def close_journal(self) -> None:
        """Nothing stays open: each journal entry is its own object."""

    # -- what is there -------------------------------------------------------------------------

    @_talking
    def refresh(self) -> None:
        """List OUTPUT once: sizes answer from this listing until the next refresh (plus what is written)."""
        self.fs.invalidate_cache()
        found = self.fs.find(self.base, detail=True)
        self._listing = {
            self._rel(k): int(v.get("size") or 0) for k, v in found.items() if v.get("type") != "directory"
        }

    @_talking
    def size(self, rel: str) -> int:
        if self._listing is not None:
            return self._listing.get(rel, -1)
        try:
            return int(self.fs.info(self._key(rel))["size"])
        except FileNotFoundError:
            return -1

    @_talking
    def read(self, rel: str) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(self._key(rel)))
        except FileNotFoundError:
            return None

    @_talking
    def files(self, top: str) -> list[str]:
        if self._listing is None:
            self.refresh()
        assert self._listing is not None
        return sorted(rel for rel in self._listing if rel.startswith(top.rstrip("/") + "/"))

    @_talking
    def foreign(self, rel: str, looks_ours: Callable[[bytes], bool]) -> bool:
        data = self.read(rel)
        return data is not None and rel not in self.written() and not looks_ours(data)

    @_talking
    def is_ours(self, rel: str) -> bool:
        return self.size(rel) >= 0

    # -- writing -------------------------------------------------------------------------------

    @_talking
    def write(self, files: Iterable[tuple[str, bytes]]) -> dict[str, int]:
        """Put ``(relative path, bytes)`` pairs, each whole; each is on the journal before it exists."""
        if self._lost:
            raise LostLockError(self._lost)
        files = list(files)
        for rel, _ in files:
            if self.size(rel) >= 0 and not self._wrote(rel):
                raise ForeignFileError(join(self.url, rel))
        self.record(rel for rel, _ in files)
        sizes: dict[str, int] = {}
        for rel, data in files:
            self.fs.pipe_file(self._key(rel), data)
            sizes[rel] = len(data)
            if self._listing is not None:
                self._listing[rel] = len(data)
        return sizes

    def _wrote(self, rel: str) -> bool:
        if rel not in self._known:
            self._known = self.written()
        return rel in self._known

    @_talking
    def record(self, rels: Iterable[str]) -> None:
        lines = "".join(json.dumps(rel, ensure_ascii=True) + "\n" for rel in rels).encode()
        with self._seq_lock:
            self._seq += 1
            name = f"{paths.STATE_DIR}/journal-{self._proc}-{self._seq:08d}"
        self.fs.pipe_file(self._key(name), lines)

    def _journal_keys(self) -> list[str]:
        folder = self._key(paths.STATE_DIR)
        self.fs.invalidate_cache(folder)
        try:
            keys = self.fs.find(folder)
        except FileNotFoundError:
            return []
        return sorted(
            k for k in keys if k.rsplit("/", 1)[-1] == "journal" or k.rsplit("/", 1)[-1].startswith("journal-")
        )

    def _journal_text(self, keys: list[str]) -> set[str]:
        out: set[str] = set()
        for data in (self.fs.cat(keys, on_error="omit") if keys else {}).values():
            for line in bytes(data).decode("utf-8", "replace").splitlines():
                with contextlib.suppress(ValueError):
                    rel = json.loads(line)
                    if isinstance(rel, str):
                        out.add(rel)
        return out

    @_talking
    def written(self) -> set[str]:
        return self._journal_text(self._journal_keys())

    @_talking
    def fold_journal(self) -> None:
        """One journal object listing what vidcap wrote and is still there; the others are removed."""
        keys = self._journal_keys()
        self.refresh()
        assert self._listing is not None
        keep = {rel for rel in self._journal_text(keys) if rel in self._listing}
        text = "".join(json.dumps(rel, ensure_ascii=True) + "\n" for rel in sorted(keep)).encode()
        self.fs.pipe_file(self._key(paths.JOURNAL), text)
        old = [k for k in keys if not k.endswith("/journal")]
        if old:
            self.fs.rm(old)

    @_talking
    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._key(rel))
        if self._listing is not None:
            self._listing.pop(rel, None)

    # -- this machine's scratch ------------------------------------------------------------------

    @property
    def scratch_root(self) -> Path:
        return local_cache(self.url, "scratch")

    def remove_temp_files(self) -> None:
        """Objects are put whole: a killed run leaves no temp objects (only a lock, taken over)."""

    def reset_scratch(self) -> None:
        clear_scratch(self.scratch_root)
