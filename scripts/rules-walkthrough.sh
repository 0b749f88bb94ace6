#!/usr/bin/env bash
# rules-walkthrough.sh - docs/RULES.md as a newcomer follows it, end to end:
#
#   1. write a new rule (a copy of the default rules plus one new rule),
#   2. `posguard check` it,
#   3. write a fixture for it and `posguard test` it (with the shipped ones),
#   4. `posguard backtest` it against a recorded stream: a readable diff,
#   5. hot-reload it into a running `posguard run` on a real broker and see
#      the new rule's alerts arrive, stamped with the new version and hash.
#
# Every step checks what it shows; CI runs this script (ctest
# rules_walkthrough). Run it yourself: scripts/rules-walkthrough.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pg=${POSGUARD:-build/posguard}
py=/usr/bin/python3
[ -x "$pg" ] || scripts/build.sh build >/dev/null
work=${PG_TEST_TMP:-$(mktemp -d)}/walkthrough
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/kafka.sh stop "$work/broker" --clean >/dev/null 2>&1 || true
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
die() { echo "walkthrough: FAIL: $*" >&2; exit 1; }

step "1. a new rule: big keyed charges, alert only, in shadow first"
cp rules/default.yaml "$work/candidate.yaml"
sed -i 's/^version: .*/version: "candidate-1"/' "$work/candidate.yaml"
cat >>"$work/candidate.yaml" <<'RULE'

  - id: big-keyed-burst
    detector: aggregate
    description: Three keyed charges of 500.00 or more on one terminal within 10 minutes.
    owner: risk-team
    tags: [keyed, pilot]
    severity: high
    action: alert
    mode: shadow
    params:
      where: "kind == purchase and status == approved and entry_mode == keyed and amount >= 50000"
      group_by: [terminal_id]
      function: count
      window: 10m
      threshold: 3
RULE
tail -16 "$work/candidate.yaml"

step "2. posguard check"
"$pg" check "$work/candidate.yaml" | tee "$work/check.txt"
grep -q "big-keyed-burst .*shadow .*owner=risk-team tags=keyed,pilot" "$work/check.txt" \
  || die "check does not list the new rule"

step "3. a fixture for it, then posguard test (the shipped fixtures too)"
mkdir -p "$work/fixtures/big_keyed_burst"
$py - "$work/fixtures/big_keyed_burst" <<'PY'
import json, sys
T0 = 1763805600000
out = open(sys.argv[1] + "/input.jsonl", "w")
for i in range(3):
    out.write(json.dumps({"txn_id": "K%d" % i, "kind": "purchase", "status": "approved",
        "merchant_id": "M1", "terminal_id": "T7", "stan": "%06d" % i, "rrn": "RK%d" % i,
        "card_token": "tok%d" % i, "amount": 60000, "currency": "EUR",
        "entry_mode": "keyed", "event_time": T0 + i * 60000}) + "\n")
open(sys.argv[1] + "/expected.jsonl", "w").write(
    "# three big keyed charges on T7 in two minutes: one shadow alert\n"
    '{"type": "alert", "rule_id": "big-keyed-burst", "mode": "shadow", "txn_ids": ["K2"]}\n')
PY
"$pg" test --rules "$work/candidate.yaml" "$work/fixtures" rules/tests | tail -3
set +e
"$pg" test --rules "$work/candidate.yaml" "$work/fixtures" rules/tests >/dev/null
st=$?
set -e
[ "$st" -eq 0 ] || die "fixtures fail"

