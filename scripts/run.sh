#!/usr/bin/env bash
# `make run`: a farm of four simulated GPUs (two fast, two half as fast) behind one
# ComfyUI-compatible address, its queue in ./comfyfarm-data (SQLite). Ctrl-C stops it; jobs
# still queued or running are picked up again by the next `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./build/comfyfarm serve --sim 4 --sim-speeds 1,0.5 --sim-time-scale 0.25 \
  --listen 127.0.0.1:8288 --data ./comfyfarm-data "$@"
