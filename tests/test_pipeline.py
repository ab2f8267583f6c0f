"""End to end through the Python API: real videos in, files on disk checked."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import count_decoded_frames, read_marker, read_meta
from PIL import Image

from vidcap import Pipeline, preview_path
from vidcap.media.probe import probe_video
from vidcap.stages import (
    CaptionPreparationStage,
    ClipSplittingStage,
    ClipTranscodingStage,
    ClipWriterStage,
    PreviewStage,
    VideoReaderStage,
)

GOOD = {"a24_audio.mp4": (24, 12.0), "b25.mov": (25, 4.0), "sub/c60.mkv": (60, 3.0), "d30_wide.mp4": (30, 5.0)}
BAD = {
    "bad/zero.mp4": "empty file",
    "bad/notes.mp4": "not a readable video",
    "bad/truncated.mp4": "not a readable video",
}


def build(corpus: Path, out: Path) -> Pipeline:
    return Pipeline(
        [
            VideoReaderStage(corpus),
            ClipSplittingStage(clip_len_s=5.0, clip_stride_s=5.0, min_clip_length_s=1.0),
            ClipTranscodingStage(num_cpus_per_worker=2),
            CaptionPreparationStage(window_size=64, remainder_threshold=32, keep_mp4=True),
            PreviewStage(num_cpus_per_worker=2),
            ClipWriterStage(out),
        ]
    )


@pytest.fixture(scope="module")
def run_once(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("out")
    result = build(corpus, out).run()
    return out, result


def _metas(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "metas/v0").glob("*.json")}


def test_every_good_video_processed(run_once: tuple[Path, object]) -> None:
    out, _ = run_once
    for rel, (fps, seconds) in GOOD.items():
        marker = read_marker(out / "processed_videos" / f"{rel}.json")
        assert marker["status"] == "ok", marker["errors"]
        expected_clips = len([s for s in range(0, int(seconds * 100), 500) if seconds - s / 100 >= 1.0])
        assert len(marker["clips"]) == expected_clips
        assert marker["metadata"]["fps"] == fps


def test_bad_videos_named_with_reason(run_once: tuple[Path, object]) -> None:
    out, _ = run_once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["total"] == len(GOOD) + len(BAD)
    assert summary["videos"]["failed"] == len(BAD) and summary["videos"]["ok"] == len(GOOD)
    assert sorted(summary["failed_videos"]) == sorted(BAD)
    reasons = {f["video"]: f["reason"] for f in summary["failures"]}
    for rel, reason in BAD.items():
        assert reason in reasons[rel]
    assert set(summary["timings_s"]["per_stage"]) >= {"clip_transcoding", "preview", "clip_writer"}


def test_clip_json_fields_and_files(run_once: tuple[Path, object]) -> None:
    out, _ = run_once
    metas = _metas(out)
    assert len(metas) == 3 + 1 + 1 + 1  # a24 12 s -> 5+5+2, the others one clip each
    for uid, meta in metas.items():
        assert meta["span_uuid"] == uid and meta["valid"] is True and meta["errors"] == {}
        for key in (
            "source_video",
            "duration_span",
            "width_source",
            "height_source",
            "framerate_source",
            "clip_location",
            "num_frames",
            "windows",
        ):
            assert key in meta
        clip = out / meta["clip_path"]
        assert count_decoded_frames(clip) == meta["num_frames"]
        src = probe_video(Path(meta["source_video"]))
        assert (meta["width_source"], meta["height_source"]) == (src.width, src.height)
        start, end = meta["duration_span"]
        assert meta["num_frames"] == round((end - start) * meta["framerate_source"])
        covered = [i for w in meta["windows"] for i in range(w["start_frame"], w["end_frame"] + 1)]
        assert covered == list(range(meta["num_frames"]))
        for w in meta["windows"]:
            assert w["caption_status"] == "skipped"
            assert w["preview_location"] == preview_path(Path(""), uid, w["start_frame"], w["end_frame"]).as_posix()
            img = Image.open(out / w["preview_location"])
            assert img.size[1] == 240
            assert abs(img.size[0] - 240 * src.width / src.height) <= 1
            seconds = (w["end_frame"] - w["start_frame"] + 1) / meta["framerate_source"]
            assert abs(img.n_frames - seconds) <= 1
            n = len(w["sampled_frame_indices"])
            assert n % 2 == 0 and n >= 4


def test_parquet_matches_json(run_once: tuple[Path, object]) -> None:
    out, _ = run_once
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    expected = {
        (uid, w["start_frame"], w["end_frame"]): (meta, w) for uid, meta in _metas(out).items() for w in meta["windows"]
    }
    assert len(rows) == len(expected)
    for row in rows:
        meta, w = expected[(row["clip_uuid"], row["start_frame"], row["end_frame"])]
        assert row["source_video"] == meta["source_video"]
        assert row["preview_path"] == w["preview_location"]
        assert row["caption_status"] == w["caption_status"]
        assert row["start_s"] == pytest.approx(meta["duration_span"][0] + w["start_frame"] / meta["framerate_source"])
        assert row["num_frames"] == w["end_frame"] - w["start_frame"] + 1


def test_rerun_gives_same_ids_and_paths(corpus: Path, run_once: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = run_once

    def layout(root: Path) -> list[str]:
        return sorted(
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "summary.json"
        )

    build(corpus, tmp_path / "again").run()
    assert layout(tmp_path / "again") == layout(out)
    for p in (out / "metas/v0").glob("*.json"):
        assert read_meta(tmp_path / "again/metas/v0" / p.name, tmp_path / "again") == read_meta(p, out)


def test_rerun_in_place_skips_finished(corpus: Path, run_once: tuple[Path, object]) -> None:
    out, _ = run_once
    before = {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.mp4")}
    result = build(corpus, out).run()
    assert result.reports == [] and len(result.skipped) == len(GOOD) + len(BAD)
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.mp4")} == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["skipped_already_done"] == len(GOOD) + len(BAD)
    assert summary["windows"] == len(pq.read_table(out / "windows.parquet"))


def test_output_inside_input_is_not_read_back(corpus: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "v.mp4").write_bytes((corpus / "b25.mov").read_bytes())
    out = src / "out"
    reader = VideoReaderStage(src, exclude=[out])
    build(src, out).run()
    assert [v.relative_path for v in reader.discover()] == ["v.mp4"]


def test_window_preview_bytes_in_memory_decode(corpus: Path) -> None:
    # The in-memory WebP is what lands on disk: check one straight from the stage.
    from vidcap.data import Video

    video = Video(path=corpus / "b25.mov", relative_path="b25.mov")
    for stage in build(corpus, Path("unused")).stages[:-1]:
        video = stage.process(video)
    window = video.clips[0].windows[0]
    assert Image.open(io.BytesIO(window.webp_bytes or b"")).n_frames >= 1


def test_serial_executor_gives_the_same_output(corpus: Path, run_once: tuple[Path, object], tmp_path: Path) -> None:
    from vidcap.executors.local import LocalExecutor

    out, _ = run_once
    build(corpus, tmp_path / "serial").run(LocalExecutor(serial=True))
    for p in (out / "metas/v0").glob("*.json"):
        assert read_meta(tmp_path / "serial/metas/v0" / p.name, tmp_path / "serial") == read_meta(p, out)
    assert pq.read_table(tmp_path / "serial/windows.parquet").equals(pq.read_table(out / "windows.parquet"))


def test_stages_must_fit_together(corpus: Path, tmp_path: Path) -> None:
    from vidcap.stages import CaptionGenerationStage, ConfigError

    with pytest.raises(ConfigError, match="put a CaptionPreparationStage before it"):
        Pipeline([VideoReaderStage(corpus), PreviewStage(), ClipWriterStage(tmp_path)])
    with pytest.raises(ConfigError, match=r"names model_variant qwen2\.5 but CaptionGenerationStage runs qwen3"):
        Pipeline([VideoReaderStage(corpus), CaptionPreparationStage(model_variant="qwen2.5"),
                  CaptionGenerationStage(model_variant="qwen3")])  # fmt: skip
    with pytest.raises(ConfigError, match="needs a CaptionPreparationStage"):
        Pipeline([VideoReaderStage(corpus), CaptionGenerationStage()])
    with pytest.raises(TypeError):
        CaptionGenerationStage("qwen2.5", "vllm")  # type: ignore[misc]  # keyword-only: no silent misbinding


def test_changed_settings_redo_finished_videos(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def run(window_size: int, threads: float = 2) -> object:
        return Pipeline(
            [
                VideoReaderStage(corpus / "b25.mov"),
                ClipSplittingStage(min_clip_length_s=1),
                ClipTranscodingStage(num_cpus_per_worker=threads),
                CaptionPreparationStage(window_size=window_size, remainder_threshold=8),
                ClipWriterStage(out),
            ]
        ).run()

    assert len(run(64).reports) == 1  # type: ignore[attr-defined]
    assert len(run(64, threads=1).reports) == 0  # type: ignore[attr-defined]  # a speed knob: still done
    assert len(run(32).reports) == 1  # type: ignore[attr-defined]  # windows differ: redone
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert [(r["start_frame"], r["end_frame"]) for r in rows] == [(0, 31), (32, 63), (64, 99)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["caption_preparation"]["window_size"] == 32


def test_empty_or_missing_input_touches_no_output(tmp_path: Path) -> None:
    from vidcap.stages import ConfigError

    (tmp_path / "empty").mkdir()
    result = Pipeline([VideoReaderStage(tmp_path / "empty"), ClipWriterStage(tmp_path / "out")]).run()
    assert result.discovered == 0 and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        Pipeline([VideoReaderStage(tmp_path / "nope"), ClipWriterStage(tmp_path / "out")]).run()
    assert not (tmp_path / "out").exists()


def test_settings_of_a_part_that_is_off_are_named_as_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from vidcap.config import RunConfig, as_flag, build_pipeline
    from vidcap.errors import ConfigError

    config = RunConfig(tmp_path, tmp_path / "out", preview_target_fps=3.0, captioning_batch_size=4,
                       enhance_captions_batch_size=2, captioning_window_size=128)  # fmt: skip
    with caplog.at_level("WARNING", logger="vidcap.config"):
        build_pipeline(config, label=as_flag)
    assert [r.getMessage() for r in caplog.records] == [
        "--preview-target-fps without --generate-previews: ignored",
        "--captioning-batch-size without --generate-captions: ignored",
        "--enhance-captions-batch-size without --enhance-captions: ignored",
    ]  # the window size shapes windows with or without captions: not named
    # A value that could never work is refused even for a part that is off.
    with pytest.raises(ConfigError, match="--preview-target-fps must be between"):
        build_pipeline(RunConfig(tmp_path, tmp_path / "out", preview_target_fps=float("nan")), label=as_flag)
    caplog.clear()
    with caplog.at_level("WARNING", logger="vidcap.config"):
        build_pipeline(RunConfig(tmp_path, tmp_path / "out", generate_captions=True, captioning_batch_size=4,
                                 enhance_captions_batch_size=2))  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == ["enhance_captions_batch_size without enhance_captions: ignored"]
