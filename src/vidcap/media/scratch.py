"""Scratch space for ffmpeg's temp files: under OUTPUT's own ``.vidcap/tmp`` once a run has opened it
(swept at the next start, so a killed run leaves nothing in the system temp folder), else the system's."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRATCH_ENV = "VIDCAP_SCRATCH"


@contextmanager
def scratch_dir() -> Iterator[Path]:
    root = os.environ.get(SCRATCH_ENV) or None
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scratch-", dir=root) as tmp:
        yield Path(tmp)
