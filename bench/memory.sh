#!/usr/bin/env bash
# bench/memory.sh [LIVE_N] [EXPLOSION_N] - the engine's state memory
# (bench/bench_memory.c): bytes of state per tracked charge and RSS with
# 1M and LIVE_N (default 10,000,000) live charges, and a card-testing
# attack of EXPLOSION_N (default 20,000,000) distinct cards against a
# 256 MiB state cap. Writes bench/results/memory-<host>-<date>.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
live=${1:-10000000}
boom=${2:-20000000}
bench_build
out=$(bench_out memory ".json")
b=build-bench/bench/bench_memory
{
  echo "{\"machine\": \"$(bench_machine)\","
  echo " \"commit\": \"$(bench_commit)\", \"runs\": ["
  $b live 1000000; echo ","
  $b live "$live"; echo ","
  $b explosion "$boom" 256
  echo "]}"
} | tee "$out"
echo "written: $out"
