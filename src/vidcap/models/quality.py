"""Cheap checks on generated text."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)


def is_degenerate(text: str, min_repeats: int = 3, max_unit: int = 12) -> bool:
    """Empty, or one phrase repeated: ``min_repeats`` back-to-back copies of a 1..``max_unit``-word unit
    at the end of the text, or a long text made of very few distinct words."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return True
    for unit in range(1, max_unit + 1):
        span = unit * min_repeats
        if len(words) < span:
            break
        tail = words[-span:]
        if all(tail[i] == tail[i % unit] for i in range(span)):
            return True
    return len(words) >= 20 and len(set(words)) / len(words) < 0.2
