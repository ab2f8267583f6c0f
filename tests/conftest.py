from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from helpers import make_video


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good videos of several sizes and rates, with and without audio, plus unreadable files."""
    root = tmp_path_factory.mktemp("corpus")
    make_video(root / "a24_audio.mp4", seconds=12, width=320, height=240, fps=24, audio=True)
    make_video(root / "b25.mov", seconds=4, width=352, height=288, fps=25)
    (root / "sub").mkdir()
    make_video(root / "sub" / "c60.mkv", seconds=3, width=256, height=144, fps=60)
    make_video(root / "d30_wide.mp4", seconds=5, width=480, height=200, fps=30, audio=True)
    (root / "bad").mkdir()
    (root / "bad" / "zero.mp4").write_bytes(b"")
    (root / "bad" / "notes.mp4").write_text("this is a text file, not a video\n")
    whole = make_video(root / "bad" / "full.mp4", seconds=4, width=320, height=180, fps=30)
    data = whole.read_bytes()
    whole.unlink()
    (root / "bad" / "truncated.mp4").write_bytes(data[: len(data) // 2])
    return root


@pytest.fixture(scope="session")
def tiny_qwen25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import build_qwen25_vl

    return build_qwen25_vl(tmp_path_factory.mktemp("tiny") / "qwen25vl")


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import build_qwen3_vl

    return build_qwen3_vl(tmp_path_factory.mktemp("tiny") / "qwen3vl")


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import build_qwen2_lm

    return build_qwen2_lm(tmp_path_factory.mktemp("tiny") / "qwen2lm")


@pytest.fixture(scope="session")
def tiny_qwen3_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import build_qwen3_lm

    return build_qwen3_lm(tmp_path_factory.mktemp("tiny") / "qwen3lm")


@pytest.fixture(scope="session")
def tiny_nemotron(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import build_nemotron_vl

    return build_nemotron_vl(tmp_path_factory.mktemp("tiny") / "nemotron")


@pytest.fixture(scope="session")
def tiny_nemotron_omni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import build_nemotron_omni

    return build_nemotron_omni(tmp_path_factory.mktemp("tiny") / "nemotron_omni")
