"""Run-level outputs rebuilt from the markers: windows.parquet and summary.json.

Rebuilding from what is on disk (not from this run's memory) keeps both files
right after a resume: each window appears once, however many runs wrote it.
Videos finished under other settings (a ``--limit`` run after a change) are
counted apart, not as current.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from vidcap import paths
from vidcap.output.records import WINDOW_SCHEMA, window_rows

if TYPE_CHECKING:
    from vidcap.output import Output
    from vidcap.report import RunResult

logger = logging.getLogger(__name__)


def _json(data: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _load_json(out: Output, rel: str) -> dict[str, Any] | None:
    try:
        data = out.read(rel)
    except OSError as exc:
        logger.warning("ignoring unreadable %s/%s: %s", out.url, rel, exc)
        return None
    found = _json(data)
    if data is not None and found is None:
        logger.warning("ignoring unreadable %s/%s: not a JSON object", out.url, rel)
    return found


def all_rows(out: Output, markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for marker in markers:
        for clip_uuid in marker.get("clips", []):
            record = _load_json(out, paths.meta_path(Path(), clip_uuid).as_posix())
            if record is not None:
                rows += window_rows(record)
    rows.sort(key=lambda r: (r["relative_path"] or "", r["clip_start_s"], r["clip_uuid"], r["start_frame"]))
    return rows


def filtered_records(out: Output, markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the gallery and summary say of each clip a filter took out: its video, reason, scores, file."""
    found = []
    for marker in markers:
        for clip_uuid in marker.get("filtered_clips", []):
            record = _load_json(out, paths.meta_path(Path(), clip_uuid).as_posix())
            if record is None:
                continue
            found.append({
                "clip_uuid": clip_uuid, "relative_path": record.get("relative_path"),
                "duration_span": record.get("duration_span"), "clip_path": record.get("clip_path"),
                "filtered": record.get("filtered") or {},
                "scores": {k: v for k, v in record.items() if k.endswith("_score")},
            })  # fmt: skip
    return sorted(found, key=lambda r: (r["relative_path"] or "", r["duration_span"] or [0]))


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA), sink)
    return sink.getvalue()


def is_our_parquet(data: bytes) -> bool:
    try:
        names = set(pq.read_schema(pa.BufferReader(data)).names)
    except Exception:
        return False
    return {"clip_uuid", "caption_status", "preview_path"} <= names


def is_our_summary(raw: bytes) -> bool:
    data = _json(raw)
    return data is not None and {"videos", "settings", "windows"} <= set(data)


def summary(
    markers: list[dict[str, Any]],
    outdated: list[dict[str, Any]],
    result: RunResult,
    rows: list[dict[str, Any]],
    filtered: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Counts and failures over every current video in OUTPUT, plus what this run did."""
    marked = {m.get("relative_path") for m in markers}
    # A video whose marker could not be written (e.g. a full disk) still has to show up.
    unmarked = [
        {"relative_path": r.relative_path, "source": r.path, "status": r.status, "errors": r.errors,
         "retry": True}
        for r in result.reports
        if r.relative_path not in marked
    ]  # fmt: skip
    videos = markers + unmarked
    statuses = Counter(v.get("status", "unknown") for v in videos)
    failures = [
        {"video": v.get("relative_path"), "path": v.get("source"), **err} for v in videos for err in v.get("errors", [])
    ]
    timings: Counter[str] = Counter()
    for report in result.reports:
        timings.update(report.timings)
    out: dict[str, Any] = {
        "videos": {
            "total": len(videos),
            "ok": statuses.get("ok", 0),
            "partial": statuses.get("partial", 0),
            "failed": statuses.get("failed", 0),
            # Partial or failed for a reason a rerun may fix (disk, encoder, model, endpoint).
            "retry_needed": sum(1 for v in videos if v.get("retry")),
            "processed_this_run": len(result.reports),
            "skipped_already_done": len(result.skipped),
            # Finished under other settings and not redone yet (e.g. a --limit run): not counted above.
            "outdated_settings": len(outdated),
        },
        "clips": sum(m.get("counts", {}).get("clips", 0) for m in markers),
        # Clips filters took out (in filtered_clips/), per filter, and each one with its reason.
        "clips_filtered": dict(sorted(_filtered(markers).items())),
        "filtered_clips": filtered or [],
        "windows": len(rows),
        "previews": sum(1 for r in rows if r["preview_path"]),
        "caption_status": dict(sorted(Counter(r["caption_status"] for r in rows).items())),
        "degenerate_captions": sum(
            1 for r in rows if r["caption_degenerate"] and r["caption_status"] in ("ok", "truncated")
        ),
        "failed_videos": sorted(v.get("relative_path") or "" for v in videos if v.get("status") == "failed"),
        "failures": failures,
        # How many videos each stage processed in this run (a resumed run that had nothing to do: all 0).
        "videos_per_stage_this_run": {
            name: sum(1 for r in result.reports if name in r.timings) for name in result.stages
        },
        "settings": result.settings,
        # This run's model calls per stage: windows sent, engine calls, the largest, seconds busy.
        "engines": result.engines,
        "timings_s": {
            "wall": round(result.wall_s, 3),
            "per_stage": {k: round(v, 3) for k, v in sorted(timings.items())},
        },
    }
    return out


def _filtered(markers: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for m in markers:
        out.update(m.get("counts", {}).get("filtered") or {})
    return out


def summary_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode()
