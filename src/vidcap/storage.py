"""Object storage (``s3://bucket/prefix`` or any fsspec URL) for INPUT, OUTPUT and --model-dir.

fsspec does the talking; credentials and the endpoint come from the usual environment (``AWS_*``,
``AWS_ENDPOINT_URL``) and never pass through vidcap's own settings, so they never reach a log or an output.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from vidcap.errors import ConfigError, redact

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A dead endpoint answers within seconds instead of botocore's default minute of retries.
_S3_OPTIONS: dict[str, Any] = {"config_kwargs": {"connect_timeout": 10, "retries": {"max_attempts": 3}}}


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
    if isinstance(exc, PermissionError):
        reason = "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the bucket's policy)"
    return redact(f"cannot use {url}: {reason}")


def local_cache(url: str, what: str) -> Path:
    """A folder on this machine for things kept from ``url`` (the same on every node of a cluster)."""
    digest = hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:12]
    name = PurePosixPath(url.rstrip("/")).name or "root"
    return Path(tempfile.gettempdir()) / f"vidcap-{what}" / f"{name[:40]}-{digest}"
