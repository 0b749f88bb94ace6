#!/usr/bin/env bash
# rule_workflow.sh POSGUARD RULES - posguard test and posguard backtest.
#
#  1. The shipped fixtures (rules/tests) pass.
#  2. A fixture whose expectation is wrong fails, naming the missing and the
#     unexpected outputs (the runner can fail).
#  3. backtest of a changed rule set against the default on a generated
#     stream: the report's counts agree with two plain replays, and the
#     changes are the ones the edit implies (a rule put in shadow refunds
#     nothing; a shorter auto-refund limit only removes refunds; a partial
#     refund appears only where a full one went away).
set -euo pipefail
posguard=$1 rules=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=/usr/bin/python3
work=${PG_TEST_TMP:-$(mktemp -d)}/rule_workflow
rm -rf "$work"
mkdir -p "$work"

echo "== 1. shipped fixtures"
"$posguard" test --rules "$rules" "$root/rules/tests"

echo "== 2. a wrong expectation fails"
mkdir -p "$work/bad/wrong"
cp "$root/rules/tests/retry_duplicate/refunded/input.jsonl" "$work/bad/wrong/"
echo '{"type": "refund", "txn_id": "A2", "amount": 9999}' >"$work/bad/wrong/expected.jsonl"
set +e
"$posguard" test --rules "$rules" "$work/bad" >"$work/bad.out"
st=$?
set -e
cat "$work/bad.out"
[ "$st" -eq 1 ] || { echo "expected exit 1, got $st"; exit 1; }
grep -q "missing: " "$work/bad.out" && grep -q "unexpected: " "$work/bad.out" \
  || { echo "the failure does not name the outputs"; exit 1; }

echo "== 3. backtest"
$py "$root/scripts/posgen.py" --count 30000 --seed 7 --out "$work/in.jsonl" 2>/dev/null
# retry in shadow; repeated-swipe auto-refunds only within 30 s instead of 60 s
sed -e '/id: retry-duplicate/,/mode:/ s/mode: enforce/mode: shadow/' \
    -e 's/auto_refund_within: 60s/auto_refund_within: 30s/' \
    -e 's/^version: .*/version: "backtest-candidate"/' "$rules" >"$work/new.yaml"
"$posguard" check "$work/new.yaml" >/dev/null
"$posguard" backtest --rules "$work/new.yaml" --baseline "$rules" \
    --input "$work/in.jsonl" --json "$work/report.json" | tee "$work/report.txt"
"$posguard" replay --rules "$rules" --input "$work/in.jsonl" --clock event \
    --quiet >"$work/base.jsonl"
"$posguard" replay --rules "$work/new.yaml" --input "$work/in.jsonl" --clock event \
    --quiet >"$work/new.jsonl"
$py - "$work/report.json" "$work/base.jsonl" "$work/new.jsonl" <<'PY'
import collections, json, sys
rep = json.load(open(sys.argv[1]))
def load(path):
    a, r, ids = collections.Counter(), collections.Counter(), set()
    for line in open(path):
        o = json.loads(line)
        if o["type"] == "alert":
            a[o["rule_id"]] += 1; ids.add(o["alert_id"])
        else:
            r[o["rule_id"]] += 1; ids.add(o["refund_id"])
    return a, r, ids
ba, br, bids = load(sys.argv[2])
na, nr, nids = load(sys.argv[3])
rules = {x["rule_id"]: x for x in rep["rules"]}
for rid, x in rules.items():
    assert x["alerts"]["baseline"] == ba[rid] and x["alerts"]["new"] == na[rid], (rid, x)
    assert x["refunds"]["baseline"] == br[rid] and x["refunds"]["new"] == nr[rid], (rid, x)
    for k in ("alerts", "refunds"):
        c = x[k]
        assert c["new"] - c["baseline"] == c["added"] - c["removed"], (rid, k, c)
added = sum(x[k]["added"] for x in rules.values() for k in ("alerts", "refunds"))
removed = sum(x[k]["removed"] for x in rules.values() for k in ("alerts", "refunds"))
assert added == len(nids - bids) and removed == len(bids - nids), (added, removed)
rd, rs = rules["retry-duplicate"], rules["repeated-swipe"]
assert rd["mode"] == "shadow" and rd["baseline_mode"] == "enforce", rd
assert rd["refunds"]["new"] == 0 and rd["refunds"]["removed"] > 0, rd
assert rs["refunds"]["removed"] > 0 and rs["refunds"]["added"] == 0, rs
# an overcharged duplicate was refunded in full by retry-duplicate (full
# supersedes partial); with that rule in shadow, amount-mismatch's partial
# refund of the same charge takes its place: every refund added is one of those
def refunds(path, rule):
    return {o["txn_id"] for o in map(json.loads, open(path))
            if o["type"] == "refund" and o["rule_id"] == rule}
gone = refunds(sys.argv[2], "retry-duplicate") - refunds(sys.argv[3], "retry-duplicate")
new_mm = refunds(sys.argv[3], "amount-mismatch") - refunds(sys.argv[2], "amount-mismatch")
assert new_mm <= gone, (new_mm, gone)
print("backtest report agrees with the two replays:",
      f"{added} outputs added, {removed} removed")
PY
# without a baseline, every output of the rules is "added"
"$posguard" backtest --rules "$rules" --input "$work/in.jsonl" \
    --json "$work/nobase.json" >/dev/null
$py - "$work/nobase.json" "$work/base.jsonl" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
n = sum(1 for _ in open(sys.argv[2]))
added = sum(r[k]["added"] for r in rep["rules"] for k in ("alerts", "refunds"))
removed = sum(r[k]["removed"] for r in rep["rules"] for k in ("alerts", "refunds"))
assert rep["baseline"] is None and added == n and removed == 0, (added, removed, n)
print(f"backtest without a baseline: all {n} outputs added")
PY
grep -q "retry-duplicate .*shadow<-enforce" "$work/report.txt" \
  || { echo "the table does not show the mode change"; exit 1; }
echo "rule_workflow: ok"
