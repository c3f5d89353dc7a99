#!/usr/bin/env bash
# Kamailio 5.6 on loopback for tests and benchmarks: the dispatcher Foresight drains.
#   scripts/services/kamailio.sh install|start|stop|restart|status
# SIP 127.0.0.1:5060/udp; JSON-RPC http://127.0.0.1:5080/RPC and udp:127.0.0.1:5081; kamcmd via
# unix:$VAR/run/kamailio_ctl; HEPv3 mirrored to 127.0.0.1:9060. Config: deploy/kamailio/test/. PID file, log and
# runtime files under $FORESIGHT_KAMAILIO_HOME (default <repo>/var/kamailio, git-ignored).
# Idempotent: start while running is a no-op; stop acts on the PID file only.
# A second instance (a fleet of proxies in tests) needs its own FORESIGHT_KAMAILIO_HOME and ports:
#   FORESIGHT_KAMAILIO_SIP_PORT (5060), FORESIGHT_KAMAILIO_RPC_PORT (HTTP, 5080), FORESIGHT_KAMAILIO_RPC_UDP_PORT
#   (5081), FORESIGHT_KAMAILIO_HEP_PORT (9060); kamailio.cfg reads them through FORESIGHT_KAM_* below.
# FORESIGHT_KAMAILIO_LIST: the dispatcher list it loads at each start (default deploy/kamailio/test/dispatcher.list,
#   the sipp backends), e.g. a list of the Asterisk lab nodes for a proxy in front of them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="${FORESIGHT_KAMAILIO_HOME:-$REPO/var/kamailio}"
RUN="$VAR/run"
PID_FILE="$VAR/kamailio.pid"
LOG_FILE="$VAR/kamailio.log"
CFG="$REPO/deploy/kamailio/test/kamailio.cfg"
LIST_SRC="${FORESIGHT_KAMAILIO_LIST:-$REPO/deploy/kamailio/test/dispatcher.list}"
LIST="$VAR/dispatcher.list"
SIP_PORT="${FORESIGHT_KAMAILIO_SIP_PORT:-5060}"
RPC_PORT="${FORESIGHT_KAMAILIO_RPC_PORT:-5080}"
RPC_UDP_PORT="${FORESIGHT_KAMAILIO_RPC_UDP_PORT:-5081}"
HEP_PORT="${FORESIGHT_KAMAILIO_HEP_PORT:-9060}"
RPC_URL="http://127.0.0.1:$RPC_PORT/RPC"
START_TIMEOUT_S="${FORESIGHT_KAMAILIO_START_TIMEOUT_S:-20}"

log() { echo "kamailio.sh: $*" >&2; }

export FORESIGHT_KAM_RUNDIR="$RUN"
export FORESIGHT_KAM_LIST_FILE="$LIST"
export FORESIGHT_KAM_CTL_SOCKET="unix:$RUN/kamailio_ctl"
export FORESIGHT_KAM_SIP_PORT="$SIP_PORT"
export FORESIGHT_KAM_RPC_PORT="$RPC_PORT"
export FORESIGHT_KAM_RPC_DGRAM="udp:127.0.0.1:$RPC_UDP_PORT"
export FORESIGHT_KAM_HEP_URI="sip:127.0.0.1:$HEP_PORT"

# Other ports with the default home would share (and overwrite) the first instance's PID file and sockets.
if [[ "$RPC_PORT" != 5080 && -z "${FORESIGHT_KAMAILIO_HOME:-}" ]]; then
  log "a second instance (RPC port $RPC_PORT) needs its own FORESIGHT_KAMAILIO_HOME"
  exit 2
fi

