"""The end of a run tells the truth: a table of what happened, an exit code that says whether a rerun is
needed, errors sorted by whether a rerun may fix them, and files and processes left as they should be."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import damage, make_video

from vidcap import Pipeline
from vidcap.progress import LogProgress
from vidcap.stages import ClipSplittingStage, ClipTranscodingStage, ClipWriterStage, VideoReaderStage

pytestmark = pytest.mark.slow

ENV = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def vidcap(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidcap.cli", *map(str, args)], capture_output=True, text=True, env=ENV, **kwargs
    )


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two")
    make_video(root / "a.mp4", seconds=3, width=160, height=96, fps=25)
    make_video(root / "b.mp4", seconds=4, width=160, height=96, fps=30)
    return root


@pytest.mark.models
def test_dead_endpoint_ends_with_exit_one_and_says_so(two: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    proc = vidcap("run", two, out, "--generate-captions", "--captioning-backend", "openai",
                  "--openai-base-url", f"http://127.0.0.1:{port}/v1", "--captioning-model", "served")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    text = " ".join(proc.stderr.split())
    assert "captions error │ 2 │ 2" in text  # the table: this run, all of OUTPUT
    assert "no caption of this run is complete: all 2 captions failed" in text
    assert "2 videos failed or are partial for a reason a rerun may fix (a.mp4, b.mp4)" in text
    assert summary(out)["videos"]["retry_needed"] == 2 and summary(out)["caption_status"] == {"error": 2}
    assert all(f["retry"] for f in summary(out)["failures"])


@pytest.mark.models
def test_an_api_key_quoted_by_the_endpoint_is_never_recorded(two: Path, tmp_path: Path) -> None:
    from fake_openai import FakeServer

    server = FakeServer()
    server.script = ["401-echo"] * 10
    key = "sk-live-0123456789abcdefSECRET"
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "run", str(two), str(out), "--generate-captions",
         "--captioning-backend", "openai", "--openai-base-url", server.url, "--captioning-model", "served"],
        capture_output=True, text=True, env={**ENV, "OPENAI_API_KEY": key},
    )  # fmt: skip
    server.httpd.shutdown()
    assert proc.returncode == 1, proc.stderr
    assert server.auth and all(a == f"Bearer {key}" for a in server.auth)  # it was sent, and echoed back
    assert "Incorrect API key provided" in (out / "summary.json").read_text()
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and not any(key.encode() in p.read_bytes() or b"SECRET" in p.read_bytes() for p in written)
    assert key not in proc.stderr and "SECRET" not in proc.stderr and "[redacted]" in proc.stderr


@pytest.mark.models
def test_a_server_that_refuses_frame_times_stops_the_run_unless_accepted(two: Path, tmp_path: Path) -> None:
    from fake_openai import FakeServer

    server = FakeServer()
    server.default = "400-options"  # a vLLM server started without --trust-request-mm-kwargs
    args = ["run", two, tmp_path / "out", "--generate-captions", "--captioning-backend", "openai",
            "--openai-base-url", server.url, "--captioning-model", "served"]  # fmt: skip
    refused = vidcap(*args)
    assert refused.returncode == 2, refused.stderr
    text = " ".join(refused.stderr.split())
    assert "refuses a window's frame times" in text and "--trust-request-mm-kwargs" in text
    assert "--openai-accept-server-timing" in text and not (tmp_path / "out").exists()
    accepted = vidcap(*args, "--openai-accept-server-timing")
    server.httpd.shutdown()
    assert accepted.returncode == 0, accepted.stderr
    windows = [w for p in (tmp_path / "out/metas/v0").glob("*.json") for w in json.loads(p.read_text())["windows"]]
    assert windows and all(w["caption_status"] == "ok" for w in windows)
    assert all(any("without its frame times" in n for n in w["notes"]) for w in windows)


def test_source_failures_alone_exit_zero_and_the_plan_line_says_what_is_done(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = vidcap("run", corpus, out, "--fixed-stride-split-duration", "5")
    assert first.returncode == 0, first.stderr
    assert "videos failed │ 3 │ 3" in " ".join(first.stderr.split())
    again = vidcap("run", corpus, out, "--fixed-stride-split-duration", "5")
    assert again.returncode == 0
    assert ("0 videos to process, 4 done earlier, 3 failed earlier on their own source (unreadable, too short, "
            "damaged; --retry-failed redoes them)") in " ".join(again.stderr.split())  # fmt: skip


def test_disk_full_while_transcoding_is_worth_a_rerun(two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import vidcap.stages.transcoding as transcoding

    real = transcoding.transcode_clip

    def full_disk(source: Path, *args: Any, **kwargs: Any) -> Any:
        if source.name == "b.mp4":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(source, *args, **kwargs)

    out = tmp_path / "out"

    def run() -> Any:
        stages = [VideoReaderStage(two), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
                  ClipWriterStage(out)]  # fmt: skip
        return Pipeline(stages).run()

    monkeypatch.setattr(transcoding, "transcode_clip", full_disk)
    result = run()
    (bad,) = [r for r in result.reports if r.relative_path == "b.mp4"]
    assert bad.status == "partial" and bad.retry and "No space left on device" in bad.errors[0]["reason"]
    assert [r.relative_path for r in result.retry_needed] == ["b.mp4"]
    assert "Traceback" not in caplog.text
    assert sum("No space left on device" in r.getMessage() for r in caplog.records) == 1  # one line
    monkeypatch.setattr(transcoding, "transcode_clip", real)
    again = run()
    assert [r.relative_path for r in again.reports] == ["b.mp4"] and again.reports[0].status == "ok"


def test_full_disk_at_the_end_is_a_sentence_and_exit_one(two: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from typer.testing import CliRunner

    import vidcap.output.files as files
    from vidcap.cli import app

    real = files.atomic_write

    def full_for_run_files(path: Path, data: bytes) -> None:
        if path.name in ("summary.json", "windows.parquet"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(files, "atomic_write", full_for_run_files)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(two), str(out)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "could not write windows.parquet and summary.json" in text and "No space left on device" in text
    assert "next run rebuilds them" in text and "Traceback" not in text
    assert len(list((out / "processed_videos").glob("*.json"))) == 2  # the finished videos are kept
    monkeypatch.setattr(files, "atomic_write", real)
    again = CliRunner().invoke(app, ["run", str(two), str(out)])
    assert again.exit_code == 0 and summary(out)["videos"]["ok"] == 2


def test_disk_full_on_a_real_small_disk(two: Path, tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("this machine does not let tests mount a small disk (tmpfs); the in-process tests cover it")
    try:
        out = mount / "out"
        full = vidcap("run", two, out, "--generate-previews")
        assert full.returncode == 1, full.stderr
        assert "No space left on device" in full.stderr and "Traceback" not in full.stderr
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        fixed = vidcap("run", two, out, "--generate-previews")
        assert fixed.returncode == 0, fixed.stderr
        assert summary(out)["videos"]["ok"] == 2 and not list(out.rglob("*.vidcap-tmp"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_rerun_gives_identical_metas_and_markers(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    make_video(src / "clean.mp4", seconds=3, width=160, height=96, fps=25)
    damage(make_video(src / "damaged.mp4", seconds=6, fps=30, extra=["-movflags", "+faststart"]), 0.5, 20000)
    out = tmp_path / "out"

    def contents() -> dict[str, Any]:
        found = {}
        for path in sorted([*(out / "metas").rglob("*.json"), *(out / "processed_videos").rglob("*.json")]):
            data = json.loads(path.read_text())
            data.get("vidcap", data).pop("timings_s", None)
            found[path.relative_to(out).as_posix()] = data
        return found

    assert vidcap("run", src, out, "--generate-previews").returncode == 0
    first = contents()
    assert any("source has decode errors" in json.dumps(m) for m in first.values())
    for _ in range(2):
        assert vidcap("run", src, out, "--generate-previews", "--overwrite").returncode == 0
        assert contents() == first


def test_limit_after_a_settings_change_counts_only_current_videos(two: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert vidcap("run", two, out, "--generate-previews").returncode == 0
    assert summary(out)["videos"]["total"] == 2
    proc = vidcap("run", two, out, "--generate-previews", "--captioning-window-size", "32", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    videos = summary(out)["videos"]
    assert videos["total"] == 1 and videos["outdated_settings"] == 1
    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert {r["relative_path"] for r in rows} == {"a.mp4"}  # only the video made with these settings
    assert [r["start_frame"] for r in rows] == [0, 32]  # 75 frames: windows of 32, the remainder merged
    assert "made with other settings and are not counted" in proc.stderr


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_files_follow_the_umask(two: Path, tmp_path: Path, umask: int, mode: int) -> None:
    out = tmp_path / "out"
    proc = vidcap("run", two, out, "--generate-previews", preexec_fn=lambda: os.umask(umask))
    assert proc.returncode == 0, proc.stderr
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".vidcap.lock"]
    assert len(written) > 8
    assert {p.stat().st_mode & 0o777 for p in written} == {mode}


def _ffmpeg_children(marker: str) -> list[int]:
    """ffmpeg processes whose command line mentions ``marker`` (their scratch folder is under OUTPUT)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "ffmpeg" in cmdline.split("\0")[0] and marker in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def slow_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slow")
    for i in range(3):
        make_video(root / f"long{i}.mp4", seconds=40, width=640, height=360, fps=30)
    return root


