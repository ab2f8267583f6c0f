"""What is left of a video once the pipeline is done with it: a small, picklable record."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidcap.data import Video


@dataclass
class VideoReport:
    path: str
    relative_path: str
    # ok: no error anywhere; partial: some clip or window failed; failed: the video itself failed.
    status: str
    errors: list[dict[str, str]] = field(default_factory=list)
    clips: int = 0
    windows: int = 0
    previews: int = 0
    captions: int = 0
    timings: dict[str, float] = field(default_factory=dict)

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
            path=str(video.path),
            relative_path=video.relative_path,
            status=status,
            errors=errors,
            clips=sum(1 for c in video.clips if c.buffer is not None),
            windows=len(windows),
            previews=sum(1 for w in windows if w.webp_bytes),
            captions=sum(1 for w in windows if w.caption_status in ("ok", "truncated")),
            timings=dict(video.timings),
        )
