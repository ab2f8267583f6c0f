"""The one definition of what is recorded per clip and per window.

The per-clip JSON (``metas/v0``) is built here; ``windows.parquet`` rows and
the gallery read the same records back through ``window_rows``, so a field is
named and computed in one place.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from vidcap import paths
from vidcap.data import CAPTION_FAMILIES, ENHANCEMENT_ALGORITHMS, Clip, Video, Window


def window_record(clip: Clip, window: Window, preview: str | None) -> dict[str, Any]:
    start_s, end_s = clip.window_times(window)
    entry: dict[str, Any] = {
        "start_frame": window.start_frame,
        "end_frame": window.end_frame,
        "start_s": round(start_s, 6),
        "end_s": round(end_s, 6),
        "sampled_frame_indices": window.frame_indices,
        "preview_location": preview,
    }
    for family, text in sorted(window.caption.items()):
        entry[f"{family}_caption"] = text
        if window.caption_variant and window.caption_variant != family:
            entry[f"{window.caption_variant}_caption"] = text  # NeMo Curator 1.4's key for the same caption
    for algorithm, text in sorted(window.enhanced_caption.items()):
        entry[f"{algorithm}_enhanced_caption"] = text
    entry.update(
        caption_status=window.caption_status,
        caption_error=window.caption_error,
        caption_degenerate=window.caption_degenerate,
        notes=window.notes,
        prompt_tokens=window.prompt_tokens,
        output_tokens=window.output_tokens,
        enhancement_status=window.enhancement_status,
        enhancement_error=window.enhancement_error,
        enhancement_prompt_tokens=window.enhancement_prompt_tokens,
        enhancement_output_tokens=window.enhancement_output_tokens,
        errors=window.errors,
    )
    return entry


def clip_record(video: Video, clip: Clip, output: str = "", clip_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The per-clip JSON, once the writer has set where the clip and its previews went. ``clip_location`` is where
    NeMo Curator puts it (OUTPUT as given, then clips/ or filtered_clips/); ``clip_path`` is where the file is
    relative to OUTPUT (null when no clip was written). ``clip_info``: the clip file's own size, rate, codec."""
    meta = video.metadata
    windows = [window_record(clip, w, w.preview_location) for w in clip.windows]
    folder = paths.FILTERED_DIR if clip.filtered else paths.CLIPS_DIR
    location = f"{output.rstrip('/')}/{folder}/{clip.uuid}.mp4" if output else clip.location
    record = {
        "span_uuid": clip.uuid,
        "source_video": clip.source_video,
        "relative_path": video.relative_path,
        "duration_span": [round(clip.span[0], 6), round(clip.span[1], 6)],
        "start_frame": clip.start_frame,
        "stop_frame": clip.stop_frame,
        "width_source": meta.width if meta else None,
        "height_source": meta.height if meta else None,
        "framerate_source": meta.fps if meta else None,
        "clip_location": location,
        "clip_path": clip.location,
        **(clip_info or {}),
        "num_frames": clip.decoded_frames if clip.decoded_frames is not None else clip.num_frames,
        "errors": clip.errors,
        "valid": clip.location is not None and not clip.errors and not clip.filtered,
        "windows": windows,
    }
    # Scores stages gave the clip, under NeMo Curator's names (motion_score), and why a filter took it out.
    extra: dict[str, Any] = {f"{name}_score": score for name, score in sorted(clip.scores.items())}
    if clip.filtered:
        extra["filtered"] = clip.filtered
    return {**record, **extra} if extra else record


