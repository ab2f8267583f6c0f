#!/usr/bin/env bash
# The test suite (needs scripts/install.sh to have run once).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled
exec .venv/bin/python -m pytest -q "$@"
