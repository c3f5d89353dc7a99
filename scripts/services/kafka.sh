#!/usr/bin/env bash
# Single-node KRaft Kafka broker on loopback for tests and benchmarks, built from the Apache Kafka jars on Maven Central.
#   scripts/services/kafka.sh start|stop|restart|status
# Broker on 127.0.0.1:19092, controller on 127.0.0.1:19093. Jars, config, data and logs live under
# $FORESIGHT_KAFKA_HOME (default <repo>/.cache/kafka, git-ignored). Idempotent: start while running is a no-op.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HOME_DIR="${FORESIGHT_KAFKA_HOME:-$REPO/.cache/kafka}"
LIBS="$HOME_DIR/libs"
DATA="$HOME_DIR/data"
CONF="$HOME_DIR/server.properties"
LOG4J="$HOME_DIR/log4j.properties"
PID_FILE="$HOME_DIR/kafka.pid"
OUT="$HOME_DIR/kafka.out"
BROKER_PORT="${FORESIGHT_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${FORESIGHT_KAFKA_CONTROLLER_PORT:-19093}"
HEAP="${FORESIGHT_KAFKA_HEAP:--Xms256m -Xmx512m}"
START_TIMEOUT_S="${FORESIGHT_KAFKA_START_TIMEOUT_S:-90}"

log() { echo "kafka.sh: $*" >&2; }

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  # A stale PID file may name a recycled PID: only a process running kafka.Kafka counts.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    echo "$pid"
    return 0
  fi
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_tools() {
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_jars() {
  # The pom is the source of truth: refetch when it changes.
  local stamp="$LIBS/.pom.sha256"
  local want
  want="$(sha256sum "$REPO/scripts/kafka/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  log "fetching Kafka jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  (cd "$REPO/scripts/kafka" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS")
  echo "$want" >"$stamp"
}

write_config() {
  mkdir -p "$DATA"
  cat >"$CONF" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
# Topics are created by the application (ensureTopics), so a typo never creates a stray topic.
auto.create.topics.enable=false
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
# Tests use short session timeouts to observe fail-over quickly.
group.min.session.timeout.ms=1000
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=268435456
message.max.bytes=4194304
# A single broker has nobody to hand leadership to; skipping controlled shutdown makes stop take seconds, not 30.
controlled.shutdown.enable=false
# A restarted broker re-registers only once its previous registration expired: keep that short.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
EOF
  cat >"$LOG4J" <<EOF
log4j.rootLogger=WARN, file
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$HOME_DIR/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

java_cmd() {
  # shellcheck disable=SC2086 # HEAP holds several JVM flags
  java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$LOG4J" -cp "$LIBS/*" "$@"
}

format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid | tail -n1)"
  log "formatting storage (cluster $cluster_id)"
  java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" --ignore-formatted >/dev/null
}

start() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    return 0
  fi
  if port_open "$BROKER_PORT" || port_open "$CONTROLLER_PORT"; then
    log "port $BROKER_PORT or $CONTROLLER_PORT is taken by another process"
    return 1
  fi
  ensure_tools
  ensure_jars
  write_config
  format_storage
  log "starting broker on 127.0.0.1:$BROKER_PORT"
  rm -f "$PID_FILE"
  # The broker writes its own PID (bash execs java in place): $! would name setsid, which forks and exits when it
  # happens to lead its process group, and that left a running broker without a PID file, blocking the next start.
  setsid bash -c "echo \$\$ >'$PID_FILE'; exec java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration='file:$LOG4J' -cp '$LIBS/*' kafka.Kafka '$CONF'" >"$OUT" 2>&1 </dev/null 9>&- &
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ((SECONDS < deadline)) && [[ ! -s "$PID_FILE" ]]; do sleep 0.1; done
  while ((SECONDS < deadline)); do
    if ! running_pid >/dev/null; then
      log "broker exited during start-up; last output:"
      tail -n 30 "$OUT" >&2 || true
      tail -n 30 "$HOME_DIR/server.log" >&2 || true
      rm -f "$PID_FILE"
      return 1
    fi
    if port_open "$BROKER_PORT" && grep -q 'Kafka Server started' "$HOME_DIR/server.log" 2>/dev/null; then
      log "ready (pid $(cat "$PID_FILE"))"
      return 0
    fi
    sleep 0.3
  done
  log "broker did not become ready within ${START_TIMEOUT_S}s"
  return 1
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    log "not running"
    rm -f "$PID_FILE"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker ignored SIGTERM for 30s; killing"
    kill -KILL "$pid" || true
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

status() {
  local pid
  if pid="$(running_pid)" && port_open "$BROKER_PORT"; then
    echo "kafka running (pid $pid) on 127.0.0.1:$BROKER_PORT"
    return 0
  fi
  echo "kafka not running"
  return 3
}

mkdir -p "$HOME_DIR"
# Test files and benches may call this at the same time: one start/stop at a time.
exec 9>"$HOME_DIR/.lock"
flock 9
# The server log is appended across runs; start afresh so readiness is read from this run only.
case "${1:-}" in
  start)
    running_pid >/dev/null || rm -f "$HOME_DIR/server.log"
    start
    ;;
  stop) stop ;;
  restart)
    stop
    rm -f "$HOME_DIR/server.log"
    start
    ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 2
    ;;
esac
