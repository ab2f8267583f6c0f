"""INPUT, OUTPUT and --model-dir in object storage, against a real S3 server (moto's, run as its own process on
127.0.0.1): a whole run, kill -9 and resume, a second INPUT into one prefix, the sweep beside a user's objects,
two runs refused, an endpoint that does not answer, and the Ray executor writing straight to the bucket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import count_decoded_frames, make_video, snapshot

from vidcap import paths

pytest.importorskip("s3fs")
pytest.importorskip("moto")
pytestmark = pytest.mark.slow

SECRET = "vidcap-test-secret-Zq81xK"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "vidcap-test-key",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}
FAST = ["--fixed-stride-split-duration", "2", "--transcode-preset", "ultrafast", "--transcode-cpus-per-worker", "1",
        "--generate-previews", "--captioning-window-size", "24", "--captioning-remainder-threshold", "12"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1, the environment pointing at it, and an fsspec filesystem on it."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in [*CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for bucket in ("media", "results", "models"):
        fs.mkdir(bucket)
    yield fs
    server.send_signal(signal.SIGTERM)
    server.wait(10)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def media(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Videos in s3://media/in (one in a subfolder, one that is not a video) and s3://media/in2, and the
    same files on disk."""
    root = tmp_path_factory.mktemp("media")
    # 7 s: three clips, so this video travels as two tasks (each with its own copy of the source).
    make_video(root / "in" / "v00.mp4", seconds=7, width=320, height=180, fps=30, audio=True)
    make_video(root / "in" / "v01.mov", seconds=4, width=256, height=144, fps=25)
    make_video(root / "in" / "sub" / "v02.mkv", seconds=3, width=192, height=108, fps=24)
    (root / "in" / "broken.mp4").write_text("not a video\n")
    make_video(root / "in2" / "v00.mp4", seconds=3, width=160, height=96, fps=30)  # same name, another video
    make_video(root / "in2" / "v10.mp4", seconds=2, width=160, height=96, fps=30)
    s3.put(str(root / "in") + "/", "media/in/", recursive=True)
    s3.put(str(root / "in2") + "/", "media/in2/", recursive=True)
    return root


def env(tmp: Path, **extra: str) -> dict[str, str]:
    """The subprocess environment: this module's S3 settings, a TMPDIR (source copies) and a cache folder (model
    copies) of its own."""
    (tmp / "tmpdir").mkdir(exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "TMPDIR": str(tmp / "tmpdir"),
            "XDG_CACHE_HOME": str(tmp / "cache"), **extra}  # fmt: skip


