#!/usr/bin/env bash
# End-to-end: the npm client @saintno/comfyui-sdk, unchanged, against `comfyfarm sim`, for
# model_free_blur.json and txt2img_sd15.json; outputs are downloaded through /view.
#   sdk_e2e.sh COMFYFARM_BINARY SHARED_DIR WORK_DIR
set -euo pipefail
bin=$1
shared=$2
work=$3
here="$(cd "$(dirname "$0")" && pwd)"

command -v node >/dev/null || { echo "sdk_e2e: node is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$work"
cp "$here/sdk/package.json" "$here/sdk/package-lock.json" "$here/sdk/run_workflow.mjs" "$work/"
if [ ! -f "$work/node_modules/@saintno/comfyui-sdk/package.json" ]; then
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
fi

ready="$work/ready.json"
rm -f "$ready"
"$bin" sim --listen 127.0.0.1:0 --ready-file "$ready" --time-scale 0.01 >"$work/sim.log" 2>&1 &
sim_pid=$!
cleanup() { kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 300); do
  [ -s "$ready" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "sdk_e2e: the simulator exited:" >&2; cat "$work/sim.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$ready" ] || { echo "sdk_e2e: no ready file after 30 s" >&2; exit 1; }
addr=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).http)' "$ready")
url="http://$addr"

status=0
# workflow, output node, fewest progress events (txt2img_sd15 samples 20 steps)
for case in "model_free_blur.json 4 0" "txt2img_sd15.json 9 20"; do
  set -- $case
  echo "sdk_e2e: $1 against $url"
  if ! (cd "$work" && node run_workflow.mjs "$url" "$shared/workflows/$1" "$2" "$3"); then
    status=1
  fi
done
exit $status
