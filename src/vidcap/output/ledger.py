"""The resume ledger: one marker per finished video in ``processed_videos/``, written after its files.

A marker records the source (path, size, mtime), a digest of the settings that
shape outputs, every file written with its size, and whether any error is worth
a rerun. A video is done when all of that still holds. One real file is one
video: a marker is found by its relative path or, failing that, by its source,
so the same file reached through another path or another INPUT is not done twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vidcap import paths
from vidcap.data import Video, record_error
from vidcap.media.sources import fingerprint

if TYPE_CHECKING:
    from vidcap.output import Output

logger = logging.getLogger(__name__)

MARKER_VERSION = 1


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Plan:
    """What a run will do: videos to process, and those done earlier (split by outcome, for the plan line)."""

    todo: list[Video]
    done: list[Video]
    done_source_failed: int = 0

    def describe(self) -> str:
        text = f"{len(self.todo)} videos to process, {len(self.done) - self.done_source_failed} done earlier"
        if self.done_source_failed:
            text += (
                f", {self.done_source_failed} failed earlier on their own source "
                f"(unreadable, too short, damaged; --retry-failed redoes them)"
            )
        return text


def curator_video(video: Video) -> dict[str, Any]:
    """NeMo Curator's fields of a finished video (its processed_videos JSON)."""
    meta = video.metadata
    return {
        "video": video.source,
        "height": meta.height if meta else None,
        "width": meta.width if meta else None,
        "framerate": meta.fps if meta else None,
        "num_frames": meta.num_frames if meta else None,
        "duration": meta.duration_s if meta else None,
        "video_codec": meta.video_codec if meta else None,
        "pixel_format": meta.pixel_format if meta else None,
        "audio_format": meta.audio_codec if meta else None,  # Curator 1.4 writes the audio codec under this key
        "audio_codec": meta.audio_codec if meta else None,
        "num_total_clips": len(video.clips) + len(video.filtered_clips),
        "num_clip_chunks": video.chunks,
    }


def held_source(markers: dict[str, dict[str, Any]], relative_path: str) -> str:
    marker = markers.get(paths.marker_relative(relative_path)) or {}
    return str(marker.get("source", "?"))


