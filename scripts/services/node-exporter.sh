#!/usr/bin/env bash
# prometheus-node-exporter (Debian) on 127.0.0.1:9100, for the host collector's integration test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PIDFILE="$VAR_DIR/node-exporter.pid"
PORT="${NODE_EXPORTER_PORT:-9100}"
case "${1:-start}" in
  start)
    apt_ensure prometheus-node-exporter
    if pid_alive "$PIDFILE"; then exit 0; fi
    # Only the collectors the host collector reads: fast scrapes, nothing that needs extra privileges or files.
    nohup prometheus-node-exporter --web.listen-address="127.0.0.1:$PORT" --collector.disable-defaults \
      --collector.meminfo --collector.cpu --collector.filefd --collector.loadavg --collector.stat \
      >"$VAR_DIR/node-exporter.log" 2>&1 &
    echo $! >"$PIDFILE"
    wait_tcp 127.0.0.1 "$PORT" 30 || { log "did not start; see $VAR_DIR/node-exporter.log"; exit 1; }
    ;;
  stop) stop_pidfile "$PIDFILE" ;;
  status) pid_alive "$PIDFILE" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
