"""Removing what a killed or superseded run left behind, and nothing else.

A file is removed only when all of these hold: vidcap's journal says vidcap
wrote it, it has one of vidcap's own artifact names (``clips/<uuid>.mp4``,
``previews/<uuid>/<start>_<end>.webp``, ``metas/v0/<uuid>.json``), it is a
plain file reached without symlinks, and no finished video's marker lists it.
A user's own file in OUTPUT, or anything behind a symlink, is never touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter

from vidcap import paths
from vidcap.output.files import OutputDir

logger = logging.getLogger(__name__)


def sweep(out: OutputDir, owned: set[str]) -> Counter[str]:
    """Remove vidcap's own files that no marker owns. Returns removals per folder."""
    written = out.written()
    removed: Counter[str] = Counter()
    for rel in sorted(written - owned):
        if paths.ARTIFACT_NAMES.match(rel) and out.is_ours(rel):
            (out.root / rel).unlink()
            removed[rel.split("/")[0]] += 1
            if rel.startswith(paths.PREVIEWS_DIR + "/"):
                with contextlib.suppress(OSError):  # not empty, or already gone: leave it
                    (out.root / rel).parent.rmdir()
    if removed:
        logger.info(
            "removed %d files of unfinished or redone videos (%s)",
            sum(removed.values()), ", ".join(f"{n} in {k}/" for k, n in sorted(removed.items())),
        )  # fmt: skip
    return removed
