#!/usr/bin/env bash
# kafka.sh - a real single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller, loopback only) for tests, the demo and benchmarks.
#
# Usage:
#   scripts/kafka.sh fetch
#       Download the broker's jars (Maven, scripts/kafka/pom.xml) into the
#       cache. Idempotent; returns at once when already cached.
#   scripts/kafka.sh start DIR
#       Start a broker whose files all live in DIR, on two free ports of
#       127.0.0.1, and wait until it answers (90 s at most). Prints its
#       bootstrap address (127.0.0.1:PORT) as the last line of stdout.
#       A DIR left by `stop` without --clean is started again with the same
#       ports and data; a DIR whose broker is running just prints its address.
#   scripts/kafka.sh stop DIR [--clean]
#       Stop the broker (SIGTERM, SIGKILL after 30 s). Idempotent. --clean
#       also removes its data, logs and config (and DIR when left empty).
#   scripts/kafka.sh restart DIR
#       Stop and start again on the same ports with the same data.
#   scripts/kafka.sh create-topic DIR NAME PARTITIONS [key=value ...]
#       Create a topic (replication factor 1, optional topic configs) unless
#       it exists; waits until every partition has a leader.
#   scripts/kafka.sh status DIR
#       Exit 0 (and print the bootstrap address) if the broker is running
#       and answering, 1 otherwise.
#
# Files in DIR: server.properties, bootstrap (127.0.0.1:PORT), broker.pid,
# data/ (log.dirs and the KRaft metadata log), logs/server.log (broker log),
# logs/broker.out (JVM stdout/stderr), logs/gc.log (the JVM's collections and
# their pauses), logs/tools.log (StorageTool, topics).
#
# Environment:
#   PG_KAFKA_CACHE          jar directory (default
#                           ${XDG_CACHE_HOME:-$HOME/.cache}/posguard/kafka-VERSION/libs)
#   PG_KAFKA_START_TIMEOUT  seconds `start` waits for readiness (default 90)
#   PG_KAFKA_STOP_TIMEOUT   seconds `stop` waits before SIGKILL (default 30)
#   PG_KAFKA_HEAP           broker heap (default 512m)
#   JAVA_HOME               the Java (17 or newer) to use; else `java` on PATH
# Needs: Java 17+, kcat, python3, and mvn for the first fetch (Maven's local
# repository stays the default ~/.m2).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$here/kafka/pom.xml
LOG4J=$here/kafka/log4j2.properties
# The pom is the one place the Kafka version is written.
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
LIBS=${PG_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/posguard/kafka-$KAFKA_VERSION/libs}
MARKER=.posguard-fetched        # in LIBS, holds the pom's checksum
START_TIMEOUT=${PG_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${PG_KAFKA_STOP_TIMEOUT:-30}
HEAP=${PG_KAFKA_HEAP:-512m}
if [ -n "${JAVA_HOME:-}" ]; then JAVA=$JAVA_HOME/bin/java; else JAVA=java; fi

die() { echo "kafka.sh: $*" >&2; exit 1; }
note() { echo "kafka.sh: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- fetch

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }
fetched() { [ -f "$LIBS/$MARKER" ] && [ "$(cat "$LIBS/$MARKER")" = "$(pom_sum)" ]; }

cmd_fetch() {
  fetched && return 0
  need mvn "install Maven to fetch the Kafka jars"
  mkdir -p "$(dirname "$LIBS")"
  # Several brokers may start at once on a cold cache: one fetch at a time,
  # into a temporary directory that is renamed into place when complete.
  (
    flock 9
    fetched && exit 0
    note "fetching Kafka $KAFKA_VERSION jars into $LIBS (first time only)"
    tmp=$LIBS.tmp.$$
    rm -rf "$tmp"
    # Maven's output (mostly stray colour codes when quiet) is shown on failure.
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
         -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
      cat "$tmp.log" >&2
      rm -rf "$tmp" "$tmp.log"
      die "mvn dependency:copy-dependencies failed for $POM"
    fi
    rm -f "$tmp.log"
    pom_sum >"$tmp/$MARKER"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
  ) 9>"$LIBS.lock"
}

# ---------------------------------------------------------------- helpers

# Absolute path of DIR (created if missing).
absdir() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# Two free TCP ports on 127.0.0.1 (both held while choosing: never equal).
free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
'
}

# A random Kafka cluster id: 16 random bytes, URL-safe base64, no padding,
# not starting with "-" (the same shape as StorageTool random-uuid).
cluster_id() {
  python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not u.startswith("-"):
        print(u)
        break
'
}

