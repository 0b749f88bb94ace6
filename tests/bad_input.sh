#!/usr/bin/env bash
# bad_input.sh - malformed input of every kind never crashes or stalls the
# engine: each line is rejected with a reason, counted, dead-lettered, and
# the good records around it are still processed. Exit status stays 0.
set -euo pipefail
posguard=$1 rules=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
work=${PG_TEST_TMP:-$(mktemp -d)}/bad_input
mkdir -p "$work"

$py - "$work/in.jsonl" <<'PY'
import random, sys
good = ('{"txn_id":"G%d","kind":"purchase","status":"approved","merchant_id":"M1",'
        '"terminal_id":"T1","stan":"%06d","rrn":"R%d","card_token":"tok_a",'
        '"amount":100,"currency":"EUR","event_time":"2026-11-22T10:00:%02d.000Z"}')
bad = [
    b"not json", b"{", b"}", b"[]", b"null", b"42", b'"str"', b"{}",
    b'{"txn_id":1}', b'{"txn_id":"x","kind":"purchase"}',
    b'{"txn_id":"","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","kind":"buy","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":0,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1.5,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"eur","event_time":1}',
    b'{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":"yesterday"}',
    b'{"txn_id":"' + b"x" * 65 + b'","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","txn_id":"b","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","kind":"refund","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":1}',
    b'{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M","terminal_id":"T","stan":"1","rrn":"1","card_token":"t","amount":1,"currency":"EUR","event_time":1,"pan_masked":"4111111111111111"}',
    b'{"txn_id":"a\\u0000","kind":"purchase"}',
    b'{"txn_id":"a\x00b","kind":"purchase"}',
    b'{"txn_id":"a",\x00"kind":"purchase"}',
    b"\xff\xfe\x00\x01binary\x80\x81",
    b'{"txn_id":"' + b"y" * 70000 + b'"}',
]
rng = random.Random(5)
with open(sys.argv[1], "wb") as f:
    n = 0
    for i in range(60):
        f.write((good % (i, i, i, i % 60)).encode() + b"\n")
        f.write(bad[i % len(bad)] + b"\n")
        f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).replace(b"\n", b" ") + b"\n")
PY
"$posguard" replay --rules "$rules" --input "$work/in.jsonl" --clock event \
    --dead-letter "$work/dlq.jsonl" --stats "$work/stats.json" \
    >"$work/out.jsonl" 2>"$work/err.log"
$py - "$work/stats.json" "$work/dlq.jsonl" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
assert st["records"] == 60, st                 # every good line processed
assert st["rejected"] == 120, st               # every bad line rejected
assert st["lines"] == 180, st
dlq = [json.loads(l) for l in open(sys.argv[2], "rb")]
assert len(dlq) == 120, len(dlq)
for d in dlq:
    assert d["type"] == "reject" and d["reason"] and d["detail"], d
    assert "4111111111111111" not in json.dumps(d), d   # no clear PAN
print("ok:", st["rejected_by_reason"])
PY
