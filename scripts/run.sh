#!/usr/bin/env bash
# `make run`: until the farm service (`comfyfarm serve`) lands, starts two simulated ComfyUI
# servers in the foreground (Ctrl-C stops them). Point any ComfyUI client at the printed URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "make run: the farm service does not exist yet; starting 2 simulated ComfyUI servers"
echo "(comfyfarm sim, docs/sim.md). Try: curl http://127.0.0.1:8188/system_stats"
exec ./build/comfyfarm sim --count 2 --listen 127.0.0.1:8188 "$@"
