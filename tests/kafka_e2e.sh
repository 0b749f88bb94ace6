#!/usr/bin/env bash
# kafka_e2e.sh POSGUARD RULES MODE - posguard run against a real Kafka broker.
#
# Starts a single-node broker (scripts/kafka.sh), streams a generated,
# labelled stream into pos.txn with `posguard produce`, runs `posguard run`
# through the fault of MODE, reads pos.alerts and pos.refunds back with
# read_committed (`posguard watch --json`) and requires them to equal, as a
# multiset, the oracle's outputs for the same records partition by partition
# (tests/kafka_stream.py): every expected alert and refund exactly once and
# nothing else. The dead-letter topic must hold exactly the rejected records.
#
# MODE: plain      produce everything, then one run to the end
#       kill9      kill -9 posguard twice mid-stream, restart it each time
#       broker     restart the broker mid-stream
#       rebalance  a second instance joins mid-stream and leaves again
#       reload     the rule file is rewritten every 0.4 s while records
#                  stream (two texts with the same meaning, and now and then
#                  a broken one), with SIGHUPs in between: every good text is
#                  reloaded, every broken one refused, and the outputs are
#                  those of one run with the final rules (version and hash
#                  aside), each alert stamped with a hash that was loaded
#       fenced     a second instance starts with the SAME transactional.id:
#                  the first is fenced and must exit with status 2 without
#                  committing anything more
#       prometheus a real Prometheus server scrapes the run; PromQL answers
#                  must equal the committed outputs and the run's counts
#       dashboard  the built-in dashboard open in headless Chromium while
#                  records stream in: it must show every committed output
#                  as it commits; a screenshot is saved ($PG_TEST_ARTIFACTS)
#       json       two input topics, pos.txn (protobuf, left empty) and
#                  pos.txn.json (JSON records, input.format.pos.txn.json),
#                  and JSON outputs (output.format = json)
set -euo pipefail
posguard=$1 rules=$2 mode=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=/usr/bin/python3
work=${PG_TEST_TMP:-$(mktemp -d)}/kafka_$mode
rm -rf "$work"
mkdir -p "$work"
broker=$work/broker
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  "$root/scripts/kafka.sh" stop "$broker" --clean >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() {
  echo "kafka_e2e[$mode]: FAIL: $*" >&2
  for f in "$work"/run*.log; do
    [ -f "$f" ] && { echo "--- $f (tail)"; tail -20 "$f"; } >&2
  done
  exit 1
}

bootstrap=$("$root/scripts/kafka.sh" start "$broker" | tail -1)
echo "broker at $bootstrap"
# Record timestamps are event times (posguard produce), and generated
# streams may lie ahead of the broker's clock: allow it on the records topic.
"$root/scripts/kafka.sh" create-topic "$broker" pos.txn 4 \
    message.timestamp.after.max.ms=9223372036854775807 >/dev/null 2>>"$work/topics.log"
for t in pos.alerts:2 pos.refunds:2 pos.dlq:1; do
  "$root/scripts/kafka.sh" create-topic "$broker" "${t%%:*}" "${t##*:}" \
      >/dev/null 2>>"$work/topics.log"
done

fmt=protobuf topic=pos.txn topics=pos.txn
if [ "$mode" = json ]; then
  fmt=json topic=pos.txn.json topics=pos.txn,pos.txn.json
  "$root/scripts/kafka.sh" create-topic "$broker" pos.txn.json 3 \
      message.timestamp.after.max.ms=9223372036854775807 >/dev/null 2>>"$work/topics.log"
fi
if [ "$mode" = reload ]; then
  # two texts, one meaning: another version string and a comment
  cp "$rules" "$work/rules-a.yaml"
  sed 's/^version: .*/version: "reload-b"/' "$rules" >"$work/rules-b.yaml"
  echo "# variant b" >>"$work/rules-b.yaml"
  cp "$work/rules-a.yaml" "$work/rules.yaml"
  rules=$work/rules.yaml
  "$root/scripts/kafka.sh" create-topic "$broker" pos.events 1 >/dev/null 2>>"$work/topics.log"
  echo "output.events=pos.events" >"$work/extra.conf"
