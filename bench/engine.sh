#!/usr/bin/env bash
# bench/engine.sh [RECORDS] - the engine in process (bench/bench_engine.c):
# protobuf decode alone, the engine with no rules, each rule of
# rules/default.yaml alone (its marginal ns/record) and all rules, on a
# generated stream (default 1,000,000 records, scripts/posgen.py --seed 99)
# decoded from protobuf in memory, best of 3. Writes
# bench/results/engine-<host>-<date>.json and prints the table.
# Builds build-bench/ first (scripts/build.sh, Release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
n=${1:-1000000}
bench_build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_input "$n" "$work/in.jsonl"
out=$(bench_out engine ".json")
echo "# posguard engine benchmark (protobuf records in memory: no JSON, no Kafka), $(date -u +%Y-%m-%dT%H:%M:%SZ), $n generated records"
build-bench/bench/bench_engine --rules rules/default.yaml --input "$work/in.jsonl" \
    --repeat 3 --commit "$(bench_commit)" \
    --out "$out"
