#!/usr/bin/env bash
# The full-stack environment on loopback, for exploring Foresight by hand and for the chaos suite's scenarios:
# Kafka (KRaft), Kamailio with three sipp UAS backends (ast1..ast3 on 5071-5073) and a bounded sipp caller,
# PostgreSQL, AMI replay servers (one per node), victoria-metrics, node_exporter, and Foresight as a sidecar
# (`foresight run`) with a generated config (var/fullstack/foresight.json). API on http://127.0.0.1:$FULLSTACK_API_PORT
# (default 8080, open local mode).
#   scripts/fullstack.sh start|stop|status
# Every process started here is stopped by its PID file under var/fullstack/; services this script started are
# stopped again, services that were already running are left alone. Stop it before `npm test` (same ports).
set -euo pipefail
source "$(dirname "$0")/services/lib.sh"
DIR="$VAR_DIR/fullstack"
API_PORT="${FULLSTACK_API_PORT:-8080}"
CALLS="${FULLSTACK_CALLS:-600}"
SERVICES=(databases kafka kamailio victoria-metrics node-exporter)
SIPP_FIXTURES="$ROOT/test/fixtures/sipp"
STORE_DB=foresight_fullstack
mkdir -p "$DIR"

start_bg() { # name, working directory, command...
  local name=$1 cwd=$2; shift 2
  if pid_alive "$DIR/$name.pid"; then return 0; fi
  # exec all the way down: the PID recorded is the program's own, so stop acts on it and nothing else.
  (cd "$cwd" && exec nohup "$@" >"$DIR/$name.log" 2>&1) &
  echo $! >"$DIR/$name.pid"
}

start() {
  : >"$DIR/started-services.tmp"
  for svc in "${SERVICES[@]}"; do
    if ! bash "$ROOT/scripts/services/$svc.sh" status >/dev/null 2>&1; then
      bash "$ROOT/scripts/services/$svc.sh" start
      echo "$svc" >>"$DIR/started-services.tmp"
    fi
  done
  cat "$DIR/started-services.tmp" >>"$DIR/started-services"; rm -f "$DIR/started-services.tmp"

  for port in 5071 5072 5073; do
    start_bg "uas-$port" "$DIR" sipp -sf "$SIPP_FIXTURES/uas_rr.xml" -i 127.0.0.1 -p "$port" -aa -nostdin -trace_stat -stf "uas-$port.csv"
  done
  # Kamailio probes the backends; make them active at once rather than after the next probe round.
  sleep 0.5
  for port in 5071 5072 5073; do
    curl -s -m 2 -X POST -H 'Content-Type: application/json' \
      --data "{\"jsonrpc\":\"2.0\",\"method\":\"dispatcher.set_state\",\"params\":[\"ap\",1,\"sip:127.0.0.1:$port\"],\"id\":1}" \
      http://127.0.0.1:5080/RPC >/dev/null || true
  done

  rm -f "$DIR/ami-ports.json"
  start_bg ami-servers "$ROOT" node --import tsx "$ROOT/test/chaos/ami-servers.ts" --ports-file "$DIR/ami-ports.json"
  for _ in $(seq 1 100); do [ -s "$DIR/ami-ports.json" ] && break; sleep 0.2; done
  [ -s "$DIR/ami-ports.json" ] || { log "AMI replay servers did not start; see $DIR/ami-servers.log"; exit 1; }

  psql -h 127.0.0.1 -U postgres -d test -tAc "SELECT 1 FROM pg_database WHERE datname='$STORE_DB'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $STORE_DB"
  (cd "$ROOT" && node --import tsx test/chaos/fullstack-config.ts --ami-ports "$DIR/ami-ports.json" \
    --api-port "$API_PORT" --store-url "postgres://postgres@127.0.0.1:5432/$STORE_DB") >"$DIR/foresight.json"
  start_bg foresight "$ROOT" node --import tsx "$ROOT/src/cli/main.ts" run --config "$DIR/foresight.json"
  local deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
    pid_alive "$DIR/foresight.pid" || { log "foresight exited; see $DIR/foresight.log"; exit 1; }
    [ $SECONDS -ge $deadline ] && { log "foresight API not up; see $DIR/foresight.log"; exit 1; }
    sleep 0.5
  done

  # A bounded caller: $CALLS calls at 2/s, 5 s each, through Kamailio (exits by itself).
  if ! pid_alive "$DIR/uac.pid"; then
    start_bg uac "$DIR" sipp 127.0.0.1:5060 -sf "$SIPP_FIXTURES/uac_rr.xml" -s svc -i 127.0.0.1 -p 5090 -m "$CALLS" -r 2 \
      -d 5000 -nostdin -timeout "$((CALLS / 2 + 60))s" -timeout_error -trace_stat -stf uac.csv
  fi
  log "up: API http://127.0.0.1:$API_PORT (config $DIR/foresight.json, log $DIR/foresight.log)"
}

stop() {
  for name in uac foresight ami-servers uas-5071 uas-5072 uas-5073; do stop_pidfile "$DIR/$name.pid"; done
  if [ -f "$DIR/started-services" ]; then
    # Reverse order of start.
    tac "$DIR/started-services" | while read -r svc; do
      [ -n "$svc" ] && bash "$ROOT/scripts/services/$svc.sh" stop || true
    done
    rm -f "$DIR/started-services"
  fi
}

status() {
  local rc=0
  for name in foresight ami-servers uas-5071 uas-5072 uas-5073 uac; do
    if pid_alive "$DIR/$name.pid"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; [ "$name" = uac ] || rc=1; fi
  done
  for svc in "${SERVICES[@]}"; do
    if bash "$ROOT/scripts/services/$svc.sh" status >/dev/null 2>&1; then echo "$svc: running"; else echo "$svc: stopped"; rc=1; fi
  done
  return "$rc"
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