# True when process PID is alive (not a zombie) and is DIR's broker, not
# some other process that got a reused PID.
is_broker() {        # is_broker DIR PID
  [ -n "$2" ] && [ -r "/proc/$2/cmdline" ] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$2/status" 2>/dev/null || return 1
  tr '\0' '\n' <"/proc/$2/cmdline" | grep -xF -- "-Dposguard.kafka.dir=$1" >/dev/null
}

# The PID of DIR's broker if it is running, else nothing.
broker_pid() {
  local pid
  [ -f "$1/broker.pid" ] || return 0
  pid=$(cat "$1/broker.pid")
  if is_broker "$1" "$pid"; then echo "$pid"; fi
}

# True when our own child PID has exited (or is a zombie not yet reaped).
gone() {
  [ ! -r "/proc/$1/status" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# True when the broker at BOOTSTRAP answers a metadata request.
# (No `grep -q` after a pipe: with pipefail its early exit can fail the pipe.)
answers() {
  timeout 15 kcat -b "$1" -L -m 5 2>/dev/null | grep '^ *1 brokers:' >/dev/null
}

java_tool() {        # java_tool DIR MAINCLASS ARGS... (small, quick JVM)
  local dir=$1 main=$2
  shift 2
  mkdir -p "$dir/logs"
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J" \
    -Dkafka.logs.dir="$dir/logs" -Dkafka.log.name=tools \
    -cp "$LIBS/*" "$main" "$@"
}

log_tail() {
  local dir=$1 f
  for f in "$dir/logs/server.log" "$dir/logs/broker.out"; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 40 "$f" >&2
  done
}

write_config() {     # write_config DIR PORT CONTROLLER_PORT
  local dir=$1 port=$2 cport=$3
  cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh: a single-node test broker on 127.0.0.1.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

# Topics: created explicitly (create-topic), never by a client's request.
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
# No deletion by age: message timestamps are the records' event times,
# and generated streams start on a fixed day, so with the default 7 days
# the broker would delete a test's input while it is being read (seen in a
# benchmark run 9 days after the generator's start date).
log.retention.ms=-1

# Internal topics on one broker: replication 1, min ISR 1, few partitions
# (the first consumer group / transaction creates them: keep that quick).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Test-friendly timings.
group.initial.rebalance.delay.ms=0
transaction.max.timeout.ms=900000
EOF
}

# Start the JVM for DIR (configured and formatted) and wait until it serves;
# print the bootstrap address. On failure print the log tail and return 1,
# leaving the JVM in LAUNCHED_PID for on_start_exit to kill.
launch() {
  local dir=$1 bootstrap pid offset deadline
  bootstrap=127.0.0.1:$(sed -n 's/^listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$dir/server.properties")
  mkdir -p "$dir/logs"
  # Only lines written by this run count for readiness.
  offset=$(stat -c %s "$dir/logs/server.log" 2>/dev/null || echo 0)
  echo "==== $(date '+%F %T') start" >>"$dir/logs/broker.out"
  "$JAVA" -Xmx"$HEAP" -Xms"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Xlog:gc:file="$dir/logs/gc.log":uptimemillis:filecount=2,filesize=8m \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J" \
    -Dkafka.logs.dir="$dir/logs" -Dkafka.log.name=server \
    -Dposguard.kafka.dir="$dir" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/logs/broker.out" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/broker.pid"
  echo "$bootstrap" >"$dir/bootstrap"
  LAUNCHED_PID=$pid          # killed by on_start_exit unless we succeed

  deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if gone "$pid"; then
      log_tail "$dir"
      note "broker in $dir exited during startup"
      return 1
    fi
    if tail -c +"$((offset + 1))" "$dir/logs/server.log" 2>/dev/null |
         grep 'Kafka Server started' >/dev/null && answers "$bootstrap"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$dir"
      note "broker in $dir not ready after ${START_TIMEOUT}s"
      return 1
    fi
    sleep 0.3
  done
  LAUNCHED_PID=
  echo "$bootstrap"
}

# Kill a broker that `start` launched but that did not become ready, so a
# failed (or interrupted) start never leaves a broker running.
LAUNCHED_PID=
on_start_exit() {
  if [ -n "$LAUNCHED_PID" ] && ! gone "$LAUNCHED_PID"; then
    kill -KILL "$LAUNCHED_PID" 2>/dev/null || true
    while ! gone "$LAUNCHED_PID"; do sleep 0.1; done
    rm -f "$START_DIR/broker.pid"
  fi
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local dir attempt pid port cport
  dir=$(absdir "${1:-}")
  need "$JAVA" "install Java 17 or newer (or set JAVA_HOME)"
  need kcat "install kcat"
  need python3 "install python3"
  pid=$(broker_pid "$dir")
  if [ -n "$pid" ]; then
    note "broker already running in $dir (pid $pid)"
    cat "$dir/bootstrap"
    return 0
  fi
  cmd_fetch
  START_DIR=$dir
  trap on_start_exit EXIT
  trap 'exit 130' INT TERM

  # A DIR left by `stop` (no --clean): same ports, same data.
  if [ -f "$dir/server.properties" ] && [ -f "$dir/data/meta.properties" ]; then
    launch "$dir" || exit 1
    return 0
  fi

  # A new broker. Another process may take a "free" port before the broker
  # binds it: then try again with new ports.
  for attempt in 1 2 3; do
    rm -rf "$dir/data" "$dir/logs" "$dir/server.properties" "$dir/bootstrap" "$dir/broker.pid"
    mkdir -p "$dir/data" "$dir/logs"
    read -r port cport < <(free_ports)
    write_config "$dir" "$port" "$cport"
    if ! java_tool "$dir" kafka.tools.StorageTool format \
         -t "$(cluster_id)" -c "$dir/server.properties" >"$dir/logs/format.out" 2>&1; then
      cat "$dir/logs/format.out" >&2
      die "formatting the storage in $dir failed"
    fi
    if launch "$dir"; then
      return 0
    fi
    on_start_exit
    grep -q 'Address already in use' "$dir/logs/server.log" "$dir/logs/broker.out" 2>/dev/null ||
      break
    note "port taken, trying again with other ports"
  done
  exit 1
}

cmd_stop() {
  local dir clean=0 pid deadline
  [ -n "${1:-}" ] || usage
  case ${2:-} in
    "") ;;
    --clean) clean=1 ;;
    *) usage ;;
  esac
  [ -d "$1" ] || return 0
  dir=$(absdir "$1")
  pid=$(broker_pid "$dir")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while is_broker "$dir" "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if is_broker "$dir" "$pid"; then
      note "broker in $dir ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while is_broker "$dir" "$pid"; do sleep 0.1; done
    fi
  fi
  rm -f "$dir/broker.pid"
  if [ $clean -eq 1 ]; then
    rm -rf "$dir/data" "$dir/logs" "$dir/server.properties" "$dir/bootstrap"
    rmdir "$dir" 2>/dev/null || true
  fi
}

cmd_restart() {
  local dir
  dir=$(absdir "${1:-}")
  [ -f "$dir/server.properties" ] && [ -f "$dir/data/meta.properties" ] ||
    die "no broker to restart in $dir (start it first)"
  cmd_stop "$dir"
  cmd_start "$dir"
}

cmd_create_topic() {
  local dir name parts bootstrap kv deadline out n
  [ $# -ge 3 ] || usage
  dir=$(absdir "$1") name=$2 parts=$3
  shift 3
  [ -n "$(broker_pid "$dir")" ] || die "no broker running in $dir"
  bootstrap=$(cat "$dir/bootstrap")
  local args=(--bootstrap-server "$bootstrap" --create --if-not-exists
              --topic "$name" --partitions "$parts" --replication-factor 1)
  for kv in "$@"; do args+=(--config "$kv"); done
  java_tool "$dir" org.apache.kafka.tools.TopicCommand "${args[@]}" >&2 ||
    die "creating topic $name failed"
  # Wait until the topic is in the metadata with a leader for every partition.
  deadline=$((SECONDS + 30))
  while :; do
    out=$(timeout 15 kcat -b "$bootstrap" -L -t "$name" -m 5 2>/dev/null || true)
    n=$(sed -n "s/^ *topic \"$name\" with \([0-9]*\) partitions:.*/\1/p" <<<"$out")
    if [ -n "$n" ] && [ "$n" -gt 0 ] &&
       [ "$(grep -cE '^ *partition [0-9]+, leader [0-9]+,' <<<"$out")" -eq "$n" ]; then
      [ "$n" -eq "$parts" ] || note "topic $name already exists with $n partitions"
      return 0
    fi
    ((SECONDS < deadline)) || die "topic $name has no leaders after 30s"
    sleep 0.2
  done
}

cmd_status() {
  local dir
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || { note "not running"; return 1; }
  dir=$(absdir "$1")
  if [ -n "$(broker_pid "$dir")" ] && answers "$(cat "$dir/bootstrap")"; then
    cat "$dir/bootstrap"
    return 0
  fi
  note "not running (or not answering) in $dir"
  return 1
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  fetch)        cmd_fetch ;;
  start)        cmd_start "$@" ;;
  stop)         cmd_stop "$@" ;;
  restart)      cmd_restart "$@" ;;
  create-topic) cmd_create_topic "$@" ;;
  status)       cmd_status "$@" ;;
  *)            usage ;;
esac
