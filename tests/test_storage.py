"""The pure parts of object storage: which locations are URLs, and the copies of a source a task owns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vidcap.data import Video
from vidcap.errors import ConfigError
from vidcap.executors.base import drop_payloads, split_task
from vidcap.media.sources import release, remove_stale, run_token, split_copies, staged_path, staging_root
from vidcap.storage import is_url, local_cache, local_path, open_fs, private_dir


@pytest.mark.parametrize(
    ("location", "expected"),
    [("s3://bucket/prefix", True), ("gs://b/p", True), ("S3://b", True), ("file:///tmp/x", False),
     ("/data/videos", False), ("./s3:/x", False), ("videos", False), (Path("s3://x"), False)],
)  # fmt: skip
def test_which_locations_are_object_storage(location: object, expected: bool) -> None:
    assert is_url(location) is expected


def test_local_cache_is_per_location_and_the_same_on_every_call() -> None:
    a, b = local_cache("s3://m/zoo", "models"), local_cache("s3://m/zoo/", "models")
    assert a == b and a != local_cache("s3://m/other", "models") and a.name.startswith("zoo-")


def _remote_video(tmp_path: Path, clips: int) -> Video:
    from vidcap.data import Clip

    url = "s3://media/in/a long name.mp4"
    video = Video(path=staged_path(url, "1.abc"), relative_path="a long name.mp4", url=url)
    video.path.parent.mkdir(parents=True)
    video.path.write_bytes(b"video bytes")
    video.clips = [
        Clip(f"00000000-0000-4000-8000-00000000000{i}", url, i, i + 1, 30.0, (0.0, 1.0)) for i in range(clips)
    ]
    return video


def test_each_task_owns_a_link_to_the_one_copy_and_the_last_to_let_go_removes_it(tmp_path: Path) -> None:
    video = _remote_video(tmp_path, 5)
    try:
        tasks = split_task(video, 2)
        assert [t.path.name for t in tasks] == [f"{k}of3-a long name.mp4" for k in range(3)]
        assert not video.path.exists() and all(t.path.read_bytes() == b"video bytes" for t in tasks)
        assert os.stat(tasks[0].path).st_nlink == 3  # one file, three names
        drop_payloads(tasks[0], frozenset({"video.source"}))
        assert not tasks[0].path.exists() and tasks[1].path.read_bytes() == b"video bytes"
        for task in tasks[1:]:
            release(task)
        assert not video.path.parent.exists()  # the run's folder for this source goes with the last copy
    finally:
        for task in [video, *locals().get("tasks", [])]:
            release(task)


def test_a_local_source_is_never_removed(tmp_path: Path) -> None:
    source = tmp_path / "mine.mp4"
    source.write_bytes(b"x")
    video = Video(path=source, relative_path="mine.mp4")
    drop_payloads(video, frozenset({"video.source"}))
    split_copies(video, [video, video])
    release(video)
    assert source.read_bytes() == b"x"


def test_copies_of_a_run_whose_process_is_gone_are_removed(tmp_path: Path) -> None:
    host = run_token().split(".")[0]
    dead = staging_root() / f"{host}.999999999.deadbeef-0123456789abcdef"
    alive = staging_root() / f"{host}.{os.getpid()}.cafe-0123456789abcdef"
    elsewhere = staging_root() / "another-machine.999999999.beef-0123456789abcdef"  # its pid means nothing here
    for folder in (dead, alive, elsewhere):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "0of1-a.mp4").write_bytes(b"x")
    remove_stale()
    assert not dead.exists() and (alive / "0of1-a.mp4").exists() and (elsewhere / "0of1-a.mp4").exists()
    release(Video(path=elsewhere / "0of1-a.mp4", relative_path="a.mp4", url="s3://b/a.mp4"))
    release(Video(path=alive / "0of1-a.mp4", relative_path="a.mp4", url="s3://b/a.mp4"))
    assert not alive.exists()


@pytest.mark.parametrize(
    "url",
    ["s3://AKIAEXAMPLE:secretvalue@bucket/videos", "https://host/v.mp4?X-Amz-Signature=abc&X-Amz-Credential=k"],
)
def test_a_url_with_credentials_in_it_is_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(ConfigError, match="in the environment") as caught:
        open_fs(url)
    assert "secretvalue" not in str(caught.value) and "abc" not in str(caught.value).split("?")[-1]


def test_a_file_url_is_a_plain_path() -> None:
    assert local_path("file:///data/videos") == "/data/videos" and local_path("s3://b/p") == "s3://b/p"


def test_a_folder_someone_planted_under_vidcaps_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "vidcap-sources-0").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="not a folder of this user's"):
        private_dir(tmp_path / "vidcap-sources-0")
    made = private_dir(tmp_path / "mine")
    assert made.stat().st_mode & 0o777 == 0o700