fi
# processing threads: the modes cover one (inline), two, and more threads
# than partitions in a batch; the others take the default (one per core).
# json also sizes its engines for the load from the start (expect.records).
case $mode in
plain) echo "workers=4" >>"$work/extra.conf" ;;
kill9) echo "workers=1" >>"$work/extra.conf" ;;
prometheus) echo "log.format=json" >>"$work/extra.conf" ;; # checked below
json) printf "workers=2\nexpect.records=30000\n" >>"$work/extra.conf" ;;
esac
touch "$work/extra.conf"
cat >"$work/posguard.conf" <<CONF
kafka.bootstrap.servers=$bootstrap
rules=$rules
rules.watch.ms=100
$(cat "$work/extra.conf")
input.topic=$topics
input.format=protobuf
input.format.pos.txn.json=json
output.format=$fmt
clock=event
commit.interval.ms=200
group.id=pg-e2e
# the HTTP endpoint on any free port (instances run side by side)
http.listen=127.0.0.1:0
# a killed member's partitions move after the session timeout: keep it short
kafka.consumer.session.timeout.ms=6000
kafka.consumer.heartbeat.interval.ms=500
CONF
conf=$work/posguard.conf

count=${PG_E2E_RECORDS:-20000}
$py "$root/scripts/posgen.py" --count "$count" --seed 21 --merchants 40 \
    --out "$work/raw.jsonl" 2>"$work/gen.log"
$py "$here/kafka_stream.py" close "$work/raw.jsonl" "$work/input.jsonl"

produce() { # RATE
  "$posguard" produce --config "$conf" --input "$work/input.jsonl" \
      --topic "$topic" -X "input.format=$fmt" \
      --partitions-out "$work/partitions.txt" --rate "$1" 2>"$work/produce.log"
}
run_bg() { # NAME TXID
  "$posguard" run --config "$conf" -X "transactional.id=$2" \
      >>"$work/run-$1.log" 2>&1 &
  pids+=($!)
  last_pid=$!
}
run_to_end() { # NAME TXID
  timeout 300 "$posguard" run --config "$conf" -X "transactional.id=$2" \
      --until-idle 3000 >>"$work/run-$1.log" 2>&1 \
      || fail "run $1 exited with $?"
  grep "event=stopping" "$work/run-$1.log" | tail -1 | grep -q "reason=caught_up" \
      || fail "run $1 did not catch up with the input"
}

# wait_log FILE PATTERN N: until FILE has N lines matching PATTERN (60 s)
wait_log() {
  for _ in $(seq 600); do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.1
  done
  fail "timed out waiting for $3 x '$2' in $1"
}

rate=$((count / 10)) # about 10 s of traffic for the fault modes
case $mode in
plain | json)
  produce 0 || fail "produce"
  run_to_end a pg-a
  want=$([ "$mode" = plain ] && echo 4 || echo 2)
  # a fresh group has nothing to warm up: every partition says so at once
  # (kill9 waits for these, and once waited forever for a partition that
  # had no commit yet)
  nparts=$([ "$mode" = plain ] && echo 4 || echo 7)
  [ "$(grep -c 'event=warmup_done .*records=0' "$work/run-a.log")" -eq "$nparts" ] \
      || fail "run a did not report warm-up done for its $nparts partitions"
  grep -q "event=started .* workers=$want" "$work/run-a.log" \
      || fail "run a did not start $want processing threads"
  # the run summary: every field present and sane (its arguments once
  # fell out of step with its format, and the RSS came out as garbage)
  grep "event=stopped" "$work/run-a.log" | tail -1 | $py -c "
