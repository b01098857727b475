#!/usr/bin/env bash
# Issue 6's benchmark: how many jobs per second `comfyfarm loadtest` can drive, and the CPU it
# spends per 1,000 jobs/s, against a simulator that takes no time (--time-scale 0). The harness
# must not be the bottleneck when it measures the farm (target >= 2,000 jobs/s).
# Usage: bench/loadtest_capacity.sh [BUILD_DIR] [SHARED_DIR]
set -euo pipefail
build=${1:-build}
shared=${2:-../shared}
JOBS=${JOBS:-20000}
CONCURRENCY=${CONCURRENCY:-64}
work=$(mktemp -d)
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%d)"
"$build/comfyfarm" sim --listen 127.0.0.1:0 --ready-file "$work/sim.json" --time-scale 0 --log-level warn &
sim_pid=$!
for _ in $(seq 1 300); do [ -s "$work/sim.json" ] && break; sleep 0.1; done
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$work/sim.json")
for wf in model_free_blur txt2img_sd15; do
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$build/comfyfarm" loadtest --server "http://$addr" \
    --workflow "$shared/workflows/$wf.json" --jobs "$JOBS" --concurrency "$CONCURRENCY" --timeout 60 \
    --output "$work/r.json" --sla-p95 1000 >/dev/null 2>&1 || true
  read -r wall user sys rss < "$work/time"
  python3 - "$work/r.json" "$wf" "$wall" "$user" "$sys" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["summary"]
wf, wall, user, sys_, rss = sys.argv[2], *map(float, sys.argv[3:7])
rate = r["throughput"]["jobs_per_s"]
cpu = user + sys_
print(f"{wf}: {r['succeeded']}/{r['jobs']} jobs in {wall:.2f} s wall = {rate:.0f} jobs/s; "
      f"harness CPU {cpu:.2f} s = {cpu / r['jobs'] * 1000 * 1000:.0f} ms per 1,000 jobs "
      f"({cpu / r['jobs'] * 1000 * 100:.1f}% of a core at 1,000 jobs/s); max RSS {rss / 1024:.0f} MiB")
PY
done
