#!/usr/bin/env bash
# End-to-end: the npm client @saintno/comfyui-sdk, unchanged, against comfyfarm.
#   sdk_e2e.sh COMFYFARM_BINARY SHARED_DIR WORK_DIR [sim|farm]
#
# sim  (default): against `comfyfarm sim`, one simulated ComfyUI server.
# farm:           against `comfyfarm serve --sim 2`, the farm in front of two simulated backends
#                 (its database and output copies in WORK_DIR/farm-data, wiped first).
#
# Both run model_free_blur.json and txt2img_sd15.json through ComfyApi + CallWrapper
# (run_workflow.mjs), then several prompts at once through ComfyPool with two ComfyApi clients
# on the same URL (run_pool.mjs); every output is downloaded through /view. The farm mode also
# checks through the farm API that every job it was given succeeded.
set -euo pipefail
bin=$1
shared=$2
work=$3
mode=${4:-sim}
here="$(cd "$(dirname "$0")" && pwd)"
case "$mode" in
  sim | farm) ;;
  *) echo "sdk_e2e: unknown mode '$mode' (sim or farm)" >&2; exit 2 ;;
esac

command -v node >/dev/null || { echo "sdk_e2e: node is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$work"
cp "$here/sdk/package.json" "$here/sdk/package-lock.json" "$here/sdk/run_workflow.mjs" "$here/sdk/run_pool.mjs" "$work/"
if [ ! -f "$work/node_modules/@saintno/comfyui-sdk/package.json" ]; then
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
fi

ready="$work/ready.json"
log="$work/$mode.log"
rm -f "$ready"
if [ "$mode" = farm ]; then
  rm -rf "$work/farm-data"
  "$bin" serve --listen 127.0.0.1:0 --ready-file "$ready" --data "$work/farm-data" \
    --sim 2 --sim-time-scale 0.01 >"$log" 2>&1 &
else
  "$bin" sim --listen 127.0.0.1:0 --ready-file "$ready" --time-scale 0.01 >"$log" 2>&1 &
fi
server_pid=$!
cleanup() { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 300); do
  [ -s "$ready" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "sdk_e2e: the $mode server exited:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$ready" ] || { echo "sdk_e2e: no ready file after 30 s" >&2; exit 1; }
addr=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).http)' "$ready")
url="http://$addr"

status=0
# workflow, output node, fewest progress events (txt2img_sd15 samples 20 steps)
for case in "model_free_blur.json 4 0" "txt2img_sd15.json 9 20"; do
  set -- $case
  echo "sdk_e2e[$mode]: $1 against $url"
  if ! (cd "$work" && node run_workflow.mjs "$url" "$shared/workflows/$1" "$2" "$3"); then
    status=1
  fi
done

echo "sdk_e2e[$mode]: ComfyPool, 4 x model_free_blur.json + 2 x txt2img_sd15.json at once, against $url"
if ! (cd "$work" && node run_pool.mjs "$url" "$shared/workflows" 4 2); then
  status=1
fi

if [ "$mode" = farm ]; then
  # The farm's own account: 2 + 6 jobs, all succeeded, none retried.
  echo "sdk_e2e[$mode]: farm API /api/farm/jobs"
  if ! node --input-type=module -e '
    const url = process.argv[1];
    const res = await fetch(url + "/api/farm/jobs?limit=1000");
    if (!res.ok) { console.log(`GET /api/farm/jobs: HTTP ${res.status}`); process.exit(1); }
    const { jobs } = await res.json();
    const bad = jobs.filter((j) => j.state !== "succeeded" || j.badge !== "Done");
    console.log(JSON.stringify({ jobs: jobs.length, not_succeeded: bad.map((j) => [j.id, j.state, j.last_error]) }));
    process.exit(jobs.length === 8 && bad.length === 0 ? 0 : 1);
  ' "$url"; then
    status=1
  fi
fi

if [ $status -ne 0 ]; then
  echo "sdk_e2e[$mode]: FAILED; the server's log:" >&2
  tail -n 60 "$log" >&2
fi
exit $status