import re, sys
f = dict(re.findall(r'(\w+)=([0-9.]+)', sys.stdin.read()))
need = 'consumed batches empty_polls poll_ms process_ms commit_ms first_to_committed_ms records_per_s peak_rss_kb'.split()
miss = [k for k in need if k not in f]
assert not miss, f'missing {miss}'
v = {k: float(f[k]) for k in need}
assert v['consumed'] >= $count, v
assert 1 <= v['batches'] <= v['consumed'], v
assert 1024 <= v['peak_rss_kb'] <= 64 << 20, v
assert v['poll_ms'] + v['process_ms'] + v['commit_ms'] <= v['first_to_committed_ms'] + 5000, v
" || fail "run a's summary line is wrong"
  ;;
kill9)
  # kill -9 while it processes live records, then again right after the
  # restarted instance has taken the partitions over and warmed up
  produce "$rate" & ppid=$!
  run_bg a pg-a; wait_log "$work/run-a.log" event=partition_assigned 4
  sleep 2; kill -9 "$last_pid"; echo "killed -9 while live"
  # the log goes on from the first instance, which said warmup_done too
  seen=$(grep -c event=warmup_done "$work/run-a.log" || true)
  run_bg a pg-a; wait_log "$work/run-a.log" event=warmup_done $((seen + 4))
  sleep 1; kill -9 "$last_pid"; echo "killed -9 again after warm-up"
  wait "$ppid" || fail "produce"
  run_to_end a pg-a
  grep -q "event=warmup_done" "$work/run-a.log" || fail "no warm-up seen"
  ;;
broker)
  produce "$rate" & ppid=$!
  run_bg a pg-a; sleep 3
  "$root/scripts/kafka.sh" restart "$broker" >/dev/null || fail "broker restart"
  echo "broker restarted"
  wait "$ppid" || fail "produce"
  kill -TERM "$last_pid"; wait "$last_pid" || fail "run a: SIGTERM exit $?"
  run_to_end a pg-a
  ;;
rebalance)
  produce "$rate" & ppid=$!
  run_bg a pg-a; a=$last_pid; sleep 2
  run_bg b pg-b; b=$last_pid; sleep 3
  kill -TERM "$b"; wait "$b" || fail "run b: SIGTERM exit $?"
  echo "instance b joined and left"
  wait "$ppid" || fail "produce"
  kill -TERM "$a"; wait "$a" || fail "run a: SIGTERM exit $?"
  run_to_end a pg-a
  ;;
fenced)
  produce "$rate" & ppid=$!
  run_bg a pg-a; a=$last_pid
  wait_log "$work/run-a.log" event=partition_assigned 4
  sleep 1
  run_bg z pg-a; z=$last_pid # a zombie's successor: same transactional.id
  set +e; wait "$a"; st=$?; set -e
  [ "$st" -eq 2 ] || fail "fenced instance exited with $st, expected 2"
  grep -q "event=transaction_fatal" "$work/run-a.log" || fail "no fatal error logged"
  echo "first instance fenced, exit status 2"
  wait "$ppid" || fail "produce"
  kill -TERM "$z"; wait "$z" || fail "run z: SIGTERM exit $?"
  run_to_end a pg-a
  ;;
reload)
  produce "$rate" & ppid=$!
  run_bg a pg-a; a=$last_pid
  wait_log "$work/run-a.log" event=partition_assigned 4
  good=0 broken=0
  for i in $(seq 1 20); do
    if [ $((i % 5)) -eq 0 ]; then
      printf 'version: "broken"\nrules:\n  - id: [oops\n' >"$work/tmp.yaml"
      broken=$((broken + 1))
    else
      v=$([ $((i % 2)) -eq 0 ] && echo a || echo b)
      cp "$work/rules-$v.yaml" "$work/tmp.yaml"
      good=$((good + 1))
    fi
    mv "$work/tmp.yaml" "$work/rules.yaml"
    [ $((i % 3)) -eq 0 ] && kill -HUP "$a"
    sleep 0.4
  done
  cp "$work/rules-a.yaml" "$work/tmp.yaml"; mv "$work/tmp.yaml" "$work/rules.yaml"
  sleep 0.5
  wait "$ppid" || fail "produce"
  kill -TERM "$a"; wait "$a" || fail "run a: SIGTERM exit $?"
  n_ok=$(grep -c "event=rules_reloaded" "$work/run-a.log" || true)
  n_bad=$(grep -c "event=rules_reload_failed" "$work/run-a.log" || true)
  echo "rule file rewritten $((good + broken)) times ($broken broken): $n_ok reloads, $n_bad refused"
  [ "$n_bad" -ge 1 ] && [ "$n_ok" -ge 5 ] || fail "too few reloads seen"
  # the same events, committed on pos.events
  kcat -b "$bootstrap" -C -t pos.events -e -q -X isolation.level=read_committed \
      >"$work/events.jsonl"
  e_ok=$(grep -c '"type":"rules_reloaded"' "$work/events.jsonl" || true)
  e_bad=$(grep -c '"type":"rules_reload_failed"' "$work/events.jsonl" || true)
  echo "pos.events: $e_ok rules_reloaded, $e_bad rules_reload_failed"
  [ "$e_ok" -eq "$n_ok" ] && [ "$e_bad" -eq "$n_bad" ] || fail "events differ from the log"
  run_to_end a pg-a
  ;;
