#!/usr/bin/env bash
# bench/run.sh [RECORDS] - posguard replay throughput and peak memory on a
# generated stream (default 1,000,000 records), next to the parser-only
# baseline on the same file. Writes bench/results/replay-<host>-<date>.txt
# and prints it. Build first: scripts/build.sh (Release-like flags).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
n=${1:-1000000}
bench_build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_input "$n" "$work/in.jsonl"
out=$(bench_out replay ".txt")
{
  echo "# posguard replay benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(bench_machine)"
  echo "commit: $(bench_commit)"
  echo "input: $n generated records + redeliveries/malformed, $(wc -l <"$work/in.jsonl") lines, $(du -m "$work/in.jsonl" | cut -f1) MB"
  echo "baseline (parser only):"
  echo "  $(build-bench/bench/bench_codec "$work/in.jsonl")"
  for i in 1 2 3; do
    build-bench/posguard replay --rules rules/default.yaml --input "$work/in.jsonl" \
        --stats "$work/stats.json" --quiet >/dev/null
    /usr/bin/python3 -c "
import json; s = json.load(open('$work/stats.json'))
print(f\"replay run $i: {s['lines']} lines in {s['seconds']:.3f} s = {s['records_per_second']:.0f} records/s, \"
      f\"peak RSS {s['peak_rss_kb'] / 1024:.1f} MiB, state peak {s['state_bytes_peak'] / 1048576:.1f} MiB, \"
      f\"alerts {sum(s['alerts'].values())}, refunds {s['refunds']}\")"
  done
} | tee "$out"
echo "written: $out"