class Ledger:
    def __init__(self, out: Output, digest: str, *, overwrite: bool = False, retry_failed: bool = False):
        self.out = out
        self.digest = digest
        self.overwrite = overwrite
        self.retry_failed = retry_failed
        self.markers: dict[str, dict[str, Any]] = {}  # marker relative path -> marker
        self._by_source: dict[str, str] = {}

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> None:
        """Read every marker in OUTPUT (never through a symlink)."""
        self.markers.clear()
        self._by_source.clear()
        self.out.refresh()
        for rel in self.out.files(paths.MARKERS_DIR):
            if not rel.endswith(".json"):
                continue
            try:
                marker = json.loads(self.out.read(rel) or b"")
            except (OSError, ValueError) as exc:
                logger.warning("ignoring unreadable marker %s/%s: %s", self.out.url, rel, exc)
                continue
            if isinstance(marker, dict) and isinstance(marker.get("vidcap"), dict):
                marker = marker["vidcap"]  # NeMo Curator's fields on top, vidcap's own under "vidcap"
            if not isinstance(marker, dict) or marker.get("version") != MARKER_VERSION:
                continue
            self.markers[rel] = marker
            source = marker.get("source")
            if isinstance(source, str):
                # Of two markers for one source (an older layout), the one with current settings wins.
                known = self._by_source.get(source)
                if known is None or self.markers[known].get("settings") != self.digest:
                    self._by_source[source] = rel

    def lookup(self, video: Video) -> tuple[str, dict[str, Any]] | None:
        """This video's marker: under its own relative path, else any marker of the same source file."""
        source = video.source
        rel = paths.marker_relative(video.relative_path)
        marker = self.markers.get(rel)
        if marker is not None and marker.get("source") == source:
            return rel, marker
        other = self._by_source.get(source)
        return (other, self.markers[other]) if other is not None else None

    def adopt(self, video: Video) -> None:
        """A file done earlier under another relative path keeps that name, so it has one marker; a file whose
        name another source's marker holds (camA/0001.mp4 after camB/0001.mp4) gets a name of its own, so
        neither run's results replace the other's."""
        found = self.lookup(video)
        if found is not None:
            if found[1].get("relative_path") not in (None, video.relative_path):
                logger.info("%s was processed earlier as %s; keeping that name", video.relative_path,
                            found[1]["relative_path"])  # fmt: skip
                video.relative_path = found[1]["relative_path"]
            return
        source = video.source
        name = video.relative_path
        while (held := self.markers.get(paths.marker_relative(name))) is not None and held.get("source") != source:
            name = paths.distinct_name(name, source + name)
        if name != video.relative_path:
            logger.info("%s: another source (%s) was processed under this name into OUTPUT; this one is %s",
                        video.relative_path, held_source(self.markers, video.relative_path), name)  # fmt: skip
            video.relative_path = name

    def is_done(self, video: Video) -> bool:
        """Marker there, same source file, same settings, every output whole, and nothing worth retrying."""
        if self.overwrite:
            return False
        found = self.lookup(video)
        if found is None:
            return False
        marker = found[1]
        if marker.get("fingerprint") != (video.fingerprint or fingerprint(video)):  # a bucket's: from its listing
            return False
        if marker.get("retry") or (self.retry_failed and marker.get("status") != "ok"):
            return False
        if marker.get("settings") != self.digest:
            return False
        return all(self.out.size(rel) == size for rel, size in marker.get("outputs", {}).items())

    def plan(self, videos: list[Video], limit: int | None = None) -> Plan:
        todo: list[Video] = []
        done: list[Video] = []
        failed_on_source = 0
        for video in videos:
            if self.is_done(video):
                done.append(video)
                found = self.lookup(video)
                failed_on_source += bool(found and found[1].get("status") != "ok")
            else:
                self.adopt(video)
                todo.append(video)
        if limit is not None:
            todo = todo[:limit]
        return Plan(todo, done, failed_on_source)

    def current(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Markers made with this run's settings, and those left from other settings (one per source)."""
        chosen = [self.markers[rel] for rel in sorted(set(self._by_source.values()))]
        chosen += [m for m in self.markers.values() if not isinstance(m.get("source"), str)]
        current = [m for m in chosen if m.get("settings") == self.digest]
        outdated = [m for m in chosen if m.get("settings") != self.digest]
        return current, outdated

    def owned(self) -> set[str]:
        """Every file some marker lists, and the markers themselves."""
        return {rel for m in self.markers.values() for rel in m.get("outputs", {})} | set(self.markers)

    # -- writing -------------------------------------------------------------------------------

    def write(self, video: Video, outputs: dict[str, int]) -> dict[str, Any]:
        """The video's marker, written last: a marker means every file it lists is on disk."""
        from vidcap.report import VideoReport

        probed = video.fingerprint or fingerprint(video)
        if video.fingerprint is not None and fingerprint(video) != probed:
            # Replaced or rewritten while it was processed: its clips may mix two files. Not done.
            reason = ("the source file changed while it was processed (its size or time differs from when it was "
                      "read); it is processed again on the next run")  # fmt: skip
            record_error(video, "source", reason, retry=True)
            logger.error("%s: the source file changed while it was processed; rerun to redo it",
                         video.source)  # fmt: skip
        report = VideoReport.from_video(video)
        marker = {
            "version": MARKER_VERSION,
            "source": video.source,
            "relative_path": video.relative_path,
            "fingerprint": probed,
            "status": report.status,
            # Errors a rerun may fix (a model, an encoder, the disk): such a video is redone next time.
            "retry": report.retry,
            "settings": self.digest,
            "errors": report.errors,
            "metadata": asdict(video.metadata) if video.metadata else None,
            "clips": [c.uuid for c in video.clips],
            "filtered_clips": [c.uuid for c in video.filtered_clips],
            "outputs": dict(sorted(outputs.items())),
            "counts": {
                "clips": report.clips,
                "windows": report.windows,
                "previews": report.previews,
                "filtered": report.filtered,
            },
            "timings_s": {k: round(v, 4) for k, v in video.timings.items()},
        }
        rel = paths.marker_relative(video.relative_path)
        self.out.write([(rel, dumps({**curator_video(video), "vidcap": marker}).encode())])
        self.markers[rel] = marker
        self._by_source[video.source] = rel
        return marker
