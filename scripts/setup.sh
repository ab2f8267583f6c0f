#!/usr/bin/env bash
# One command from a fresh machine to a finished run: install, make a sample video, run vidcap on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

mkdir -p sample
if [ ! -s sample/sample.mp4 ]; then
    echo "[vidcap] generating sample/sample.mp4 (25 s, 640x360, 30 fps, with audio)"
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=640x360:rate=30:duration=25" \
        -f lavfi -i "sine=frequency=440:duration=25" \
        -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest sample/sample.mp4
fi
.venv/bin/vidcap doctor || true
.venv/bin/vidcap run sample out/sample --generate-previews "$@"
.venv/bin/vidcap gallery out/sample
echo "[vidcap] done: open out/sample/index.html; see also out/sample/summary.json and out/sample/windows.parquet"
