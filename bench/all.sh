#!/usr/bin/env bash
# bench/all.sh - every benchmark, one after the other, each writing its
# results under bench/results/ (docs/PERFORMANCE.md explains them):
#   bench/engine.sh      the engine in process: decode, per rule, all rules,
#                        the parallel engine on 1..N threads
#   bench/tables.sh      state tables: ours (sequential and concurrent)
#                        beside ck_ht and cds_lfht, 1..N threads
#   bench/memory.sh      state bytes per tracked charge, RSS at 10M live
#                        charges, a 20M-card key explosion under the cap
#   bench/run.sh         posguard replay on a JSON file
#   bench/kafka_run.sh   end to end on a local broker vs consume-only
#   bench/latency.sh     detection latency at a steady rate (50,000/s)
#   bench/memlat.sh      what one random access to memory costs here
# Takes 15-25 minutes on 2 cores. PG_BENCH_BIG=1 adds the 20M-key table
# sizes (longer, a few GiB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for b in engine tables memory run kafka_run memlat; do
  echo "== bench/$b.sh"
  "$here/$b.sh"
done
echo "== bench/latency.sh 50000 10"
"$here/latency.sh" 50000 10
