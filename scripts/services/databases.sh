#!/usr/bin/env bash
# PostgreSQL and MariaDB come with this kind of machine; this only starts them again if they stopped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
case "${1:-start}" in
  start)
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      log "starting PostgreSQL"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    fi
    if ! mysqladmin --host=127.0.0.1 --user=root ping >/dev/null 2>&1; then
      log "starting MariaDB"
      start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    fi
    wait_tcp 127.0.0.1 5432 30 && wait_tcp 127.0.0.1 3306 30
    ;;
  status)
    pg_isready -h 127.0.0.1 -p 5432 && mysqladmin --host=127.0.0.1 --user=root ping ;;
  stop) log "left running: they belong to the machine" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
