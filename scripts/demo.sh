#!/usr/bin/env bash
# demo.sh - posguard's main job, end to end on this machine:
#   a real single-node Apache Kafka broker (scripts/kafka.sh, fetched from
#   Maven Central on first use), the topics, generated POS traffic with
#   injected overcharges streamed into pos.txn at a steady rate, `posguard
#   run` consuming it, and every alert and refund command shown as it is
#   committed to pos.alerts / pos.refunds, then totals. It prints where the
#   live dashboard is (http://127.0.0.1:9464/, or another free port), and on
#   a terminal keeps it up after the stream until Enter. Everything it
#   starts is stopped at the end (also on Ctrl-C).
#
#   scripts/demo.sh [RECORDS [RATE]]     (default 30000 records at 3000/s)
#   scripts/demo.sh --replay [RECORDS]   the same engine on a file, no Kafka
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=/usr/bin/python3
scripts/install-deps.sh
scripts/build.sh build >/dev/null
work=$(mktemp -d)

if [ "${1:-}" = "--replay" ]; then
  trap 'rm -rf "$work"' EXIT
  n=${2:-200000}
  echo "== generating $n records of POS traffic with injected anomalies"
  $py scripts/posgen.py --count "$n" --seed 2026 --out "$work/txn.jsonl"
  echo "== posguard replay --rules rules/default.yaml"
  build/posguard replay --rules rules/default.yaml --input "$work/txn.jsonl" \
      --dead-letter "$work/dlq.jsonl" >"$work/out.jsonl" 2>"$work/summary.txt"
  $py scripts/show.py "$work/out.jsonl" 40
  echo; cat "$work/summary.txt"
  exit 0
fi

n=${1:-30000}
rate=${2:-3000}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/kafka.sh stop "$work/broker" --clean >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a single-node Kafka broker (KRaft, 127.0.0.1)"
bootstrap=$(scripts/kafka.sh start "$work/broker" | tail -1)
# record timestamps are event times, which a generated stream may put
# ahead of the broker's clock: allow it on the records topic
scripts/kafka.sh create-topic "$work/broker" pos.txn 4 \
    message.timestamp.after.max.ms=9223372036854775807 >/dev/null 2>&1
for t in pos.alerts:2 pos.refunds:2 pos.dlq:1; do
  scripts/kafka.sh create-topic "$work/broker" "${t%%:*}" "${t##*:}" >/dev/null 2>&1
done
echo "   broker $bootstrap, topics pos.txn pos.alerts pos.refunds pos.dlq"

cat >"$work/posguard.conf" <<CONF
kafka.bootstrap.servers=$bootstrap
rules=rules/default.yaml
group.id=posguard-demo
transactional.id=posguard-demo-1
CONF

echo "== generating $n records of POS traffic with injected anomalies"
$py scripts/posgen.py --count "$n" --seed 2026 --merchants 60 \
    --out "$work/raw.jsonl" 2>/dev/null
# closing records move every partition's event time past the last refund
# decisions (docs/KAFKA.md, "quiet partition")
$py tests/kafka_stream.py close "$work/raw.jsonl" "$work/txn.jsonl" >/dev/null

echo "== posguard run (log: posguard.log in the work dir)"
start_run() { # HTTP_LISTEN
  build/posguard run --config "$work/posguard.conf" -X "http.listen=$1" \
      >"$work/posguard.log" 2>&1 &
  pids+=($!)
  run_pid=$!
  for _ in $(seq 300); do
    grep -q "event=http_listening" "$work/posguard.log" && return 0
    kill -0 "$run_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# the dashboard's usual port, or any free one when that is taken
start_run "127.0.0.1:${PG_DEMO_PORT:-9464}" || start_run 127.0.0.1:0 \
  || { cat "$work/posguard.log"; exit 1; }
url=$(grep -o 'event=http_listening url=[^ ]*' "$work/posguard.log" | sed 's/.*url=//')
echo "== live dashboard: $url   (Prometheus metrics: ${url}metrics)"
echo "== streaming into pos.txn at $rate records/s; alerts and refunds as committed:"
echo
build/posguard produce --config "$work/posguard.conf" --input "$work/txn.jsonl" \
    --rate "$rate" 2>"$work/produce.log" &
pids+=($!)
produce_pid=$!
build/posguard watch --config "$work/posguard.conf" --json --idle-exit 8000 \
    2>"$work/watch.log" | $py scripts/show.py - 60
wait "$produce_pid" || true
if [ -t 0 ] && [ -z "${PG_DEMO_NO_HOLD:-}" ]; then
  echo
  echo "== the stream is done; the dashboard stays up at $url"
  read -r -p "   press Enter to stop everything " _ || true
fi
kill -TERM "$run_pid"; wait "$run_pid" || true
echo
echo "== producer: $(tail -1 "$work/produce.log")"
echo "== posguard: $(grep 'event=stopped' "$work/posguard.log" | sed 's/.*event=stopped //')"
echo "== dead letters in pos.dlq: $(kcat -b "$bootstrap" -C -t pos.dlq -e -q \
    -X isolation.level=read_committed -f '%o\n' | wc -l) (reasons in their headers:"
kcat -b "$bootstrap" -C -t pos.dlq -e -q -X isolation.level=read_committed \
    -f '%h\n' -c 3 | sed 's/^/   /'
echo "   ...)"
