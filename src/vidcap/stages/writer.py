"""ClipWriterStage: clips, previews and per-clip JSON on disk; manifest and summary at the end.

Every file goes through a temp file and a rename; the video's marker in
``processed_videos/`` is written last, so a marker means everything is there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vidcap import paths
from vidcap.data import Clip, Video
from vidcap.manifest import write_summary, write_windows_parquet
from vidcap.stages.base import ConfigError, Reader, Stage

if TYPE_CHECKING:
    from vidcap.pipeline import RunResult

logger = logging.getLogger(__name__)

MARKER_VERSION = 1
# Stages whose errors come from the source file itself: rerunning would fail the same way.
SOURCE_STAGES = frozenset({"video_reader", "clip_splitting", "clip_transcoding", "caption_preparation"})


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def source_fingerprint(path: Path) -> dict[str, int]:
    """Size and mtime: a changed source is processed again on resume."""
    try:
        st = path.stat()
    except OSError:
        return {"size": -1, "mtime_ns": -1}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class ClipWriterStage(Stage):
    output_path: str | Path
    # Redo every video, finished or not.
    overwrite: bool = False
    # Also redo videos whose earlier run ended with errors in the source itself.
    retry_failed: bool = False
    name: ClassVar[str] = "clip_writer"
    _settings_digest: str | None = field(default=None, init=False, repr=False)

    @property
    def output(self) -> Path:
        return Path(self.output_path)

    def bind(self, stages: list[Stage]) -> None:
        # The settings of the stages between reader and writer decide what a finished video looks
        # like; a marker written under other settings does not count as done.
        shaping = {s.name: s.settings() for s in stages if s is not self and not isinstance(s, Reader)}
        self._settings_digest = settings_digest(shaping)

    def prepare(self) -> None:
        self.output_path = self.output.resolve()  # workers elsewhere (Ray) get an absolute path
        out = self.output
        existing = next(p for p in [out, *out.parents] if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"cannot use output {out}: {existing} is a file, not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / f".write-test{paths.TMP_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"output {out} is not writable: {exc.strerror or exc}") from exc
        if not paths.lock_output(out):
            raise ConfigError(f"another vidcap run is writing to {out}; wait for it or use another OUTPUT")
        # Left by a run that was killed mid-write; whatever they held is redone.
        for leftover in out.rglob(f"*{paths.TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    # -- resume -------------------------------------------------------------

    def read_marker(self, video: Video) -> dict[str, Any] | None:
        try:
            marker = json.loads(paths.marker_path(self.output, video.relative_path).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) else None

    def is_done(self, video: Video) -> bool:
        """Marker there, same source file, every output whole, and nothing worth retrying."""
        if self.overwrite:
            return False
        marker = self.read_marker(video)
        if marker is None or marker.get("version") != MARKER_VERSION:
            return False
        if marker.get("source") != str(video.path) or marker.get("fingerprint") != source_fingerprint(video.path):
            return False
        if marker.get("retry") or (self.retry_failed and marker.get("status") != "ok"):
            return False
        if marker.get("settings") != self._settings_digest:
            return False
        return all(_size(self.output / rel) == size for rel, size in marker.get("outputs", {}).items())

    # -- per video ----------------------------------------------------------

    def clip_json(self, video: Video, clip: Clip, preview_paths: dict[tuple[int, int], str]) -> dict[str, Any]:
        meta = video.metadata
        windows = []
        for w in clip.windows:
            start_s, end_s = clip.window_times(w)
            entry: dict[str, Any] = {
                "start_frame": w.start_frame,
                "end_frame": w.end_frame,
                "start_s": round(start_s, 6),
                "end_s": round(end_s, 6),
                "sampled_frame_indices": w.frame_indices,
                "preview_location": preview_paths.get((w.start_frame, w.end_frame)),
            }
            for family, text in sorted(w.caption.items()):
                entry[f"{family}_caption"] = text
            for algorithm, text in sorted(w.enhanced_caption.items()):
                entry[f"{algorithm}_enhanced_caption"] = text
            entry.update(
                caption_status=w.caption_status,
                caption_error=w.caption_error,
                caption_degenerate=w.caption_degenerate,
                prompt_tokens=w.prompt_tokens,
                output_tokens=w.output_tokens,
                errors=w.errors,
            )
            windows.append(entry)
        valid = clip.buffer is not None and not clip.errors
        return {
            "span_uuid": clip.uuid,
            "source_video": clip.source_video,
            "relative_path": video.relative_path,
            "duration_span": [round(clip.span[0], 6), round(clip.span[1], 6)],
            "start_frame": clip.start_frame,
            "stop_frame": clip.stop_frame,
            "width_source": meta.width if meta else None,
            "height_source": meta.height if meta else None,
            "framerate_source": meta.fps if meta else None,
            "clip_location": f"{paths.CLIPS_DIR}/{clip.uuid}.mp4" if clip.buffer is not None else None,
            "num_frames": clip.decoded_frames if clip.decoded_frames is not None else clip.num_frames,
            "errors": clip.errors,
            "valid": valid,
            "windows": windows,
        }

    def process(self, video: Video) -> Video:
        out = self.output
        written: dict[str, int] = {}

        def put(path: Path, data: bytes) -> str:
            paths.atomic_write_bytes(path, data)
            rel = path.relative_to(out).as_posix()
            written[rel] = len(data)
            return rel

        for clip in video.clips:
            if clip.buffer is not None:
                put(paths.clip_path(out, clip.uuid), clip.buffer)
            previews = {
                (w.start_frame, w.end_frame): put(
                    paths.preview_path(out, clip.uuid, w.start_frame, w.end_frame), w.webp_bytes
                )
                for w in clip.windows
                if w.webp_bytes
            }
            put(paths.meta_path(out, clip.uuid), _dumps(self.clip_json(video, clip, previews)).encode())
        # Files an earlier run wrote for this video under other settings are left to finish(),
        # which removes every file no marker owns.
        self.write_marker(video, written)  # last: a marker means everything above is on disk
        return video

    def write_marker(self, video: Video, written: dict[str, int]) -> None:
        from vidcap.report import VideoReport

        report = VideoReport.from_video(video)
        marker = {
            "version": MARKER_VERSION,
            "source": str(video.path),
            "relative_path": video.relative_path,
            "fingerprint": source_fingerprint(video.path),
            "status": report.status,
            # Errors outside the source's own stages (a model, ffmpeg's WebP encoder, the disk) may
            # not happen again: such a video is redone on the next run.
            "retry": video.retry or any(e["stage"] not in SOURCE_STAGES for e in report.errors),
            "settings": self._settings_digest,
            "errors": report.errors,
            "metadata": asdict(video.metadata) if video.metadata else None,
            "clips": [c.uuid for c in video.clips],
            "outputs": written,
            "counts": {"clips": report.clips, "windows": report.windows, "previews": report.previews},
            "timings_s": {k: round(v, 4) for k, v in video.timings.items()},
        }
        paths.atomic_write_text(paths.marker_path(self.output, video.relative_path), _dumps(marker))

    # -- end of run ---------------------------------------------------------

    def finish(self, result: RunResult) -> None:
        markers = []
        for path in sorted((self.output / paths.MARKERS_DIR).rglob("*.json")):
            try:
                markers.append(json.loads(path.read_text("utf-8")))
            except (OSError, ValueError) as exc:
                logger.warning("ignoring unreadable marker %s: %s", path, exc)
        self._remove_orphans(markers)
        rows = write_windows_parquet(self.output, markers)
        write_summary(self.output, markers, result, rows)
        paths.unlock_output(self.output)

    def _remove_orphans(self, markers: list[dict[str, Any]]) -> None:
        """Clips, previews and metas no finished video owns: pieces of a run killed mid-video."""
        owned = {rel for m in markers for rel in m.get("outputs", {})}
        for kind in (paths.CLIPS_DIR, paths.PREVIEWS_DIR, paths.METAS_DIR):
            for path in sorted((self.output / kind).rglob("*")):
                if path.is_file() and path.relative_to(self.output).as_posix() not in owned:
                    logger.info("removing %s: no finished video owns it", path)
                    path.unlink()
        previews = self.output / paths.PREVIEWS_DIR
        if previews.is_dir():
            for folder in previews.iterdir():
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
