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
        ("C:\\\\videos\\\\v.mp4", "C_/videos/v.mp4"),
    ],
)
def test_marker_paths_stay_inside(rel: str, expected: str, tmp_path: Path) -> None:
    assert paths.sanitize_relative(rel) == expected
    assert paths.marker_path(tmp_path, rel).resolve().is_relative_to(tmp_path.resolve())


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x" / "f.json"
    paths.atomic_write_text(target, "one")
    paths.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
