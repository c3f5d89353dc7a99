#!/usr/bin/env bash
# victoria-metrics on 127.0.0.1:8428: speaks the InfluxDB v2 write API the exporter uses, and answers queries to read points back.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PIDFILE="$VAR_DIR/victoria-metrics.pid"
DATA="$VAR_DIR/victoria-metrics-data"
case "${1:-start}" in
  start)
    apt_ensure victoria-metrics
    if pid_alive "$PIDFILE"; then exit 0; fi
    mkdir -p "$DATA"
    nohup victoria-metrics -httpListenAddr=127.0.0.1:8428 -storageDataPath="$DATA" -retentionPeriod=1d \
      -search.latencyOffset=0s >"$VAR_DIR/victoria-metrics.log" 2>&1 &
    echo $! >"$PIDFILE"
    wait_tcp 127.0.0.1 8428 30 || { log "did not start; see $VAR_DIR/victoria-metrics.log"; exit 1; }
    ;;
  stop) stop_pidfile "$PIDFILE" ;;
  status) pid_alive "$PIDFILE" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
