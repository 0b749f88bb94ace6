#!/usr/bin/env bash
# thread_equivalence.sh - the parallel engine gives the single-threaded
# outputs, byte for byte, for any thread count:
#   1. for P = 1, 4 and 7 partitions, replay with 2, 3, 4 and 8 threads
#      equals replay with 1 thread (outputs, dead letters, counters);
#   2. with a refund cap low enough to trip, the same;
#   3. routing is librdkafka's partitioner (CRC-32 of merchant_id mod P):
#      each partition's outputs equal a one-engine replay of the records
#      that partition holds (split here in Python with zlib.crc32), which
#      is what `posguard run` computes on a P-partition topic.
set -euo pipefail
posguard=$1 rules=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=/usr/bin/python3
work=${PG_TEST_TMP:-$(mktemp -d)}/thread_equivalence
mkdir -p "$work"
$py "$root/scripts/posgen.py" --count 40000 --seed 11 --merchants 40 \
    --out "$work/in.jsonl" 2>/dev/null

run() { # out-prefix partitions threads [extra...]
  local o=$1 p=$2 t=$3
  shift 3
  "$posguard" replay --rules "$rules" --input "$work/in.jsonl" --clock event \
      --partitions "$p" --threads "$t" --dead-letter "$o.dlq" \
      --stats "$o.stats" --quiet "$@" >"$o.out"
  # counters without the timing fields
  $py -c "import json,sys; s=json.load(open(sys.argv[1]))
for k in ('seconds','records_per_second','peak_rss_kb','state_bytes_peak'): s.pop(k)
print(json.dumps(s, sort_keys=True))" "$o.stats" >"$o.counts"
}
same() { # reference candidate
  for ext in out dlq counts; do
    cmp "$1.$ext" "$2.$ext" || { echo "FAIL: $2.$ext differs from $1.$ext"; exit 1; }
  done
}

checked=0
for p in 1 4 7; do
  run "$work/p$p-t1" "$p" 1
  [ -s "$work/p$p-t1.out" ] || { echo "FAIL: no outputs for P=$p"; exit 1; }
  for t in 2 3 4 8; do
    run "$work/p$p-t$t" "$p" "$t"
    same "$work/p$p-t1" "$work/p$p-t$t"
    checked=$((checked + 1))
  done
done
echo "ok: P=1,4,7 x threads 2,3,4,8 equal the 1-thread outputs ($(wc -l <"$work/p4-t1.out") outputs for P=4)"

run "$work/cap-t1" 4 1 --refund-cap-merchant 30000
run "$work/cap-t4" 4 4 --refund-cap-merchant 30000
same "$work/cap-t1" "$work/cap-t4"
grep -q '"refund_blocked"' "$work/cap-t1.out" || { echo "FAIL: the cap never tripped"; exit 1; }
echo "ok: with a tripping refund cap, 4 threads equal 1"

# 3. per partition, against one engine on that partition's records
$py - "$work/in.jsonl" "$work/part" 4 <<'PY'
import json, sys, zlib
src, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
outs = [open(f"{prefix}{i}.jsonl", "wb") for i in range(n)]
for line in open(src, "rb"):
    try:
        m = json.loads(line).get("merchant_id")
    except Exception:
        m = None
    if isinstance(m, str) and m:
        outs[zlib.crc32(m.encode("utf-8", "surrogatepass")) % n].write(line)
PY
: >"$work/split.out"
for i in 0 1 2 3; do
  "$posguard" replay --rules "$rules" --input "$work/part$i.jsonl" --clock event \
      --quiet >>"$work/split.out"
done
$py "$here/oracle/compare.py" "$work/p4-t1.out" "$work/split.out"
echo "ok: 4 partitions routed by CRC-32 of merchant_id equal 4 one-engine replays"
