"""Run-level outputs rebuilt from the per-video markers: windows.parquet and summary.json.

Rebuilding from what is on disk (not from this run's memory) keeps both files
right after a resume: each window appears once, however many runs wrote it.
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
from vidcap.data import CAPTION_FAMILIES, ENHANCEMENT_ALGORITHMS

if TYPE_CHECKING:
    from vidcap.pipeline import RunResult

logger = logging.getLogger(__name__)

WINDOW_SCHEMA = pa.schema(
    [
        ("clip_uuid", pa.string()),
        ("source_video", pa.string()),
        ("relative_path", pa.string()),
        ("clip_start_s", pa.float64()),
        ("clip_end_s", pa.float64()),
        ("window_index", pa.int32()),
        ("start_frame", pa.int32()),
        ("end_frame", pa.int32()),
        ("num_frames", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("sampled_frames", pa.int32()),
        *[(f"{family}_caption", pa.string()) for family in CAPTION_FAMILIES],
        *[(f"{algo}_enhanced_caption", pa.string()) for algo in ENHANCEMENT_ALGORITHMS],
        ("caption_status", pa.string()),
        ("caption_error", pa.string()),
        ("caption_degenerate", pa.bool_()),
        ("prompt_tokens", pa.int32()),
        ("output_tokens", pa.int32()),
        ("preview_path", pa.string()),
        ("clip_path", pa.string()),
    ]
)


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def window_rows(output: Path, markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for marker in markers:
        for clip_uuid in marker.get("clips", []):
            meta = _load_json(paths.meta_path(output, clip_uuid))
            if meta is None:
                continue
            start, end = meta["duration_span"]
            for index, w in enumerate(meta.get("windows", [])):
                row = {
                    "clip_uuid": clip_uuid,
                    "source_video": meta["source_video"],
                    "relative_path": meta.get("relative_path"),
                    "clip_start_s": start,
                    "clip_end_s": end,
                    "window_index": index,
                    "start_frame": w["start_frame"],
                    "end_frame": w["end_frame"],
                    "num_frames": w["end_frame"] - w["start_frame"] + 1,
                    "start_s": w.get("start_s"),
                    "end_s": w.get("end_s"),
                    "sampled_frames": len(w.get("sampled_frame_indices") or []),
                    "caption_status": w.get("caption_status"),
                    "caption_error": w.get("caption_error"),
                    "caption_degenerate": w.get("caption_degenerate"),
                    "prompt_tokens": w.get("prompt_tokens"),
                    "output_tokens": w.get("output_tokens"),
                    "preview_path": w.get("preview_location"),
                    "clip_path": meta.get("clip_location"),
                }
                for family in CAPTION_FAMILIES:
                    row[f"{family}_caption"] = w.get(f"{family}_caption")
                for algo in ENHANCEMENT_ALGORITHMS:
                    row[f"{algo}_enhanced_caption"] = w.get(f"{algo}_enhanced_caption")
                rows.append(row)
    rows.sort(key=lambda r: (r["relative_path"] or "", r["clip_start_s"], r["clip_uuid"], r["start_frame"]))
    return rows


def write_windows_parquet(output: Path, markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = window_rows(output, markers)
    table = pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    paths.atomic_write_bytes(output / paths.WINDOWS_PARQUET, sink.getvalue())
    return rows


def write_summary(output: Path, markers: list[dict[str, Any]], result: RunResult, rows: list[dict[str, Any]]) -> None:
    """Counts and failures over everything in OUTPUT, plus what this run did."""
    marked = {m.get("relative_path") for m in markers}
    # A video whose marker could not be written (e.g. a full disk) still has to show up.
    unmarked = [
        {"relative_path": r.relative_path, "source": r.path, "status": "failed", "errors": r.errors}
        for r in result.reports
        if r.relative_path not in marked
    ]
    videos = markers + unmarked
    statuses = Counter(v.get("status", "unknown") for v in videos)
    failures = [
        {"video": v.get("relative_path"), "path": v.get("source"), **err} for v in videos for err in v.get("errors", [])
    ]
    timings: Counter[str] = Counter()
    for report in result.reports:
        timings.update(report.timings)
    summary = {
        "videos": {
            "total": len(videos),
            "ok": statuses.get("ok", 0),
            "partial": statuses.get("partial", 0),
            "failed": statuses.get("failed", 0),
            "processed_this_run": len(result.reports),
            "skipped_already_done": len(result.skipped),
        },
        "clips": sum(m.get("counts", {}).get("clips", 0) for m in markers),
        "windows": len(rows),
        "previews": sum(1 for r in rows if r["preview_path"]),
        "caption_status": dict(sorted(Counter(r["caption_status"] for r in rows).items())),
        "failed_videos": sorted(v.get("relative_path") or "" for v in videos if v.get("status") == "failed"),
        "failures": failures,
        # How many videos each stage processed in this run (a resumed run that had nothing to do: all 0).
        "videos_per_stage_this_run": {
            name: sum(1 for r in result.reports if name in r.timings) for name in result.stages
        },
        "settings": result.settings,
        "timings_s": {
            "wall": round(result.wall_s, 3),
            "per_stage": {k: round(v, 3) for k, v in sorted(timings.items())},
        },
    }
    paths.atomic_write_text(
        output / paths.SUMMARY_JSON, json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    )
