#!/usr/bin/env bash
# bench/latency.sh [RATE] [SECONDS] - detection latency of posguard run on
# the local broker, at a steady RATE records/s (default 100,000: about half
# the end-to-end maximum of bench/kafka_run.sh on 2 cores) for SECONDS
# (default 10).
#
# The stream is generated to start a few seconds in the future
# (scripts/posgen.py --start, no disorder, no late records) and
# `posguard produce --pace-event` sends each record when the wall clock
# reaches its event_time, so a record's event_time is its send time. The
# run uses clock=wall (detected_at is the wall clock at detection) and the
# default rules with allowed_lateness 0s: with the default 5 s a record
# waits in the reorder buffer until the stream is 5 s past it, by the
# contract, which would be all the latency measured. Latency of an alert =
# detected_at - event_time of its offending record: from the record's
# timestamp to the alert produced into the open transaction. Commit time is
# reported apart (the run's commits and their mean duration): a committed
# alert becomes visible at most commit.interval.ms + one commit later.
# Where the time goes: the run's histograms (its metrics file) give the
# consume delay (from a message's Kafka timestamp to the poll that returned
# it) and the batch and commit durations. The Kafka timestamp is the
# producer's create time; with PG_BENCH_TIMESTAMP=LogAppendTime the topic
# stamps the broker's append time instead, which splits the producer's leg
# from the broker-to-consumer one.
# PG_BENCH_EXPECT_RECORDS=N sizes each partition's engine for N live
# records from the start (expect.records; the stream has RATE * SECONDS
# records over 4 partitions).
# PG_BENCH_PIN=1 puts posguard run on CPU 1 and the broker and the producer
# on CPU 0 (taskset): the latency when posguard has a core of its own,
# which tells the sharing of the cores apart from posguard's own delays.
# The results also give the broker JVM's collection pauses during the run
# (its logs/gc.log) and each histogram's cumulative counts.
# PG_BENCH_CONF="key=value" adds lines to posguard's configuration (both
# the run's and the producer's), for instance
# kafka.consumer.fetch.wait.max.ms=10.
# Writes bench/results/latency-<host>-<date>-RATE.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/lib.sh
rate=${1:-100000}
secs=${2:-10}
ts_type=${PG_BENCH_TIMESTAMP:-CreateTime}
py=/usr/bin/python3
pin_kafka=() pin_pg=()
if [ "${PG_BENCH_PIN:-0}" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "PG_BENCH_PIN=1 needs 2 CPUs"; exit 1; }
  pin_kafka=(taskset -c 0) pin_pg=(taskset -c 1)
fi
bench_build
pg=build-bench/posguard
work=$(mktemp -d)
cleanup() {
  [ -n "${run_pid:-}" ] && kill "$run_pid" 2>/dev/null || true
  scripts/kafka.sh stop "$work/broker" --clean >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bootstrap=$("${pin_kafka[@]}" scripts/kafka.sh start "$work/broker" | tail -1)
scripts/kafka.sh create-topic "$work/broker" pos.txn 4 \
    message.timestamp.after.max.ms=9223372036854775807 message.timestamp.type="$ts_type" >/dev/null 2>&1
for t in pos.alerts pos.refunds pos.dlq; do
  scripts/kafka.sh create-topic "$work/broker" $t 2 >/dev/null 2>&1
done
sed 's/^\(  *allowed_lateness:\).*/\1 0s/' rules/default.yaml >"$work/rules.yaml"
grep -q "allowed_lateness: 0s" "$work/rules.yaml"
cat >"$work/pg.conf" <<CONF
kafka.bootstrap.servers=$bootstrap
rules=$work/rules.yaml
group.id=latency
transactional.id=latency-1
clock=wall
http.listen=127.0.0.1:0
metrics.file=$work/metrics.prom
expect.records=${PG_BENCH_EXPECT_RECORDS:-0}
${PG_BENCH_CONF:-}
CONF
lead=$((secs + 45))
start_ms=$(( $(date +%s%3N) + lead * 1000 ))
start=$($py -c "import datetime,sys; print(datetime.datetime.fromtimestamp($start_ms/1000, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]+'Z')")
$py scripts/posgen.py --count $((rate * secs)) --rate "$rate" --start "$start" \
    --p-disorder 0 --p-late 0 --out "$work/gen.jsonl" 2>/dev/null
# only the records of the measured seconds (the generator's follow-ups
# run on for an hour of event time), and none far behind the stream (some
# scenarios carry old times on purpose: sent at once, they would measure
# the producer, not posguard)
$py - "$work/gen.jsonl" "$work/in.jsonl" "$((start_ms + secs * 1000))" <<'PY'
import datetime, json, sys
src, dst, end = sys.argv[1], sys.argv[2], int(sys.argv[3])
top = 0
with open(src, "rb") as f, open(dst, "wb") as o:
    for line in f:
        try:
            t = json.loads(line)["event_time"]
            if isinstance(t, str):
                t = int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
                        .timestamp() * 1000)
            if t > end or t < top - 100:
                continue
            top = max(top, t)
        except Exception:
            pass  # malformed lines go as they are
        o.write(line)
