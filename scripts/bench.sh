#!/usr/bin/env bash
# `make bench`: runs every benchmark of the release build and prints the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%d)"
for b in build/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $b"
  "$b" --benchmark_min_time=0.5 "$@"
done