install_packages() {
  local missing=()
  command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
  # Bookworm ships xhttp/jsonrpcs/dispatcher/siptrace in `kamailio` itself; the extra modules (xhttp_prom, ...) are
  # installed too so operators can try them against the same instance.
  dpkg -s kamailio-extra-modules >/dev/null 2>&1 || missing+=(kamailio-extra-modules)
  command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  # The Debian package would start a system-wide kamailio on 5060; a policy-rc.d answering 101 forbids that,
  # and is removed again only if this script created it.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    created_policy=1
  fi
  log "installing ${missing[*]}"
  local rc=0
  $sudo apt-get update -qq || rc=$?
  if ((rc == 0)); then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
  fi
  ((created_policy == 1)) && $sudo rm -f "$policy"
  return "$rc"
}

running_pid() {
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  # A stale PID file may name a recycled PID: only a kamailio process started with our config counts.
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "kamailio.*$CFG"; then
    echo "$pid"
    return 0
  fi
  # The PID file can be lost while ours runs on (seen: a second start's instance, which could not bind our ports,
  # wrote its own PID there and removed the file as it exited). Ours is then the oldest kamailio started with our
  # config and our PID file; found, it is written back, so stop and restart reach it.
  pid="$(pgrep -o -f -- "kamailio -f $CFG .*-P $PID_FILE" || true)"
  if [[ -n "$pid" ]]; then
    echo "$pid" >"$PID_FILE"
    echo "$pid"
    return 0
  fi
  return 1
}

rpc_ready() {
  local body='{"jsonrpc":"2.0","method":"core.uptime","id":1}'
  if command -v curl >/dev/null 2>&1; then
    curl -s -m 1 -X POST -H 'Content-Type: application/json' --data "$body" "$RPC_URL" 2>/dev/null | grep -q '"uptime"'
  else
    # No curl on a minimal machine: speak HTTP/1.0 over bash's /dev/tcp.
    (
      exec 3<>/dev/tcp/127.0.0.1/$RPC_PORT || exit 1
      printf 'POST /RPC HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body" >&3
      timeout 1 cat <&3 | grep -q '"uptime"'
    ) 2>/dev/null
  fi
}

start() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    return 0
  fi
  install_packages
  # Someone else's Kamailio on our ports would answer the readiness check below while ours fails to bind; say so.
  if rpc_ready; then
    log "JSON-RPC $RPC_URL already answers, but not from a kamailio started here with $CFG: stop that one first"
    return 1
  fi
  mkdir -p "$RUN"
  rm -f "$PID_FILE"
  # Each start loads the list from the repo, so a restart resets every destination to its file flags (as in production).
  cp "$LIST_SRC" "$LIST"
  if ! kamailio -c -f "$CFG" >"$VAR/config-check.log" 2>&1; then
    cat "$VAR/config-check.log" >&2
    log "config check failed: $CFG"
    return 1
  fi
  # -DD: stay in the foreground of this background job so $! is the main process; -E: log to stderr (our log file).
  nohup kamailio -f "$CFG" -DD -E -P "$PID_FILE" >>"$LOG_FILE" 2>&1 </dev/null &
  # Kamailio writes the PID file itself (-P) and refuses to start if the file names a live process.
  local main=$!
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until rpc_ready; do
    if ! kill -0 "$main" 2>/dev/null; then
      tail -n 30 "$LOG_FILE" >&2
      log "kamailio exited during start"
      rm -f "$PID_FILE"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "JSON-RPC not ready after ${START_TIMEOUT_S}s (log: $LOG_FILE)"
      return 1
    fi
    sleep 0.1
  done
  log "started (pid $main), JSON-RPC $RPC_URL"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  kill "$pid"
  # The main process takes its children (workers, timers) down with it.
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 10s, sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Children of the old instance may hold its ports for a moment; wait until they are free for a quick restart.
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$RPC_PORT) 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    if rpc_ready; then
      echo "running (pid $pid), JSON-RPC $RPC_URL"
    else
      echo "running (pid $pid), JSON-RPC not answering"
    fi
    return 0
  fi
  echo "stopped"
  return 3
}

case "${1:-}" in
  install) install_packages ;;
  start) start ;;
  stop) stop ;;
  restart)
    stop
    start
    ;;
  status) status ;;
  *)
    echo "usage: $0 install|start|stop|restart|status" >&2
    exit 2
    ;;
esac
