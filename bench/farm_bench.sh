#!/usr/bin/env bash
# Farm benchmarks 2 and 3 (issue 5), measured side by side in one run:
#   latency: the time `comfyfarm serve` adds per job, against submitting straight to the same
#            simulated backend (time scale 0: the backend itself takes ~no time);
#   submit:  durable submissions per second through the farm's POST /prompt (each committed to
#            SQLite before the reply), next to the simulator's own in-memory queue.
# Usage: bench/farm_bench.sh [BUILD_DIR] [SHARED_DIR]
set -euo pipefail
build=${1:-build}
shared=${2:-../shared}
bin="$build/comfyfarm"
client="$build/bench/bench_farm"
JOBS=${JOBS:-500}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
CONNECTIONS=${CONNECTIONS:-32}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() {  # file
  for _ in $(seq 1 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "farm_bench: no ready file $1" >&2; exit 1
}
addr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$1"; }

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%d)"

# --- latency ----------------------------------------------------------------------------------
"$bin" sim --listen 127.0.0.1:0 --ready-file "$work/sim.json" --time-scale 0 --log-level warn &
pids+=($!)
wait_ready "$work/sim.json"
sim="http://$(addr "$work/sim.json")"
"$bin" serve --listen 127.0.0.1:0 --ready-file "$work/farm.json" --data "$work/farm" \
  --backend "sim=$sim" --log-level warn &
pids+=($!)
wait_ready "$work/farm.json"
farm="http://$(addr "$work/farm.json")"
sleep 1  # the farm reads the backend's catalog
for wf in model_free_blur txt2img_sd15; do
  echo "latency $wf direct: $("$client" latency "$sim" "$shared/workflows/$wf.json" --jobs "$JOBS")"
  echo "latency $wf farm:   $("$client" latency "$farm" "$shared/workflows/$wf.json" --jobs "$JOBS")"
done
kill -TERM "${pids[@]}"; wait 2>/dev/null || true; pids=()

# --- submissions per second -------------------------------------------------------------------
# The backend never starts a prompt (stall), so everything stays queued: the rate measured is
# validation + durable commit + queueing, not rendering.
"$bin" sim --listen 127.0.0.1:0 --ready-file "$work/sim2.json" --time-scale 0 --fault stall --log-level warn &
pids+=($!)
wait_ready "$work/sim2.json"
sim2="http://$(addr "$work/sim2.json")"
"$bin" serve --listen 127.0.0.1:0 --ready-file "$work/farm2.json" --data "$work/farm2" \
  --backend "sim=$sim2" --queue-capacity 5000000 --start-timeout 3600 --log-level warn &
pids+=($!)
wait_ready "$work/farm2.json"
farm2="http://$(addr "$work/farm2.json")"
sleep 1
wf="$shared/workflows/txt2img_sd15.json"
echo "submit farm (durable):     $("$client" submit "$farm2" "$wf" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN")"
echo "submit sim (in memory):    $("$client" submit "$sim2" "$wf" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN")"