def vidcap(*args: str, tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "vidcap.cli", "run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(tmp, **extra), timeout=600)


def objects(fs: Any, prefix: str) -> dict[str, int]:
    fs.invalidate_cache()
    base = prefix.removeprefix("s3://")
    return {k[len(base) + 1 :]: v["size"] for k, v in fs.find(base, detail=True).items()}


def download(fs: Any, prefix: str, to: Path) -> Path:
    fs.invalidate_cache()
    fs.get(prefix.removeprefix("s3://") + "/", str(to) + "/", recursive=True)
    return to


@pytest.fixture(scope="module")
def reference(s3: Any, media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any, Path]:
    """An uninterrupted run from s3://media/in to s3://results/ref: the URL, the finished process, its TMPDIR."""
    tmp = tmp_path_factory.mktemp("ref")
    proc = vidcap("s3://media/in", "s3://results/ref", *FAST, "--verbose", tmp=tmp)
    return "s3://results/ref", proc, tmp / "tmpdir"


def test_a_whole_run_from_bucket_to_bucket(s3: Any, media: Path, reference: Any, tmp_path: Path) -> None:
    url, proc, tmpdir = reference
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "s3://media/in/broken.mp4" in log and "1 failed" in log
    found = objects(s3, url)
    assert paths.LOCK_FILE not in found  # let go of at the end
    assert [k for k in found if k.startswith(paths.STATE_DIR)] == [paths.JOURNAL]  # folded into one
    assert not [k for k in found if paths.TMP_SUFFIX in k]
    local = download(s3, url, tmp_path / "got")
    # Every clip holds the frames its record names; every window has its preview; markers carry the URL.
    metas = [json.loads(p.read_text()) for p in (local / paths.METAS_DIR).iterdir()]
    assert len(metas) >= 3
    for meta in metas:
        assert meta["clip_location"] == f"{url}/{meta['clip_path']}"
        assert count_decoded_frames(local / meta["clip_path"]) == meta["stop_frame"] - meta["start_frame"]
    rows = pq.read_table(local / paths.WINDOWS_PARQUET).to_pylist()
    assert rows and all((local / r["preview_path"]).stat().st_size > 0 for r in rows)
    marker = json.loads((local / paths.MARKERS_DIR / "sub" / "v02.mkv.json").read_text())
    assert marker["video"] == "s3://media/in/sub/v02.mkv" and marker["vidcap"]["fingerprint"]["etag"]
    summary = json.loads((local / paths.SUMMARY_JSON).read_text())
    assert summary["videos"]["ok"] == 3 and summary["videos"]["failed"] == 1
    # The same windows as a run on the same files on disk.
    disk = tmp_path / "disk"
    proc = subprocess.run([sys.executable, "-m", "vidcap.cli", "run", str(media / "in"), str(disk), *FAST],
                          capture_output=True, text=True, env=env(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    on_disk = pq.read_table(disk / paths.WINDOWS_PARQUET).to_pylist()
    key = ("relative_path", "clip_start_s", "clip_end_s", "start_frame", "end_frame", "num_frames")
    assert [[r[k] for k in key] for r in rows] == [[r[k] for k in key] for r in on_disk]
    assert len(metas) == len(list((disk / paths.METAS_DIR).iterdir()))
    # No secret in the log or in any object; no source copy left on this machine.
    assert SECRET not in log
    assert not any(SECRET.encode() in p.read_bytes() for p in local.rglob("*") if p.is_file())
    assert not [p for p in tmpdir.rglob("*") if p.is_file() and "vidcap-sources" in str(p)]


def test_kill_9_and_resume_match_an_uninterrupted_run(s3: Any, media: Path, reference: Any, tmp_path: Path) -> None:
    url = "s3://results/killed"
    cmd = [sys.executable, "-m", "vidcap.cli", "run", "s3://media/in", url, *FAST, "--verbose"]
    with (tmp_path / "log.txt").open("w") as sink:
        run = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env(tmp_path))
        deadline = time.monotonic() + 300
        while sum(k.startswith(paths.MARKERS_DIR) for k in objects(s3, url)) < 2:
            assert run.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        run.send_signal(signal.SIGKILL)
        run.wait()
    left = objects(s3, url)
    assert paths.LOCK_FILE in left and paths.SUMMARY_JSON not in left
    finished = sum(k.startswith(paths.MARKERS_DIR) for k in left)
    proc = vidcap("s3://media/in", url, *FAST, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is gone; taking over" in proc.stderr
    # The killed run's source copies went with the rerun (its process is gone); the rerun's own went as it ended.
    assert not [p for p in (tmp_path / "tmpdir").rglob("*") if p.is_file() and "vidcap-sources" in str(p)]
    got = download(s3, url, tmp_path / "got")
    summary = json.loads((got / paths.SUMMARY_JSON).read_text())
    assert summary["videos"]["skipped_already_done"] == finished
    ref = download(s3, reference[0], tmp_path / "ref")
    assert snapshot(got, url) == snapshot(ref, reference[0])


def test_a_second_input_and_the_sweep_keep_what_they_must(s3: Any, media: Path, tmp_path: Path) -> None:
    url = "s3://results/shared"
    assert vidcap("s3://media/in", url, *FAST, tmp=tmp_path).returncode == 0
    # A user's objects: one beside vidcap's, one inside vidcap's own folder under a name vidcap could give.
    s3.pipe_file("results/shared/notes/readme.txt", b"mine")
    mine = f"{paths.CLIPS_DIR}/00000000-0000-4000-8000-000000000000.mp4"
    s3.pipe_file(f"results/shared/{mine}", b"my clip")
    proc = vidcap("s3://media/in2", url, *FAST, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    markers = sorted(k for k in objects(s3, url) if k.startswith(paths.MARKERS_DIR))
    # in2/v00.mp4 gets a name of its own: in/v00.mp4's results stay.
    assert len(markers) == 4 + 2 and f"{paths.MARKERS_DIR}/v00.mp4.json" in markers
    before = objects(s3, url)
    # Other settings redo in/: the clips of the old settings are vidcap's own and go; the user's stay.
    proc = vidcap("s3://media/in", url, *FAST[2:], "--fixed-stride-split-duration", "3", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = objects(s3, url)
    assert after["notes/readme.txt"] == 4 and after[mine] == len(b"my clip")
    gone = {k for k in before if k.startswith(paths.CLIPS_DIR)} - set(after)
    assert gone and mine not in gone
    got = download(s3, url, tmp_path / "got")
    summary = json.loads((got / paths.SUMMARY_JSON).read_text())
    assert summary["videos"]["ok"] == 3 and summary["videos"]["outdated_settings"] == 2  # in2: the old settings
    clips = {json.loads(p.read_text())["clip_path"] for p in (got / paths.METAS_DIR).iterdir()}
    assert all(c in after for c in clips)


def test_two_runs_on_one_prefix_are_refused(s3: Any, media: Path, tmp_path: Path) -> None:
    from vidcap.output.bucket import BucketOutput

    held = BucketOutput("s3://results/busy")
    held.open()
    try:
        proc = vidcap("s3://media/in2", "s3://results/busy", *FAST, tmp=tmp_path)
        assert proc.returncode == 2
        assert "another vidcap run is writing to s3://results/busy" in proc.stdout + proc.stderr
    finally:
        held.unlock()
    assert paths.LOCK_FILE not in objects(s3, "s3://results/busy")
    assert vidcap("s3://media/in2", "s3://results/busy", *FAST, tmp=tmp_path).returncode == 0


def test_a_run_that_lost_its_lock_removes_nothing(s3: Any, media: Path) -> None:
    from vidcap.output.bucket import BucketOutput, LostLockError

    out = BucketOutput("s3://results/stolen")
    out.open()
    other = json.dumps({"run": "another", "host": "elsewhere", "pid": 1}).encode()
    s3.pipe_file(f"results/stolen/{paths.LOCK_FILE}", other)  # as a run that took over would
    with pytest.raises(LostLockError, match="another run took s3://results/stolen"):
        out.confirm()
    with pytest.raises(LostLockError):
        out.write([("summary.json", b"{}")])
    out.unlock()
    assert s3.cat_file(f"results/stolen/{paths.LOCK_FILE}") == other  # the other run's lock stays


def test_an_endpoint_that_does_not_answer_ends_the_run_with_a_sentence(media: Path, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    proc = vidcap("s3://media/in", str(tmp_path / "out"), tmp=tmp_path, AWS_ENDPOINT_URL=dead)
    text = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "cannot use s3://media/in" in text and "Could not connect" in text, text
    assert not (tmp_path / "out").exists()
    proc = vidcap(str(media / "in2"), "s3://results/x", tmp=tmp_path, AWS_ENDPOINT_URL=dead)
    text = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "cannot use output s3://results/x" in text, text
    assert SECRET not in text
    assert time.monotonic() - start < 120


@pytest.mark.models
def test_model_dir_in_the_bucket(s3: Any, media: Path, tiny_qwen25: Path, tmp_path: Path) -> None:
    """The variant's weights come from --model-dir s3://…: copied to this machine once, then captions."""
    s3.put(str(tiny_qwen25) + "/", "models/zoo/Qwen/Qwen2.5-VL-7B-Instruct/", recursive=True)
    url = "s3://results/captioned"
    args = ["s3://media/in2", url, *FAST, "--generate-captions", "--captioning-max-output-tokens", "4",
            "--model-dir", "s3://models/zoo"]  # fmt: skip
    proc = vidcap(*args, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "copying Qwen/Qwen2.5-VL-7B-Instruct from s3://models/zoo" in proc.stderr
    assert (tmp_path / "cache" / "vidcap" / "models").is_dir()
    got = download(s3, url, tmp_path / "got")
    rows = pq.read_table(got / paths.WINDOWS_PARQUET).to_pylist()
    assert rows and all(r["caption_status"] in ("ok", "truncated") and r["output_tokens"] > 0 for r in rows)


@pytest.mark.ray
def test_ray_workers_write_straight_to_the_bucket(
    s3: Any, media: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytest.importorskip("ray.data")
    import ray

    from vidcap.config import RunConfig, build_pipeline
    from vidcap.executors.ray import RayExecutor

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["TMPDIR"] = str(tmp_path)  # source copies of the workers, too
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")), log_to_driver=False)
    try:
        config = RunConfig(input_path="s3://media/in", output_path="s3://results/ray", fixed_stride_split_duration=2.0,
                           transcode_preset="ultrafast", generate_previews=True)  # fmt: skip
        result = build_pipeline(config).run(RayExecutor())
    finally:
        ray.shutdown()
        os.environ.pop("TMPDIR")
    assert len(result.reports) == 4
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "vidcap-sources" in str(p)]  # on every node
    got = download(s3, "s3://results/ray", tmp_path / "got")
    rows = pq.read_table(got / paths.WINDOWS_PARQUET).to_pylist()
    assert len(rows) == result.summary["windows"] > 0
    for meta in (json.loads(p.read_text()) for p in (got / paths.METAS_DIR).iterdir()):
        assert meta["clip_path"], json.dumps(meta)[-1500:]
        assert count_decoded_frames(got / meta["clip_path"]) == meta["stop_frame"] - meta["start_frame"]
