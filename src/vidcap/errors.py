"""Errors, and the one rule that says whether a rerun may fix one.

A run stops early only on ``ConfigError`` (bad settings, an environment that
cannot do the job). Everything else is recorded on the video, clip or window it
hit; whether a rerun may fix it is a property of the error itself (a full disk,
a dead endpoint, a missing encoder may; a damaged source will not), not of the
stage that saw it.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting or environment problem; the message says what to do."""


class SettingError(ConfigError):
    """A bad value of one setting. ``template`` names settings as ``{field}`` (``setting`` and those in
    ``also``; other braces are left alone), so the CLI can say the flags the user typed
    (``--captioning-window-size``) and the Python API the fields (``window_size``)."""

    def __init__(self, setting: str, template: str, *, also: tuple[str, ...] = ()) -> None:
        self.setting = setting
        self.template = template
        self.fields = (setting, *also)
        super().__init__(self.render({}))

    def render(self, names: Mapping[str, str]) -> str:
        pattern = "|".join(re.escape("{" + f + "}") for f in self.fields)
        return re.sub(pattern, lambda m: names.get(m.group(0)[1:-1], m.group(0)[1:-1]), self.template)

    def renamed(self, names: Mapping[str, str]) -> ConfigError:
        """The same message with settings called by ``names`` (field -> flag)."""
        return ConfigError(self.render(names))


class SourceError(Exception):
    """The source video itself is at fault (unreadable, too short, damaged): a rerun fails the same way."""


class StartError(Exception):
    """A stage could not start in its worker (a model that does not load): the run stops before any video
    is marked done, with this sentence."""


class RunFilesError(Exception):
    """summary.json or windows.parquet could not be written; the next run rebuilds them."""


# Failures of the machine, not of the data: the same work may well succeed next time.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EAGAIN, errno.EMFILE, errno.ENFILE,
        errno.EROFS, errno.ETIMEDOUT, errno.EINTR, errno.ENOBUFS, errno.EBUSY, errno.ESTALE, errno.ECONNRESET,
        errno.ECONNREFUSED, errno.EPIPE,
    }
)  # fmt: skip


# Environment variables whose values are secrets: never written to a log or an output.
SECRET_ENVS = ("OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_SECRETS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|\bsk-[A-Za-z0-9_-]{6,}|((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)"
    r"[A-Za-z0-9._~+/=-]{6,}"
)


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and the values of secret environment variables blanked out: an
    endpoint's error may quote the key it was sent, and errors end up in logs, metas and summary.json."""
    for name in SECRET_ENVS:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


def describe(exc: BaseException) -> str:
    """``Type: message`` for logs and per-item error records (secrets redacted)."""
    if isinstance(exc, OSError) and exc.strerror and not exc.filename:
        return f"{type(exc).__name__}: {exc.strerror}"
    text = redact(str(exc).strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    """True when a rerun may succeed where this failed.

    Source errors are final; OS errors are worth a retry only for transient
    causes (disk full, I/O error, memory); ffmpeg failures decide for
    themselves (see ``FFmpegError.retryable``). Anything unexpected (a bug, a
    model or endpoint failure) is redone on the next run rather than buried.
    """
    if isinstance(exc, SourceError):
        return False
    own = getattr(exc, "retryable", None)
    if isinstance(own, bool):
        return own
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in TRANSIENT_ERRNOS
    return True
