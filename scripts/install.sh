#!/usr/bin/env bash
# Install everything vidcap needs into ./.venv: Debian ffmpeg, then the Python stack (about 6.7 GB, most of it
# the CUDA libraries torch brings even on a CPU-only machine).
#   --previews-only   clips, windows, previews, PySceneDetect cuts and the motion filter, without torch or the model
#                     extras (0.8 GB; TransNetV2 needs them); captioning then needs an OpenAI-compatible server: add
#                     `pip install openai` and use --captioning-backend openai.
# Safe to rerun; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
LEAN=0
for arg in "$@"; do
    case "$arg" in
        --previews-only) LEAN=1 ;;
        *) echo "usage: scripts/install.sh [--previews-only]" >&2; exit 2 ;;
    esac
done

encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)
if ! grep -q libwebp <<<"$encoders" || ! grep -q libx264 <<<"$encoders"; then
    echo "[vidcap] installing ffmpeg (Debian package: libx264 + libwebp encoders)"
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

source scripts/venv.sh
make_venv .venv
if [ "$LEAN" = 1 ]; then
    echo "[vidcap] installing vidcap without the model extras into .venv (previews only)"
    .venv/bin/python -m pip install -q -e ".[s3,s3-test,dev]"
    echo "[vidcap] installed: $(.venv/bin/vidcap --help >/dev/null && echo ok) ($(du -sh .venv | cut -f1))"
    exit 0
fi
# torch and torchvision are pinned as a pair, here and not in the extras: these two import together on
# these machines (pip takes them from the local wheel cache); see README.
echo "[vidcap] installing torch 2.14.1 + torchvision 0.29.1, then vidcap with its models, ray, s3 and dev extras into .venv"
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q -e ".[models,ray,s3,s3-test,dev]"
echo "[vidcap] installed: $(.venv/bin/vidcap --help >/dev/null && echo ok)"
