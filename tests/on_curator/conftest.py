"""Compatibility tests against NeMo Curator 1.4.0 itself, in .venv-curator (scripts/install_curator.sh): Curator's
own stages run on the clips vidcap wrote. scripts/test.sh runs them there; where nemo_curator is missing they are
not collected."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("nemo_curator") is None:  # another venv: these tests belong to .venv-curator
    collect_ignore_glob = ["test_*.py"]
