#!/usr/bin/env bash
# `make bench`: runs every benchmark of the release build and prints the machine it ran on:
# the Google Benchmark programs, then the scripts that start processes (the farm's added latency
# and durable submissions, the load tester's capacity). bench/sim_capacity.sh is left out (it
# takes minutes); run it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%d)"
for b in build/bench/bench_*; do
  [ -x "$b" ] || continue
  [ "$(basename "$b")" = bench_farm ] && continue  # the client of farm_bench.sh, below
  echo "== $b"
  "$b" --benchmark_min_time=0.5 "$@"
done
echo "== bench/farm_bench.sh"
bench/farm_bench.sh build ../shared 2>/dev/null | grep -E '^(latency|submit|#)'
echo "== bench/loadtest_capacity.sh"
bench/loadtest_capacity.sh build ../shared 2>/dev/null | grep -E '^(#|[a-z_0-9]+:)'