@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGTERM, 143, "interrupted (SIGTERM); rerun to resume"),
    (signal.SIGINT, 130, "interrupted; rerun to resume"),
    (signal.SIGKILL, -9, None),
])  # fmt: skip
def test_interrupted_runs_leave_no_children_and_no_temp(
    slow_source: Path, tmp_path: Path, sig: int, code: int, line: str | None
) -> None:
    out = tmp_path / "out"
    tmpdir = tmp_path / "systmp"
    tmpdir.mkdir()
    env = {**ENV, "TMPDIR": str(tmpdir)}
    cmd = [sys.executable, "-m", "vidcap.cli", "run", str(slow_source), str(out), "--generate-previews",
           "--transcode-preset", "veryslow"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not _ffmpeg_children(str(out)):
        assert proc.poll() is None and time.monotonic() < deadline, "no ffmpeg started"
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if line is not None:
        assert err.strip().splitlines()[-1] == line
    deadline = time.monotonic() + 10
    while _ffmpeg_children(str(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ffmpeg_children(str(out)) == []  # ffmpeg died with vidcap
    assert list(tmpdir.iterdir()) == []  # nothing in the system's temp folder
    # The lock went with the process, and the next run clears the scratch a killed run left.
    rerun = subprocess.run([*cmd[:-2], "--limit", "1"], capture_output=True, text=True, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert list((out / ".vidcap" / "tmp").iterdir()) == []
    assert not list(out.rglob("*.vidcap-tmp"))


def test_a_hung_ffmpeg_is_stopped(two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    real = subprocess.run(["which", "ffmpeg"], capture_output=True, text=True, check=True).stdout.strip()
    # Hangs on b.mp4, like an encoder stuck on one input; passes everything else to the real ffmpeg.
    fake.write_text(f'#!/bin/sh\ncase "$*" in *b.mp4*) exec sleep 600;; esac\nexec {real} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    out = tmp_path / "out"
    start = time.monotonic()
    stages = [VideoReaderStage(two), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast", timeout_s=2),
              ClipWriterStage(out)]  # fmt: skip
    result = Pipeline(stages).run()
    assert time.monotonic() - start < 60
    by_name = {r.relative_path: r for r in result.reports}
    assert by_name["a.mp4"].status == "ok"
    assert by_name["b.mp4"].retry and "timed out after 2 s" in by_name["b.mp4"].errors[0]["reason"]
    assert _ffmpeg_children(str(out)) == []


def test_previews_only_run_does_not_load_torch(two: Path, tmp_path: Path) -> None:
    script = (
        "import sys\nfrom vidcap.cli import app\n"
        f"code = app(['run', {str(two)!r}, {str(tmp_path / 'out')!r}, '--generate-previews'], standalone_mode=False)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('RESULT', code, 'torch' in sys.modules, int(hwm) // 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    _, code, torch_loaded, peak_mb = proc.stdout.strip().splitlines()[-1].split()
    assert code in ("0", "None") and torch_loaded == "False"
    assert int(peak_mb) < 300, peak_mb


def test_python_api_logs_progress_and_returns_the_counts(two: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    from vidcap.stages import CaptionPreparationStage

    stages = [VideoReaderStage(two), ClipSplittingStage(), ClipTranscodingStage(preset="ultrafast"),
              CaptionPreparationStage(window_size=32, remainder_threshold=8),
              ClipWriterStage(tmp_path / "out")]  # fmt: skip
    with caplog.at_level("INFO", logger="vidcap"):
        result = Pipeline(stages).run(progress=LogProgress(every_s=0))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    windows = sum(r.windows for r in result.reports)
    assert lines[0].startswith("progress: 0/2 videos, 0 windows")
    assert "1/2 videos" in lines[1] and "left" in lines[1]  # an estimate of the time left
    assert lines[-1].startswith(f"progress: 2/2 videos, {windows} windows")
    assert len(result.reports) == 2 and windows == summary(tmp_path / "out")["windows"] == 7


def test_gallery_shows_problems_and_says_why_it_cannot_write(corpus: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from typer.testing import CliRunner

    import vidcap.output.files as files
    from vidcap.cli import app
    from vidcap.gallery import render_gallery

    out = tmp_path / "out"
    assert vidcap("run", corpus, out, "--fixed-stride-split-duration", "5").returncode == 0
    (out / "index.html").write_text("<html>my own page</html>")
    refused = CliRunner().invoke(app, ["gallery", str(out)])
    assert refused.exit_code == 2 and "was not written by vidcap" in refused.output
    assert (out / "index.html").read_text() == "<html>my own page</html>"
    (out / "index.html").unlink()

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files, "atomic_write", read_only)
    result = CliRunner().invoke(app, ["gallery", str(out)])
    assert result.exit_code == 2 and "cannot write" in result.output and "Read-only file system" in result.output
    assert "Traceback" not in result.output
    row = {"clip_uuid": "2c07bf50-4d24-5cb1-a028-f93c5afbea2e", "source_video": "/v.mp4", "relative_path": "v.mp4",
           "start_s": 0.0, "end_s": 1.0, "start_frame": 0, "end_frame": 9, "qwen_caption": "x" * 5000,
           "caption_status": "truncated", "preview_path": None, "clip_path": None}  # fmt: skip
    page = render_gallery([row, {**row, "caption_status": "ok"}, {**row, "caption_status": "ok"}], "t")
    assert "overflow-wrap: anywhere" in page  # a long unbroken caption wraps inside its card
    assert '<option value="ok">ok (2)</option>' in page and '<option value="truncated">truncated (1)</option>' in page
