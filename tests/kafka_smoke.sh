#!/usr/bin/env bash
# kafka_smoke.sh - smoke test of scripts/kafka.sh against a real broker:
#   start a single-node Kafka in ${PG_TEST_TMP:-$(mktemp -d)}/kafka_smoke,
#   create a 3-partition topic, produce 100 keyed messages with kcat, consume
#   them back (all 100, across all 3 partitions), restart the broker (same
#   ports, same data), check the messages survived and that it still takes
#   writes, then stop it and remove its data (also on failure, by trap).
# Usage: tests/kafka_smoke.sh        (needs Java 17+, kcat, python3; mvn the
#                                     first time, to fetch the Kafka jars)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kafka=$root/scripts/kafka.sh
own_tmp=
if [ -n "${PG_TEST_TMP:-}" ]; then
  base=$PG_TEST_TMP
else
  base=$(mktemp -d)
  own_tmp=$base
fi
dir=$base/kafka_smoke
topic=smoke

fail() { echo "kafka_smoke: FAIL: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -f "$dir/logs/server.log" ]; then
    echo "---- last lines of $dir/logs/server.log" >&2
    tail -n 30 "$dir/logs/server.log" >&2
  fi
  "$kafka" stop "$dir" --clean || echo "kafka_smoke: stopping the broker failed" >&2
  [ -z "$own_tmp" ] || rm -rf "$own_tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# consume: every message of the topic as "partition key=value", sorted.
consume() {
  timeout 60 kcat -b "$bootstrap" -C -t "$topic" -o beginning -e -q \
    -f '%p %k=%s\n' | sort
}

# A broker left over from an interrupted earlier run is stopped first.
"$kafka" stop "$dir" --clean

echo "kafka_smoke: starting the broker in $dir"
out=$("$kafka" start "$dir") || fail "scripts/kafka.sh start failed"
bootstrap=$(tail -n 1 <<<"$out")
[[ $bootstrap =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bad bootstrap address '$bootstrap'"
"$kafka" status "$dir" >/dev/null || fail "status says the broker is not running"
echo "kafka_smoke: broker at $bootstrap"

"$kafka" create-topic "$dir" "$topic" 3 || fail "create-topic failed"

# 100 messages, 10 distinct keys: kcat's partitioner spreads them over the
# 3 partitions, always the same key to the same partition.
expected=$(for i in $(seq 1 100); do echo "key$((i % 10))=value$i"; done | sort)
for i in $(seq 1 100); do echo "key$((i % 10)):value$i"; done |
  timeout 60 kcat -b "$bootstrap" -P -t "$topic" -K: ||
  fail "kcat could not produce"

check() {   # check WHEN COUNT
  local got n parts
  got=$(consume) || fail "kcat could not consume ($1)"
  n=$(grep -c . <<<"$got" || true)
  [ "$n" -eq "$2" ] || fail "$1: consumed $n messages, expected $2"
  [ "$(cut -d' ' -f2- <<<"$got" | sort)" = "$expected" ] ||
    fail "$1: the messages consumed are not the ones produced"
  parts=$(cut -d' ' -f1 <<<"$got" | sort -u | wc -l)
  [ "$parts" -eq 3 ] || fail "$1: messages in $parts partitions, expected 3"
  # A key never spans partitions.
  [ "$(awk '{split($2, kv, "="); print kv[1], $1}' <<<"$got" | sort -u |
       cut -d' ' -f1 | uniq -d)" = "" ] || fail "$1: a key is in two partitions"
  echo "kafka_smoke: $1: $n messages in 3 partitions"
}
check "after produce" 100

echo "kafka_smoke: restarting the broker"
out=$("$kafka" restart "$dir") || fail "scripts/kafka.sh restart failed"
[ "$(tail -n 1 <<<"$out")" = "$bootstrap" ] ||
  fail "restart moved the broker from $bootstrap to $(tail -n 1 <<<"$out")"
check "after restart" 100

# Still takes writes after the restart.
echo "zzz:after-restart" | timeout 60 kcat -b "$bootstrap" -P -t "$topic" -K: ||
  fail "kcat could not produce after the restart"
n=$(consume | grep -c . || true)
[ "$n" -eq 101 ] || fail "after restart and one more message: consumed $n, expected 101"

"$kafka" stop "$dir"
! "$kafka" status "$dir" 2>/dev/null || fail "broker still answers after stop"
echo "kafka_smoke: OK"
