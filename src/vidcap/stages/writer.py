"""ClipWriterStage: clips, previews and per-clip JSON on disk; manifest and summary at the end.

The work is split by job: ``output.files`` (OUTPUT itself: checks, lock,
atomic writes, the journal of what vidcap wrote), ``output.ledger`` (resume
markers), ``output.records`` (what a clip and a window record hold),
``output.manifest`` (windows.parquet, summary.json) and ``output.sweep``
(removing vidcap's own leftovers). This stage strings them together.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from vidcap import paths
from vidcap.data import Video
from vidcap.errors import ConfigError, RunFilesError, redact
from vidcap.media.probe import clip_file_info
from vidcap.output import output_at
from vidcap.output.ledger import Ledger, Plan, dumps, settings_digest
from vidcap.output.manifest import (
    all_rows,
    filtered_records,
    is_our_parquet,
    is_our_summary,
    parquet_bytes,
    summary,
    summary_bytes,
)
from vidcap.output.records import chunk_record, clip_record
from vidcap.output.sweep import sweep
from vidcap.params import param
from vidcap.stages.base import Reader, Stage, Writer
from vidcap.storage import local_path

if TYPE_CHECKING:
    from vidcap.report import RunResult

logger = logging.getLogger(__name__)


@dataclass
class ClipWriterStage(Writer):
    output_path: str | Path
    overwrite: bool = param(False, flag="--overwrite", help="Redo videos already finished in OUTPUT.")
    skip_clips: bool = param(False, flag="--no-upload-clips",
                             help="Write no clip mp4s (their metas, previews and captions still), as NeMo Curator's "
                             "--no-upload-clips.")  # fmt: skip
    retry_failed: bool = param(
        False,
        flag="--retry-failed",
        help="Also redo videos that failed on their source (unreadable, too short, damaged). Videos that failed on "
        "a model, an encoder or the disk are redone anyway.",
    )
    name: ClassVar[str] = "clip_writer"
    reads: ClassVar[frozenset[str]] = frozenset({"clip.buffer", "window.webp_bytes"})
    _digest: str = field(default="", init=False, repr=False)
    _ledger: Ledger | None = field(default=None, init=False, repr=False)
    _given: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.output_path = local_path(self.output_path)
        if not isinstance(self.output_path, str | os.PathLike):
            raise TypeError(
                f"ClipWriterStage output_path must be a path (str or pathlib.Path), got {self.output_path!r}"
            )
        self.out = output_at(self.output_path)
        self._given = str(self.output_path)  # clip_location is written with OUTPUT as the user gave it

    @property
    def output(self) -> Path | str:
        """OUTPUT: a folder, or an object-storage URL."""
        return self.out.root

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.out, self._digest, overwrite=self.overwrite, retry_failed=self.retry_failed)
        return self._ledger

    def bind(self, stages: list[Stage]) -> None:
        # The settings of the stages between reader and writer decide what a finished video looks
        # like; a marker written under other settings does not count as done.
        shaping = {s.name: s.settings() for s in stages if s is not self and not isinstance(s, Reader)}
        self._digest = settings_digest(shaping)
        self._ledger = None
        for stage in stages:
            if isinstance(stage, Reader):
                stage.keep_out([self._at(name) for name in paths.MANAGED_DIRS])

    def _at(self, rel: str) -> Path | str:
        return self.out.root / rel if isinstance(self.out.root, Path) else f"{self.out.url}/{rel}"

    def prepare(self) -> None:
        self.out.open()
        self.output_path = self.out.root  # workers elsewhere (Ray) get an absolute path
        for name, ours in ((paths.SUMMARY_JSON, is_our_summary), (paths.WINDOWS_PARQUET, is_our_parquet)):
            if self.out.foreign(name, ours):
                self.out.unlock()
                raise ConfigError(
                    f"{self._at(name)} exists and was not written by vidcap; vidcap rewrites that file after every "
                    f"run: move it away or choose another OUTPUT"
                )
        self.ledger.load()

    # -- resume -------------------------------------------------------------------------------

    def plan(self, videos: list[Video], limit: int | None = None) -> Plan:
        return self.ledger.plan(videos, limit)

    def is_done(self, video: Video) -> bool:
        return self.ledger.is_done(video)

    # -- per video ----------------------------------------------------------------------------

    def process(self, video: Video) -> Video:
        """A task's files: each clip, its previews, its record (the record last: it names the others), then the
        task's processed_clip_chunks JSON. A clip a filter took out goes to filtered_clips/, with its record."""
        for clip in [*video.clips, *video.filtered_clips]:
            files: list[tuple[str, bytes]] = []
            info = clip_file_info(clip.buffer) if clip.buffer is not None else None
            if clip.buffer is not None and not self.skip_clips:
                clip.location = paths.clip_path(Path(), clip.uuid, filtered=bool(clip.filtered)).as_posix()
                files.append((clip.location, clip.buffer))
            for w in clip.windows:
                if w.webp_bytes:
                    w.preview_location = paths.preview_path(Path(), clip.uuid, w.start_frame, w.end_frame).as_posix()
                    files.append((w.preview_location, w.webp_bytes))
            record = clip_record(video, clip, self._given, info)
            files.append((paths.meta_path(Path(), clip.uuid).as_posix(), dumps(record).encode()))
            video.outputs.update(self.out.write(files))
        chunk = paths.chunk_relative(video.relative_path, video.part)
        video.outputs.update(self.out.write([(chunk, dumps(chunk_record(video)).encode())]))
        return video

    def complete(self, video: Video) -> None:
        """The marker, once every task of the video is written: a marker means all its files are on disk.
        Files an earlier run wrote for this video under other settings are left to finish(), which removes
        vidcap's own files that no marker owns."""
        self.ledger.write(video, video.outputs)

    # -- end of run ---------------------------------------------------------------------------

    def finish(self, result: RunResult) -> None:
        """Sweep leftovers, then rebuild windows.parquet and summary.json from every marker."""
        try:
            self.ledger.load()
            self.out.confirm()  # a run that lost OUTPUT to another removes nothing
            sweep(self.out, self.ledger.owned())
            current, outdated = self.ledger.current()
            rows = all_rows(self.out, current)
            data = summary(current, outdated, result, rows, filtered_records(self.out, current))
            result.summary = data
            self.out.write([(paths.WINDOWS_PARQUET, parquet_bytes(rows)), (paths.SUMMARY_JSON, summary_bytes(data))])
            self.out.fold_journal()
        except Exception as exc:  # a disk, or a bucket that stopped answering
            reason = redact(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
            raise RunFilesError(
                f"could not write {paths.WINDOWS_PARQUET} and {paths.SUMMARY_JSON} in {self.output}: {reason}; "
                f"every finished video is kept, and the next run rebuilds them"
            ) from exc
        finally:
            self.out.unlock()
        if outdated:
            logger.warning(
                "%d videos in OUTPUT were made with other settings and are not counted in summary.json or "
                "windows.parquet; rerun without --limit to redo them", len(outdated),
            )  # fmt: skip