def chunk_record(video: Video) -> dict[str, Any]:
    """NeMo Curator's processed_clip_chunks JSON for one task of a video: its clip counts and captions."""
    every = [*video.clips, *video.filtered_clips]

    def first(texts: dict[str, str], order: tuple[str, ...]) -> str | None:
        return next((texts[k] for k in order if k in texts), None)

    def windows(pick: Any) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for clip in video.clips:
            texts = {f"{w.start_frame}_{w.end_frame}": pick(w) for w in clip.windows}
            out[clip.uuid] = {k: v for k, v in texts.items() if v is not None}
        return out

    spans = [c.span[1] - c.span[0] for c in every]
    return {
        "video": video.source,
        "clip_chunk_index": video.part,
        "num_clips_filtered_by_motion": sum(1 for c in video.filtered_clips if "motion_filter" in c.filtered),
        "num_clips_filtered_by_aesthetic": sum(1 for c in video.filtered_clips if "aesthetic_filter" in c.filtered),
        "num_clips_passed": len(video.clips),
        "num_clips_transcoded": sum(1 for c in every if c.buffer),
        "num_clips_with_embeddings": 0,
        "num_clips_with_caption": sum(1 for c in every if any(w.caption for w in c.windows)),
        "num_clips_with_webp": sum(1 for c in video.clips if any(w.webp_bytes for w in c.windows)),
        "total_clip_duration": sum(spans),
        "max_clip_duration": max(spans, default=0.0),
        "clips": [c.uuid for c in video.clips],
        "filtered_clips": [c.uuid for c in video.filtered_clips],
        "all_windows": windows(lambda w: first(w.caption, CAPTION_FAMILIES)),
        "all_windows_enhanced_caption": windows(lambda w: first(w.enhanced_caption, ENHANCEMENT_ALGORITHMS)),
    }


# windows.parquet: one row per window. Each column and how it is read from a clip record and one of its
# window records (clip, window, index of the window in its clip).
COLUMNS: list[tuple[str, pa.DataType, Any]] = [
    ("clip_uuid", pa.string(), lambda c, w, i: c["span_uuid"]),
    ("source_video", pa.string(), lambda c, w, i: c["source_video"]),
    ("relative_path", pa.string(), lambda c, w, i: c.get("relative_path")),
    ("clip_start_s", pa.float64(), lambda c, w, i: c["duration_span"][0]),
    ("clip_end_s", pa.float64(), lambda c, w, i: c["duration_span"][1]),
    ("window_index", pa.int32(), lambda c, w, i: i),
    ("start_frame", pa.int32(), lambda c, w, i: w["start_frame"]),
    ("end_frame", pa.int32(), lambda c, w, i: w["end_frame"]),
    ("num_frames", pa.int32(), lambda c, w, i: w["end_frame"] - w["start_frame"] + 1),
    ("start_s", pa.float64(), lambda c, w, i: w.get("start_s")),
    ("end_s", pa.float64(), lambda c, w, i: w.get("end_s")),
    ("sampled_frames", pa.int32(), lambda c, w, i: len(w.get("sampled_frame_indices") or [])),
    *[(f"{f}_caption", pa.string(), lambda c, w, i, f=f: w.get(f"{f}_caption")) for f in CAPTION_FAMILIES],
    *[
        (f"{a}_enhanced_caption", pa.string(), lambda c, w, i, a=a: w.get(f"{a}_enhanced_caption"))
        for a in ENHANCEMENT_ALGORITHMS
    ],
    ("caption_status", pa.string(), lambda c, w, i: w.get("caption_status")),
    ("caption_error", pa.string(), lambda c, w, i: w.get("caption_error")),
    ("caption_degenerate", pa.bool_(), lambda c, w, i: w.get("caption_degenerate")),
    ("prompt_tokens", pa.int32(), lambda c, w, i: w.get("prompt_tokens")),
    ("output_tokens", pa.int32(), lambda c, w, i: w.get("output_tokens")),
    ("enhancement_status", pa.string(), lambda c, w, i: w.get("enhancement_status")),
    ("enhancement_error", pa.string(), lambda c, w, i: w.get("enhancement_error")),
    ("enhancement_prompt_tokens", pa.int32(), lambda c, w, i: w.get("enhancement_prompt_tokens")),
    ("enhancement_output_tokens", pa.int32(), lambda c, w, i: w.get("enhancement_output_tokens")),
    ("preview_path", pa.string(), lambda c, w, i: w.get("preview_location")),
    ("clip_path", pa.string(), lambda c, w, i: c.get("clip_path", c.get("clip_location"))),
]
WINDOW_SCHEMA = pa.schema([(name, kind) for name, kind, _ in COLUMNS])


def window_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The parquet rows (and gallery entries) of one clip record."""
    return [{name: read(record, w, i) for name, _, read in COLUMNS} for i, w in enumerate(record.get("windows", []))]
