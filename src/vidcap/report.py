"""What is left of a video once the pipeline is done with it: a small, picklable record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vidcap.data import Video

if TYPE_CHECKING:
    from vidcap.output.ledger import Plan


@dataclass
class VideoReport:
    path: str
    relative_path: str
    # ok: no error anywhere; partial: some clip or window failed; failed: the video itself failed.
    status: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    clips: int = 0
    windows: int = 0
    previews: int = 0
    captions: int = 0
    # Windows by caption status (ok, truncated, error, skipped) and how many captions look degenerate.
    caption_status: dict[str, int] = field(default_factory=dict)
    degenerate: int = 0
    # Clips filters took out, per stage.
    filtered: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def retry(self) -> bool:
        """Some error of this video may go away on a rerun (disk, encoder, model, endpoint)."""
        return any(e.get("retry") for e in self.errors)

    @classmethod
    def from_video(cls, video: Video) -> VideoReport:

        errors = video.all_errors()
        if video.errors:
            status = "failed"
        elif errors:
            status = "partial"
        else:
            status = "ok"
        windows = [w for c in video.clips for w in c.windows]
        return cls(
            path=video.source,
            relative_path=video.relative_path,
            status=status,
            errors=errors,
            clips=sum(1 for c in video.clips if c.location or c.buffer is not None),
            windows=len(windows),
            previews=sum(1 for w in windows if w.preview_location or w.webp_bytes),
            captions=sum(1 for w in windows if w.caption_status in ("ok", "truncated")),
            caption_status=dict(Counter(w.caption_status for w in windows)),
            degenerate=sum(1 for w in windows if w.caption_degenerate and w.caption_status in ("ok", "truncated")),
            filtered=dict(Counter(stage for c in video.filtered_clips for stage in c.filtered)),
            timings=dict(video.timings),
        )


@dataclass
class RunResult:
    reports: list[VideoReport]
    discovered: int
    skipped: list[Video] = field(default_factory=list)
    wall_s: float = 0.0
    stages: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What summary.json says (set by the writer at the end of the run).
    summary: dict[str, Any] = field(default_factory=dict)
    plan: Plan | None = None
    # Set when summary.json / windows.parquet could not be written (a full disk): the run still counts.
    run_files_error: str | None = None
    # Per model stage: requests (windows sent), batches (engine calls), largest batch, busy seconds.
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def retry_needed(self) -> list[VideoReport]:
        """Videos of this run that failed or are partial for a reason a rerun may fix."""
        return [r for r in self.reports if r.retry]
