from __future__ import annotations

from pathlib import Path

import pytest

from vidcap import paths, preview_path

UID = "2c07bf50-4d24-5cb1-a028-f93c5afbea2e"


def test_preview_path_layout() -> None:
    assert preview_path("/out", UID, 0, 255) == Path(f"/out/previews/{UID}/0_255.webp")
    assert paths.clip_path(Path("/out"), UID) == Path(f"/out/clips/{UID}.mp4")
    assert paths.meta_path(Path("/out"), UID) == Path(f"/out/metas/v0/{UID}.json")


def test_non_uuid_names_refused() -> None:
    with pytest.raises(ValueError):
        preview_path("/out", "../../etc/passwd", 0, 1)


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("a/b.mp4", "a/b.mp4"),
        ("/abs/x.mp4", "abs/x.mp4"),
        ("../../up.mp4", "up.mp4"),
        ("./a/./b.mp4", "a/b.mp4"),
        # Backslashes and colons are ordinary characters of POSIX names: kept as they are.
        ("C:\\videos\\v.mp4", "C:\\videos\\v.mp4"),
        ("a\\b/c:d.mp4", "a\\b/c:d.mp4"),
        # A byte that is not UTF-8 (Python keeps it as a surrogate) becomes a visible escape.
        ("bad\udcff.mp4", "bad\\xff.mp4"),
    ],
)
def test_marker_paths_stay_inside(rel: str, expected: str, tmp_path: Path) -> None:
    assert paths.sanitize_relative(rel) == expected
    assert paths.marker_path(tmp_path, rel).resolve().is_relative_to(tmp_path.resolve())


def test_marker_names_never_collide_and_always_fit() -> None:
    # A folder named like a marker gets ".d", so `a.mp4` and `a.mp4.json/b.mp4` have markers that can coexist.
    assert paths.marker_relative("a.mp4") == "processed_videos/a.mp4.json"
    assert paths.marker_relative("a.mp4.json/b.mp4") == "processed_videos/a.mp4.json.d/b.mp4.json"
    assert paths.marker_relative("a.mp4.json.d/b.mp4") == "processed_videos/a.mp4.json.d.d/b.mp4.json"
    long = "é" * 120 + ".mp4"  # 244 bytes: legal as a name, too long with ".json" added
    marker = paths.marker_relative(long).split("/")[-1]
    assert len(marker.encode()) <= 255 and marker.endswith(".json")
    assert marker != paths.marker_relative("é" * 120 + "x.mp4").split("/")[-1]
    assert len(paths.temp_name(marker).encode()) <= 255


def test_atomic_write_leaves_no_temp_and_follows_umask(tmp_path: Path) -> None:
    import os

    from vidcap.output.files import atomic_write

    target = tmp_path / "x" / "f.json"
    old = os.umask(0o022)
    try:
        atomic_write(target, b"one")
        os.umask(0o077)
        atomic_write(target.parent / "g.json", b"two")
    finally:
        os.umask(old)
    assert target.read_text() == "one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json", "g.json"]
    assert target.stat().st_mode & 0o777 == 0o644  # readable by a web server or a teammate, as the umask says
    assert (target.parent / "g.json").stat().st_mode & 0o777 == 0o600
