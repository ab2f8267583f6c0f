"""Errors that stop a run before any work."""


class ConfigError(ValueError):
    """A setting or environment problem; the message says what to do."""


def describe(exc: BaseException) -> str:
    """``Type: message`` for logs and per-item error records."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