prometheus)
  # a real Prometheus server scrapes the run every second; once the run has
  # processed everything, PromQL answers are checked against what the run
  # committed (below, after the outputs are read back)
  command -v prometheus >/dev/null || fail "no prometheus binary (Debian: prometheus)"
  produce 0 || fail "produce"
  run_bg a pg-a; a=$last_pid
  wait_log "$work/run-a.log" '"event":"http_listening"' 1
  pg_url=$($py -c 'import json,sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("event") == "http_listening": print(o["url"]); break' "$work/run-a.log")
  target=${pg_url#http://}; target=${target%/}
  pport=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: posguard
    static_configs:
      - targets: ['$target']
YML
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
      --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
  pids+=($!)
  $py "$here/prom_check.py" wait "http://127.0.0.1:$pport/" "$pg_url" "$work/prom.json" \
      || { tail -5 "$work/prometheus.log" >&2; fail "prometheus never saw the run settle"; }
  kill -TERM "$a"; wait "$a" || fail "run a: SIGTERM exit $?"
  ;;
dashboard)
  # the built-in dashboard in headless Chromium: the page is open before
  # the records stream in, and must show the outputs as they commit
  # (checked against the committed outputs below)
  for b in chromium chromedriver; do
    command -v $b >/dev/null || fail "no $b (Debian: chromium chromium-driver)"
  done
  run_bg a pg-a; a=$last_pid
  wait_log "$work/run-a.log" event=http_listening 1
  pg_url=$(grep -o 'event=http_listening url=[^ ]*' "$work/run-a.log" | head -1 | sed 's/.*url=//')
  shots=${PG_TEST_ARTIFACTS:-$work}
  mkdir -p "$shots"
  $py "$here/dashboard_check.py" watch "$pg_url" "$work/page-up" "$work/page.json" \
      "$shots/dashboard.png" & cpid=$!
  pids+=($cpid)
  for _ in $(seq 600); do [ -f "$work/page-up" ] && break; sleep 0.1; done
  [ -f "$work/page-up" ] || fail "the dashboard never came up in the browser"
  produce "$rate" || fail "produce"
  wait "$cpid" || fail "watching the dashboard"
  kill -TERM "$a"; wait "$a" || fail "run a: SIGTERM exit $?"
  ;;
*) fail "unknown mode $mode" ;;
esac

"$posguard" watch --config "$conf" --json --idle-exit 5000 \
    >"$work/actual.jsonl" 2>"$work/watch.log" || fail "watch"
$py "$here/kafka_stream.py" expect "$work/input.jsonl" "$work/partitions.txt" \
    "$rules" "$work/expected" >/dev/null
ignore=
[ "$mode" = reload ] && ignore=rule_version,rule_hash
$py "$here/oracle/compare.py" "$work/expected.jsonl" "$work/actual.jsonl" \
    --ignore "$ignore" || fail "outputs differ from the oracle's"
if [ "$mode" = reload ]; then
  # every alert names a rule text that was in force
  $py - "$work/actual.jsonl" "$work/rules-a.yaml" "$work/rules-b.yaml" <<'PY' || fail "alert with an unknown rule hash"