step "4. posguard backtest against the default rules on a recorded stream"
$py scripts/posgen.py --count 20000 --seed 11 --out "$work/history.jsonl" 2>/dev/null
# add a burst the new rule must find
$py - "$work/history.jsonl" <<'PY'
import json, sys
from datetime import datetime
def ms(v):
    if isinstance(v, int):
        return v
    return int(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
t = 0
for l in open(sys.argv[1], "rb"):
    try:
        t = max(t, ms(json.loads(l)["event_time"]))
    except Exception:
        pass
t += 1000  # just after the last record: in order, not late
with open(sys.argv[1], "a") as f:
    for i in range(3):
        f.write(json.dumps({"txn_id": "BURST%d" % i, "kind": "purchase", "status": "approved",
            "merchant_id": "M777", "terminal_id": "T777", "stan": "%06d" % i, "rrn": "RB%d" % i,
            "card_token": "tokB%d" % i, "amount": 75000, "currency": "EUR",
            "entry_mode": "keyed", "event_time": t}) + "\n")
PY
"$pg" backtest --rules "$work/candidate.yaml" --baseline rules/default.yaml \
    --input "$work/history.jsonl" --json "$work/diff.json" | tee "$work/diff.txt"
grep -q "^big-keyed-burst .*shadow<-new" "$work/diff.txt" || die "the diff does not show the new rule"
$py - "$work/diff.json" <<'PY'
import json, sys
rep = {r["rule_id"]: r for r in json.load(open(sys.argv[1]))["rules"]}
new = rep["big-keyed-burst"]
assert new["alerts"]["added"] >= 1 and new["refunds"]["new"] == 0, new
others = [r for k, r in rep.items() if k != "big-keyed-burst"]
assert all(r["alerts"]["added"] == r["alerts"]["removed"] == 0 for r in others), others
print("backtest: the new rule adds", new["alerts"]["added"], "shadow alerts; nothing else changes")
PY

step "5. hot-reload it into a running engine"
bootstrap=$(scripts/kafka.sh start "$work/broker" | tail -1)
scripts/kafka.sh create-topic "$work/broker" pos.txn 2 \
    message.timestamp.after.max.ms=9223372036854775807 >/dev/null 2>&1
for t in pos.alerts pos.refunds pos.dlq; do
  scripts/kafka.sh create-topic "$work/broker" $t 1 >/dev/null 2>&1
done
cp rules/default.yaml "$work/live.yaml"
printf 'kafka.bootstrap.servers=%s\nrules=%s\noutput.format=json\nclock=event\nhttp.listen=127.0.0.1:0\n' \
    "$bootstrap" "$work/live.yaml" >"$work/pg.conf"
"$pg" run --config "$work/pg.conf" -X transactional.id=walkthrough >"$work/run.log" 2>&1 &
pids+=($!)
run=$!
for _ in $(seq 300); do grep -q event=partition_assigned "$work/run.log" && break; sleep 0.1; done
echo "posguard run is up with $(grep -o 'rules_version=[^ ]*' "$work/run.log" | head -1)"
cp "$work/candidate.yaml" "$work/live.yaml.new" && mv "$work/live.yaml.new" "$work/live.yaml"
kill -HUP "$run"
for _ in $(seq 300); do grep -q event=rules_reloaded "$work/run.log" && break; sleep 0.1; done
grep "event=rules_reloaded" "$work/run.log" | sed 's/^.*event=/event=/' || die "no reload"
# the fixture's records, then a later "closing" record of the merchant: a
# partition's event time only moves with its records (docs/KAFKA.md)
$py tests/kafka_stream.py close "$work/fixtures/big_keyed_burst/input.jsonl" \
    "$work/live-input.jsonl" >/dev/null
"$pg" produce --config "$work/pg.conf" --input "$work/live-input.jsonl" 2>/dev/null
for _ in $(seq 30); do
  "$pg" watch --config "$work/pg.conf" --json --idle-exit 1500 2>/dev/null >"$work/out.jsonl" || true
  grep -q big-keyed-burst "$work/out.jsonl" && break
  sleep 0.5
done
grep big-keyed-burst "$work/out.jsonl" | $py -c '
import json, sys
o = json.loads(sys.stdin.readline())
print("committed alert:", o["rule_id"], o["mode"], "version", o["rule_version"], "hash", o["rule_hash"])
assert o["rule_version"] == "candidate-1" and o["mode"] == "shadow", o
' || die "the reloaded rule raised nothing"
printf '\nwalkthrough: ok\n'