PY
[ "$(date +%s%3N)" -lt "$start_ms" ] || { echo "generation took longer than the lead"; exit 1; }
# the run joins the group 10 s before the stream starts (its idle limit,
# 15 s, covers that wait) and stops 15 s after the last record
sleep_s=$(( (start_ms - $(date +%s%3N)) / 1000 - 10 ))
[ "$sleep_s" -gt 0 ] && sleep "$sleep_s"
# the broker's collections from here on are the run's (logs/gc.log)
gc0=$(wc -l <"$work/broker/logs/gc.log" 2>/dev/null || echo 0)
"${pin_pg[@]}" $pg run --config "$work/pg.conf" --until-idle 15000 2>"$work/run.log" &
run_pid=$!
timeout $((lead + secs + 60)) "${pin_kafka[@]}" $pg produce --config "$work/pg.conf" \
    --input "$work/in.jsonl" --pace-event 2>"$work/produce.log" \
    || { echo "produce failed or timed out"; tail -3 "$work/produce.log"; exit 1; }
timeout 120 tail --pid="$run_pid" -f /dev/null || { echo "run did not stop"; tail -5 "$work/run.log"; exit 1; }
wait "$run_pid" || { echo "run failed"; tail -5 "$work/run.log"; exit 1; }
run_pid=
tail -n +"$((gc0 + 1))" "$work/broker/logs/gc.log" >"$work/gc.log" 2>/dev/null || :
$pg watch --config "$work/pg.conf" --json --idle-exit 4000 >"$work/out.jsonl" 2>/dev/null
lag=$(grep -o "mean_ms=[0-9.]* max_ms=[0-9]*" "$work/produce.log" || echo "mean_ms=? max_ms=?")
out=$(bench_out latency "-$rate.json")
$py - "$work/out.jsonl" "$work/run.log" "$lag" "$rate" "$secs" "$(bench_machine)" "$(bench_commit)" "$work/metrics.prom" "$ts_type" "$work/gc.log" <<'PY' | tee "$out"
import datetime, json, os, re, sys
out, log, lag, rate, secs, machine, commit, prom, ts_type, gc = sys.argv[1:]
def hist(name):
    """A histogram of the run's metrics file: the bucket bound under which
    50 %, 99 % and 99.9 % of the observations fall, in ms, and the count."""
    b = []
    for line in open(prom):
        m = re.match(name + r'_bucket\{le="([^"]+)"\} ([0-9.e+]+)', line)
        if m:
            b.append((float("inf") if m[1] == "+Inf" else float(m[1]), float(m[2])))
    n = b[-1][1] if b else 0
    def q(p):
        return next((("<= %g" % (le * 1000)) if le != float("inf") else "> %g" % (b[-2][0] * 1000)
                     for le, c in b if c >= p * n), None) if n else None
    # the cumulative counts too, by bound in ms, for where a tail sits
    cum = {("%g" % (le * 1000) if le != float("inf") else "inf"): int(c) for le, c in b}
    return {"count": int(n), "p50_ms": q(0.5), "p99_ms": q(0.99), "p99_9_ms": q(0.999),
            "cumulative": cum}
def gc_pauses():
    """The broker JVM's stop-the-world pauses while the run was on (its
    -Xlog:gc lines "... Pause Young (Normal) ... 12.345ms")."""
    p = [float(m[1]) for m in (re.search(r"Pause .* ([0-9.]+)ms$", l.strip()) for l in open(gc)) if m]
    return {"count": len(p), "total_ms": round(sum(p), 1), "max_ms": round(max(p), 1) if p else None}
def ms(t):
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
lat = []
for line in open(out):
    o = json.loads(line)
    if o.get("type") == "alert" and o.get("finding") != "refund_blocked":
        lat.append(ms(o["detected_at"]) - ms(o["event_time"]))
lat.sort()
assert int(dict(re.findall(r"(\w+)=([0-9.]+)", [l for l in open(log) if "event=stopped" in l][-1]))["consumed"]) > 0, "the run consumed nothing"
def pct(p):
    return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
s = dict(re.findall(r"(\w+)=([0-9.]+)", [l for l in open(log) if "event=stopped" in l][-1]))
commits = int(s["commits"])
print(json.dumps({
    "machine": machine, "commit": commit, "rate": int(rate), "seconds": int(secs),
    "records": int(s["consumed"]), "alerts": len(lat),
    "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p99_9": pct(0.999), "max": lat[-1] if lat else None},
    "commits": commits, "commit_ms_mean": round(int(s["commit_ms"]) / commits, 1) if commits else None,
    "commit_interval_ms": 100,
    "expect_records": int(os.environ.get("PG_BENCH_EXPECT_RECORDS") or 0),
    "pinned": os.environ.get("PG_BENCH_PIN") == "1",
    "conf": os.environ.get("PG_BENCH_CONF", ""),
    "producer_send_lag": lag,
    # where the time goes (bucket bounds of the run's histograms): from a
    # message's Kafka timestamp (posguard produce stamps it at send) to
    # the poll that returned it, and the processing of one polled batch
    "consume_delay": hist("posguard_consume_delay_seconds"),
    "kafka_timestamp": ts_type,
    "batch_duration": hist("posguard_batch_duration_seconds"),
    "commit_duration": hist("posguard_transaction_commit_duration_seconds"),
    # the broker's own stalls, which hold up the producer's sends and the
    # consumer's fetches alike: its collections' pauses during the run
    "broker_gc_pauses": gc_pauses(),
    "note": "latency = detected_at - event_time; event_time is the send time "
            "when the producer keeps pace (producer_send_lag: how far behind "
            "it fell, which the latency includes)"}, indent=1))
PY
echo "written: $out"
