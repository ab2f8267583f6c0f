from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    tmp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp), log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_matches_local(ray_local: object, corpus: Path, tmp_path: Path) -> None:
    from test_pipeline import build

    from vidcap.executors.ray import RayExecutor

    local, remote = tmp_path / "local", tmp_path / "ray"
    build(corpus, local).run()
    result = build(corpus, remote).run(RayExecutor())
    assert len(result.reports) == 7
    a = json.loads((local / "summary.json").read_text())
    b = json.loads((remote / "summary.json").read_text())
    for key in ("videos", "clips", "windows", "previews", "failed_videos"):
        assert a[key] == b[key], key
    meta_names = sorted(p.name for p in (local / "metas/v0").iterdir())
    assert meta_names == sorted(p.name for p in (remote / "metas/v0").iterdir())
    for name in meta_names:
        assert (local / "metas/v0" / name).read_text() == (remote / "metas/v0" / name).read_text()
