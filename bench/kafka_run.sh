#!/usr/bin/env bash
# bench/kafka_run.sh [RECORDS] - posguard run end to end on the local broker.
#
# Starts a single-node broker (scripts/kafka.sh), loads RECORDS generated
# records (default 1,000,000, protobuf, keyed by merchant) into pos.txn
# (4 partitions), then measures in the same run, on the same topic:
#   1. consume-only baseline: `posguard watch --topic pos.txn`, a
#      read_committed consumer that decodes nothing;
#   2. `posguard run` with the default rules: decode, engine, outputs
#      produced and offsets committed in transactions, from the first
#      message to the commit that made the last outputs visible; once with
#      the default processing threads (one per core) and once with
#      workers=1 (everything on the consumer thread), and once with the
#      default threads and each partition's engine sized for its share of
#      the load from the start (expect.records = RECORDS / 4 + 10 %), each
#      in its own consumer group so that each reads the whole topic;
#      after a warm-up run (not measured) on the same topic; the
#      baseline runs again after them, and the ratios use the faster.
# Writes bench/results/kafka-<host>-<date>.txt and prints it. The broker
# shares the machine's cores with posguard (as on a small box).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
n=${1:-1000000}
py=/usr/bin/python3
bench_build
pg=build-bench/posguard
work=$(mktemp -d)
cleanup() { scripts/kafka.sh stop "$work/broker" --clean >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bootstrap=$(scripts/kafka.sh start "$work/broker" | tail -1)
scripts/kafka.sh create-topic "$work/broker" pos.txn 4 \
    message.timestamp.after.max.ms=9223372036854775807 >/dev/null 2>&1
for t in pos.alerts pos.refunds pos.dlq w1.alerts w1.refunds w1.dlq \
    sz.alerts sz.refunds sz.dlq warm.alerts warm.refunds warm.dlq; do
  scripts/kafka.sh create-topic "$work/broker" $t 2 >/dev/null 2>&1
done
cat >"$work/pg.conf" <<CONF
kafka.bootstrap.servers=$bootstrap
rules=rules/default.yaml
group.id=bench
transactional.id=bench-1
http.listen=127.0.0.1:0
CONF
bench_input "$n" "$work/raw.jsonl"
$py tests/kafka_stream.py close "$work/raw.jsonl" "$work/in.jsonl" >/dev/null
t0=$(date +%s.%N)
$pg produce --config "$work/pg.conf" --input "$work/in.jsonl" 2>"$work/produce.log"
t1=$(date +%s.%N)
# CPU seconds of each measured client (bash's time: user and system) and
# of the broker's JVM meanwhile (/proc: utime + stime), so that the figures
# say where the two cores went; a few seconds first for the broker to
# settle after the load
bpid=$(cat "$work/broker/broker.pid")
hz=$(getconf CLK_TCK)
broker_cpu() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$bpid/stat"; }
# Warm-up, not measured: a whole run on the same topic first. The first
# posguard run of a broker session paid 1-3 s more broker CPU than the
# same run later, whichever configuration came first, even after a small
# transactional run on a topic of its own (kafka-vm-20261203-4.txt).
$pg run --config "$work/pg.conf" -X group.id=bench-warm \
    -X transactional.id=bench-warm -X output.alerts=warm.alerts \
    -X output.refunds=warm.refunds -X output.dlq=warm.dlq \
    --until-idle 2000 2>"$work/warm.log"
sleep 5
measured() { # NAME CMD...: runs CMD, stderr to $work/NAME.log, CPU to $work/NAME.cpu
  local name=$1 b0 b1 TIMEFORMAT="%U %S %R"
  shift
  b0=$(broker_cpu)
  { time "$@" 2>"$work/$name.log"; } 2>"$work/$name.time"
  b1=$(broker_cpu)
  read -r u sy wall <"$work/$name.time"
  $py -c "print(f'client user {$u:.2f} s + system {$sy:.2f} s, broker {$b1 - $b0:.2f} s, in {$wall:.2f} s of wall time (the idle wait at the end included)')" >"$work/$name.cpu"
}
measured consume $pg watch --config "$work/pg.conf" --topic pos.txn --idle-exit 5000
measured run $pg run --config "$work/pg.conf" --until-idle 3000
measured run1 $pg run --config "$work/pg.conf" -X workers=1 -X group.id=bench-w1 \
    -X transactional.id=bench-w1 -X output.alerts=w1.alerts \
    -X output.refunds=w1.refunds -X output.dlq=w1.dlq \
    --until-idle 3000
expect=$((n / 4 + n / 40))
measured runsz $pg run --config "$work/pg.conf" -X expect.records=$expect -X group.id=bench-sz \
    -X transactional.id=bench-sz -X output.alerts=sz.alerts \
    -X output.refunds=sz.refunds -X output.dlq=sz.dlq \
    --until-idle 3000
# the baseline again, after posguard's runs: one consume-only run can be
# slowed by the broker's own work (kafka-vm-20261204-3.txt: 0.9M records/s
# against 3.0M in the runs before and after); the ratios use the faster
measured consume2 $pg watch --config "$work/pg.conf" --topic pos.txn --idle-exit 5000

out=$(bench_out kafka ".txt")
field() { grep -o "$2=[0-9.]*" "$1" | tail -1 | cut -d= -f2; }
{
  echo "# posguard run end to end on a local Kafka broker, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(bench_machine); broker on the same cores"
  echo "commit: $(bench_commit)"
  echo "kafka: $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml), pos.txn 4 partitions, protobuf records"
  echo "input: $(wc -l <"$work/in.jsonl") messages ($n generated records + redeliveries, malformed lines, closing records)"
  echo "load (posguard produce, idempotent, not part of the comparison): $(tail -1 "$work/produce.log" | sed 's/posguard produce: //') in $($py -c "print(round($t1 - $t0, 1))") s"
  base=$($py -c "print(max($(field "$work/consume.log" records_per_s), $(field "$work/consume2.log" records_per_s)))")
  echo "consume-only baseline: $(field "$work/consume.log" consumed) messages, $base records/s (the faster of $(field "$work/consume.log" records_per_s) before posguard's runs and $(field "$work/consume2.log" records_per_s) after them)"
  echo "  cpu: before: $(cat "$work/consume.cpu"); after: $(cat "$work/consume2.cpu")"
  echo "posguard run (default rules, exactly-once, commit.interval.ms=100, workers=$(field "$work/run.log" workers)): $(field "$work/run.log" consumed) messages, $(field "$work/run.log" records_per_s) records/s to committed outputs"
  echo "  outputs: alerts $(field "$work/run.log" alerts), refunds $(field "$work/run.log" refunds), dead letters $(field "$work/run.log" dead_letters), commits $(field "$work/run.log" commits)"
  full=$(field "$work/run.log" records_per_s)
  echo "  ratio to the baseline: $($py -c "print(round(100 * $full / $base, 1))") %"
  echo "  peak RSS of posguard run: $(( $(field "$work/run.log" peak_rss_kb) / 1024 )) MiB"
  echo "  cpu: $(cat "$work/run.cpu")"
  echo "posguard run, workers=1: $(field "$work/run1.log" consumed) messages, $(field "$work/run1.log" records_per_s) records/s; alerts $(field "$work/run1.log" alerts), refunds $(field "$work/run1.log" refunds)"
  echo "  cpu: $(cat "$work/run1.cpu")"
  echo "posguard run, expect.records=$expect (each partition's engine sized for its share), workers=$(field "$work/runsz.log" workers): $(field "$work/runsz.log" consumed) messages, $(field "$work/runsz.log" records_per_s) records/s ($($py -c "print(round(100 * $(field "$work/runsz.log" records_per_s) / $base, 1))") % of the baseline); alerts $(field "$work/runsz.log" alerts), refunds $(field "$work/runsz.log" refunds); peak RSS $(( $(field "$work/runsz.log" peak_rss_kb) / 1024 )) MiB"
  echo "  cpu: $(cat "$work/runsz.cpu")"
  echo "  (each run's own timing: $(for f in run run1 runsz; do printf '%s: poll %s ms, process %s ms, commit %s ms, first to committed %s ms; ' $f "$(field "$work/$f.log" poll_ms)" "$(field "$work/$f.log" process_ms)" "$(field "$work/$f.log" commit_ms)" "$(field "$work/$f.log" first_to_committed_ms)"; done))"
} | tee "$out"
echo "written: $out"
