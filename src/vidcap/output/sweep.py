"""Removing what a killed or superseded run left behind, and nothing else.

A file is removed only when all of these hold: vidcap's journal says vidcap
wrote it, it has one of vidcap's own artifact names (``clips/<uuid>.mp4``,
``previews/<uuid>/<start>_<end>.webp``, ``metas/v0/<uuid>.json``), it is a
plain file reached without symlinks, and no finished video's marker lists it.
A user's own file in OUTPUT, or anything behind a symlink, is never touched.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from vidcap import paths

if TYPE_CHECKING:
    from vidcap.output import Output

logger = logging.getLogger(__name__)


def sweep(out: Output, owned: set[str]) -> Counter[str]:
    """Remove vidcap's own files that no marker owns. Returns removals per folder."""
    written = out.written()
    removed: Counter[str] = Counter()
    for rel in sorted(written - owned):
        if paths.ARTIFACT_NAMES.match(rel) and out.is_ours(rel):
            out.remove(rel)
            removed[rel.split("/")[0]] += 1
    if removed:
        logger.info(
            "removed %d files of unfinished or redone videos (%s)",
            sum(removed.values()), ", ".join(f"{n} in {k}/" for k, n in sorted(removed.items())),
        )  # fmt: skip
    return removed
