#!/usr/bin/env bash
# oracle_check.sh - the engine against the independent oracle of DOMAIN.md.
#
#   oracle_check.sh POSGUARD NAME RULES -- [posgen args...] [-- replay/oracle args...]
#
# Generates a labelled stream with scripts/posgen.py, replays it through the
# engine (event clock) and through tests/oracle/oracle.py, and requires every
# alert and refund, and the reject / duplicate / late counts, to match.
set -euo pipefail
posguard=$1 name=$2 rules=$3
shift 3
[ "${1:-}" = "--" ] && shift
gen_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do gen_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
extra=("$@")

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=/usr/bin/python3
work=${PG_TEST_TMP:-$(mktemp -d)}/$name
mkdir -p "$work"

$py "$root/scripts/posgen.py" "${gen_args[@]}" --out "$work/input.jsonl" \
    --labels "$work/labels.jsonl" 2>"$work/gen.log"
"$posguard" replay --rules "$rules" --input "$work/input.jsonl" --clock event \
    --dead-letter "$work/dlq.jsonl" --stats "$work/engine.stats.json" \
    "${extra[@]}" >"$work/engine.jsonl" 2>"$work/engine.log"
$py "$here/oracle/oracle.py" --rules "$rules" --input "$work/input.jsonl" \
    --stats "$work/oracle.stats.json" "${extra[@]}" >"$work/oracle.jsonl"
$py "$here/oracle/compare.py" "$work/oracle.jsonl" "$work/engine.jsonl" \
    --stats-expected "$work/oracle.stats.json" \
    --stats-actual "$work/engine.stats.json"

# Every finding must be present, or the check proves little.
$py - "$work/engine.jsonl" "$work/dlq.jsonl" "$work/engine.stats.json" \
    "${extra[@]}" <<'PY'
import json, sys
# With a guard rail on, some refunds must have been blocked; with the kill
# switch, all of them.
guarded = any(a.startswith(("--kill-switch", "--refund-cap"))
              for a in sys.argv[4:])
kill = "--kill-switch" in sys.argv[4:]
need = {"retry_duplicate", "repeated_swipe", "overcharge", "undercharge",
        "refund_exceeds_original", "refund_card_mismatch",
        "refund_without_original"}
seen, refunds = set(), 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["type"] == "alert":
        seen.add(o["finding"])
    else:
        refunds += 1
missing = need - seen
if missing:
    sys.exit(f"findings missing from the stream: {sorted(missing)}")
if guarded and "refund_blocked" not in seen:
    sys.exit("a guard rail is on but no refund was blocked")
if kill and refunds:
    sys.exit(f"kill switch on, yet {refunds} refund commands")
if not kill and refunds == 0:
    sys.exit("no refund commands in the stream")
stats = json.load(open(sys.argv[3]))
dlq = sum(1 for _ in open(sys.argv[2], "rb"))
if dlq != stats["rejected"]:
    sys.exit(f"dead-letter has {dlq} entries, {stats['rejected']} rejected")
print(f"ok: {stats['lines']} lines, {stats['rejected']} rejected, "
      f"{stats['duplicates']} duplicates, {stats['late']} late, "
      f"alerts {stats['alerts']}, {refunds} refunds")
PY

# The JSON contract of schemas/ holds for every output and accepted input.
$py "$here/schema_check.py" "$work/input.jsonl" "$work/engine.jsonl" "$work/dlq.jsonl"
