"""Stage settings as data. A stage field says once what it is: its CLI flag, help, range or choices, and
whether it only changes speed or logging. Stages validate themselves from it, and RunConfig and the
command line are generated from it (see config.py), so a setting is written in one place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vidcap.errors import SettingError

# Help sections of `vidcap run --help`, in order.
PANELS = (
    "Splitting and transcoding",
    "Filters",
    "Previews",
    "Captions",
    "Caption enhancement",
    "Model backends",
    "Run",
)


@dataclass(frozen=True)
class Param:
    """What a stage field is, beyond its type and default."""

    help: str
    # The `vidcap run` flag that sets it; None: Python only. Several fields (of one stage or of several) may
    # share one flag: --fixed-stride-split-duration sets both a clip's length and the stride.
    flag: str | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    # Allowed values; a callable is asked when the stage is checked (a registry that others may extend).
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    # Changes speed or logging, never results: left out of the settings that decide whether a video is done.
    runtime: bool = False
    panel: str = "Run"

    def allowed(self) -> Sequence[str] | None:
        return self.choices() if callable(self.choices) else self.choices


def param(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    runtime: bool = False,
    panel: str = "Run",
    kw_only: bool | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field carrying its ``Param``."""
    meta = {"param": Param(help, flag, low, high, integer, choices, runtime, panel)}
    if kw_only is dataclasses.MISSING:
        return dataclasses.field(default=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta, kw_only=kw_only)


def param_of(f: dataclasses.Field[Any]) -> Param | None:
    found = f.metadata.get("param")
    return found if isinstance(found, Param) else None


def check_value(name: str, value: Any, p: Param) -> None:
    """SettingError naming ``name`` unless ``value`` fits ``p`` (None passes: the field's "not set")."""
    if value is None:
        return
    allowed = p.allowed()
    if allowed is not None:
        if value not in allowed:
            raise SettingError(name, f"{{{name}}} must be one of {', '.join(allowed)}, got {value!r}")
        return
    if p.low is not None or p.high is not None or p.integer:
        require_range(name, value, -math.inf if p.low is None else p.low, math.inf if p.high is None else p.high,
                      integer=p.integer)  # fmt: skip


def check_params(settings: Any) -> None:
    """Check every field of a settings dataclass against its ``Param``."""
    for f in dataclasses.fields(settings):
        p = param_of(f)
        if p is not None:
            check_value(f.name, getattr(settings, f.name), p)


def require_range(name: str, value: float, low: float, high: float, *, integer: bool = False) -> None:
    """Raise SettingError unless ``value`` is a finite number with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise SettingError(name, f"{{{name}}} must be {'a whole' if integer else 'a'} number, got {value!r}")
    if not math.isfinite(value) or value < low or value > high:
        raise SettingError(name, f"{{{name}}} must be between {low:g} and {high:g}, got {value}")


def flags_of(cls: type) -> dict[str, str]:
    """Field name -> flag, for a settings class (what messages call a field on the command line)."""
    return {f.name: p.flag for f in dataclasses.fields(cls) if (p := param_of(f)) is not None and p.flag}
