"""OUTPUT: a local folder (``files.OutputDir``) or an object-storage prefix (``bucket.BucketOutput``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vidcap.storage import is_url

if TYPE_CHECKING:
    from vidcap.output.bucket import BucketOutput
    from vidcap.output.files import OutputDir

    Output = OutputDir | BucketOutput


def output_at(location: str | Path) -> OutputDir | BucketOutput:
    """The OUTPUT at ``location``: object storage for a URL (``s3://bucket/prefix``), else a folder."""
    if is_url(location):
        from vidcap.output.bucket import BucketOutput

        return BucketOutput(str(location))
    from vidcap.output.files import OutputDir

    return OutputDir(location)
