#!/usr/bin/env bash
# NeMo Curator 1.4.0 with its CPU video extra, in its own venv (.venv-curator): the reference the compatibility
# tests (tests/on_curator) and bench/bench_curator.py run. A separate venv because Curator pins its own stack.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh
make_venv .venv-curator
if ! .venv-curator/bin/python -c "import nemo_curator" >/dev/null 2>&1; then
    echo "[vidcap] installing nemo-curator[video-cpu]==1.4.0 into .venv-curator (a few minutes)"
    # torch from the pair this machine has on disk (a plain torch would pull a CUDA build of several GB more).
    .venv-curator/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
    .venv-curator/bin/python -m pip install -q "nemo-curator[video-cpu]==1.4.0"
fi
# vidcap itself (to make the inputs and compare), without its model extras.
.venv-curator/bin/python -m pip install -q -e ".[dev]"
.venv-curator/bin/python -c "import nemo_curator, vidcap; print('[vidcap] .venv-curator: nemo_curator', nemo_curator.__version__)"