import json, sys, xxhash
known = {xxhash.xxh3_64_hexdigest(open(p, "rb").read()) for p in sys.argv[2:]}
seen = {json.loads(l).get("rule_hash") for l in open(sys.argv[1])} - {None}
print("rule hashes on alerts:", sorted(seen), "known:", sorted(known))
sys.exit(0 if seen and seen <= known else 1)
PY
fi
dlq=$(kcat -b "$bootstrap" -C -t pos.dlq -e -q -X isolation.level=read_committed \
      -f '%o\n' | wc -l)
want=$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['rejected'])" \
       "$work/expected.stats.json")
[ "$dlq" -eq "$want" ] || fail "pos.dlq holds $dlq messages, expected $want"
grep -Eq 'event=stopped|"event":"stopped"' "$work/run-a.log" || fail "run a did not stop cleanly"
if [ "$mode" = plain ]; then
  # backtest from the topic's history (per partition, like run) finds the
  # same alerts and refunds as were committed
  "$posguard" backtest --rules "$rules" --topic pos.txn --from 0 \
      --to 253402300799999 --config "$conf" --json "$work/bt.json" \
      >"$work/bt.txt" 2>&1 || { cat "$work/bt.txt"; fail "backtest --topic"; }
  $py - "$work/bt.json" "$work/actual.jsonl" <<'PY' || fail "backtest --topic disagrees with the run"
import json, sys
rep = json.load(open(sys.argv[1]))
a = sum(r["alerts"]["new"] for r in rep["rules"])
f = sum(r["refunds"]["new"] for r in rep["rules"])
out = [json.loads(l)["type"] for l in open(sys.argv[2])]
print(f"backtest --topic: {a} alerts, {f} refunds; committed by run:",
      out.count("alert"), "alerts,", out.count("refund"), "refunds")
sys.exit(0 if (a, f) == (out.count("alert"), out.count("refund")) else 1)
PY
fi
if [ "$mode" = dashboard ]; then
  echo "the dashboard against the committed outputs:"
  $py "$here/dashboard_check.py" compare "$work/page.json" "$work/actual.jsonl" \
      "$rules" || fail "the dashboard disagrees with the run"
fi
if [ "$mode" = prometheus ]; then
  echo "PromQL answers against the committed outputs and the run's summary:"
  $py "$here/prom_check.py" compare "$work/prom.json" "$work/actual.jsonl" \
      "$work/run-a.log" "$work/input.jsonl" || fail "Prometheus disagrees with the run"
  # log.format=json: every line of the run's log is one JSON object with
  # a time, a level and an event (librdkafka's own lines included)
  $py - "$work/run-a.log" <<'PY' || fail "a log line is not JSON with ts, level, event"
import json, sys
n = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert {"ts", "level", "event"} <= o.keys() and o["level"] in ("info", "warn", "error"), line
    n += 1
print(f"log.format=json: {n} lines, every one a JSON object with ts, level, event")
PY
fi
# The verdict in numbers, by output id (alert_id / refund_id).
$py - "$work/expected.jsonl" "$work/actual.jsonl" "$mode" "$dlq" <<'PY' || fail "lost or duplicated outputs"
import collections, json, sys
def ids(path):
    c = collections.Counter()
    for line in open(path):
        o = json.loads(line)
        c[o.get("alert_id") if o["type"] == "alert" else o["refund_id"]] += 1
    return c
exp, act = ids(sys.argv[1]), ids(sys.argv[2])
lost = sum(max(0, n - act[k]) for k, n in exp.items())
dup = sum(max(0, n - max(exp[k], 1)) for k, n in act.items() if k in exp)
extra = sum(n for k, n in act.items() if k not in exp)
print(f"kafka_e2e[{sys.argv[3]}]: expected {sum(exp.values())} outputs, "
      f"committed {sum(act.values())}: lost {lost}, duplicated {dup}, "
      f"unexpected {extra}; dead letters {sys.argv[4]}")
sys.exit(1 if lost or dup or extra else 0)
PY
