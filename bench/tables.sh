#!/usr/bin/env bash
# bench/tables.sh - posguard's state table beside ck_ht and cds_lfht on the
# engine's workload (bench/bench_tables.cc, Google Benchmark). Writes
# bench/results/tables-<host>-<date>.json and prints the table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
bench_build
out=$(bench_out tables ".json")
build-bench/bench/bench_tables --benchmark_repetitions=3 --benchmark_min_time=0.2 \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="$out" --benchmark_out_format=json "$@"
echo "written: $out"
