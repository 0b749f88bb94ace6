#!/usr/bin/env bash
# demo.sh - posguard's main job on an embedded default: generate a realistic
# stream with injected overcharges (posgen), replay it through the engine,
# and show every alert and refund command as it is raised, then totals.
# (The Kafka pipeline comes with the next capability; this is the same
# engine on a file.)
#   scripts/demo.sh [RECORDS]   (default 200000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-200000}
scripts/build.sh build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== generating $n records of POS traffic with injected anomalies"
/usr/bin/python3 scripts/posgen.py --count "$n" --seed 2026 --out "$work/txn.jsonl" \
    --labels "$work/labels.jsonl"
echo "== posguard replay --rules rules/default.yaml"
build/posguard replay --rules rules/default.yaml --input "$work/txn.jsonl" \
    --dead-letter "$work/dlq.jsonl" >"$work/out.jsonl" 2>"$work/summary.txt"
/usr/bin/python3 scripts/show.py "$work/out.jsonl" 40
echo
echo "== engine summary"
cat "$work/summary.txt"
echo
echo "== first rejected lines (dead-letter)"
head -3 "$work/dlq.jsonl" | cut -c1-200
