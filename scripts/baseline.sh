#!/usr/bin/env bash
# `make baseline`: the SLA baseline of docs/sla.md on a simulated farm. Starts the farm of
# `make run` (four simulated GPUs, two fast and two half as fast, --sim-time-scale 0.25) on a
# loopback port the OS picks, with a throw-away queue, replays the seed's load against it
#   comfyfarm loadtest --jobs 60 --concurrency 5 --timeout 420
# and prints `.summary` and the SLA verdict. Exit status: the loadtest's (0 pass, 3 breach,
# 2 harness error).
#
# Environment (all optional; prefixed so that the Makefile's JOBS, its build parallelism, does not
# leak in): BASELINE_WORKFLOW (default ../shared/workflows/txt2img_sd15.json), BASELINE_JOBS (60),
# BASELINE_CONCURRENCY (5), BASELINE_TIMEOUT (420), BASELINE_TIME_SCALE (0.25), BASELINE_OUT_DIR
# (build/baselines/<UTC time>: where report.json, jobs.ndjson, the Locust CSVs and the farm's log
# are kept). Extra arguments go to `comfyfarm loadtest` (e.g. --sla my-sla.json).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=./build/comfyfarm
WORKFLOW=${BASELINE_WORKFLOW:-../shared/workflows/txt2img_sd15.json}
JOBS=${BASELINE_JOBS:-60}
CONCURRENCY=${BASELINE_CONCURRENCY:-5}
TIMEOUT=${BASELINE_TIMEOUT:-420}
TIME_SCALE=${BASELINE_TIME_SCALE:-0.25}
OUT_DIR=${BASELINE_OUT_DIR:-build/baselines/$(date -u +%Y%m%dT%H%M%SZ)}

[ -x "$BIN" ] || { echo "baseline: $BIN is missing; run 'make build' first" >&2; exit 2; }
[ -r "$WORKFLOW" ] || { echo "baseline: cannot read the workflow $WORKFLOW" >&2; exit 2; }
mkdir -p "$OUT_DIR"
work=$(mktemp -d /tmp/comfyfarm-baseline-XXXXXX)
farm_pid=""
cleanup() {
  if [ -n "$farm_pid" ] && kill -0 "$farm_pid" 2>/dev/null; then
    kill -TERM "$farm_pid" 2>/dev/null || true
    wait "$farm_pid" 2>/dev/null || true
  fi
  cp "$work/farm.log" "$OUT_DIR/farm.log" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

json_field() {  # json_field FILE KEY: a top-level string field (jq when present, else python3)
  if command -v jq >/dev/null; then jq -r ".$2" "$1"; else python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; fi
}

"$BIN" serve --sim 4 --sim-speeds 1,0.5 --sim-time-scale "$TIME_SCALE" --listen 127.0.0.1:0 \
  --ready-file "$work/ready.json" --data "$work/data" --grace 1 --log-level warn >"$work/farm.log" 2>&1 &
farm_pid=$!
for _ in $(seq 300); do
  [ -s "$work/ready.json" ] && break
  kill -0 "$farm_pid" 2>/dev/null || { echo "baseline: the farm exited; its log:" >&2; cat "$work/farm.log" >&2; exit 2; }
  sleep 0.1
done
[ -s "$work/ready.json" ] || { echo "baseline: the farm did not start within 30 s" >&2; exit 2; }
url="http://$(json_field "$work/ready.json" http)"

# Measure the whole farm: wait until its four backends are up.
for _ in $(seq 300); do
  up=$(curl -fsS "$url/api/farm/backends" 2>/dev/null | grep -o '"state": *"up"' | wc -l || true)
  [ "${up:-0}" -ge 4 ] && break
  sleep 0.1
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "farm:    $url (comfyfarm serve --sim 4 --sim-speeds 1,0.5 --sim-time-scale $TIME_SCALE)"
cmd=("$BIN" loadtest --server "$url" --workflow "$WORKFLOW" --jobs "$JOBS" --concurrency "$CONCURRENCY"
  --timeout "$TIMEOUT" --output "$OUT_DIR/report.json" --ndjson "$OUT_DIR/jobs.ndjson" --csv "$OUT_DIR/load" "$@")
echo "command: ${cmd[*]}"
status=0
"${cmd[@]}" || status=$?
if [ -s "$OUT_DIR/report.json" ]; then
  echo "== jq '.summary' $OUT_DIR/report.json"
  if command -v jq >/dev/null; then
    jq '.summary' "$OUT_DIR/report.json"
  else
    python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['summary'], indent=2))" "$OUT_DIR/report.json"
  fi
fi
echo "baseline: exit $status ($([ $status -eq 0 ] && echo pass || { [ $status -eq 3 ] && echo 'SLA breach' || echo 'harness error'; }))," \
  "reports in $OUT_DIR"
exit "$status"
