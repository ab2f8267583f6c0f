"""Object storage (``s3://bucket/prefix`` or any fsspec URL) for INPUT, OUTPUT and --model-dir.

fsspec does the talking; credentials and the endpoint come from the usual environment (``AWS_*``,
``AWS_ENDPOINT_URL``) and never pass through vidcap's own settings, so they never reach a log or an output.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vidcap.errors import ConfigError, redact

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A dead endpoint answers within seconds instead of botocore's default minute of retries.
_S3_OPTIONS: dict[str, Any] = {"config_kwargs": {"connect_timeout": 10, "retries": {"max_attempts": 3}}}


def local_path(location: str | Path) -> str | Path:
    """``file:///data/videos`` as the plain path ``/data/videos``; anything else as it is."""
    if isinstance(location, str) and location.lower().startswith("file://"):
        return location[len("file://") :]
    return location


def is_url(path: object) -> bool:
    """An object-storage location (``s3://…``, ``gs://…``); ``file://`` and plain paths are local."""
    match = _SCHEME.match(str(path)) if isinstance(path, str) else None
    return match is not None and match.group(1).lower() not in ("file", "local")


def open_fs(url: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem behind ``url`` and the path in it (``bucket/prefix``, no trailing slash)."""
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:  # pragma: no cover - fsspec comes with the s3 extra and with torch
        raise ConfigError(f"{url}: object storage needs fsspec and s3fs: pip install -e '.[s3]'") from exc
    scheme = _SCHEME.match(url).group(1).lower()  # type: ignore[union-attr]
    parts = urlsplit(url)
    if "@" in parts.netloc or re.search(r"(?i)(signature|credential|token|secret)=", parts.query):
        raise ConfigError(
            f"{scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}: a URL with credentials in it is not "
            "taken (they would end up in logs and outputs): give them in the environment (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, or ~/.aws) and the plain URL"
        )
    options = _S3_OPTIONS if scheme in ("s3", "s3a") else {}
    try:
        fs, path = url_to_fs(url, **options)
    except ImportError as exc:
        raise ConfigError(
            f"{url}: {scheme}:// needs its fsspec package ({exc}): for s3:// pip install -e '.[s3]'"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"{url}: {scheme}:// is not a storage fsspec knows ({exc})") from exc
    return fs, path.rstrip("/")


def join(url: str, rel: str) -> str:
    return url.rstrip("/") + "/" + rel


def unreachable(url: str, exc: BaseException) -> str:
    """A sentence for a location that cannot be used: which, and why, with no secret in it."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, PermissionError) and exc.filename is None:  # the store's answer, not a local file's
        reason = "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the bucket's policy)"
    return redact(f"cannot use {url}: {reason}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine lives (one of another user's counts as alive): a lock or copies
    whose process is gone belong to a killed run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_dir(folder: Path) -> Path:
    """``folder``, made if need be, only for this user: a shared temp folder may hold a link or a folder someone
    else put there under the same name, and vidcap removes things inside its own folders."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ConfigError(f"{folder} is not a folder of this user's (a link, or someone else's): remove it or set "
                          "TMPDIR elsewhere")  # fmt: skip
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def temp_folder(what: str) -> Path:
    """This user's folder for ``what`` in the machine's temp folder (``/tmp/vidcap-sources-1000``)."""
    return private_dir(Path(tempfile.gettempdir()) / f"vidcap-{what}-{os.getuid()}")


def local_cache(url: str, what: str) -> Path:
    """A folder on this machine for things kept from ``url`` (the same on every node of a cluster): model
    weights under the user's cache folder (``~/.cache/vidcap``), anything else in the temp folder."""
    digest = hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:12]
    name = f"{PurePosixPath(url.rstrip('/')).name or 'root'}"[:40] + f"-{digest}"
    if what == "models":
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidcap" / "models"
        return cache / name
    return temp_folder(what) / name
