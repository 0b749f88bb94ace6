#!/usr/bin/env bash
# bench/memlat.sh - what one random access to memory costs here
# (bench/bench_memlat.c): dependent loads, and 8 independent ones in
# flight, over arrays of 8 MiB to 1 GiB in 2 MiB and 4 KiB pages. The
# floor under the engine's per-record time (docs/PERFORMANCE.md). Writes
# bench/results/memlat-<host>-<date>.json. About a minute; 1 GiB of memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
bench_build
out=$(bench_out memlat ".json")
echo "# posguard memory latency, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(bench_machine), commit $(bench_commit)"
echo "# THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
build-bench/bench/bench_memlat --out "$out"
