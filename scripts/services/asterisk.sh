#!/usr/bin/env bash
# Real Asterisk 22 nodes on loopback for integration tests, built from the vendored tarballs (no download).
#   scripts/services/asterisk.sh install|start [N]|stop|status
# install: verifies ../shared/vendor with SHA256SUMS, builds Asterisk with its bundled pjproject into
#   $FORESIGHT_CACHE_DIR/asterisk-<hash> (default /var/cache/foresight), outside the checkout so every worktree shares
#   one build; skipped when that folder exists (it appears only after a complete build, by an atomic rename).
# start [N]: N nodes (default 2); ports at SIP_BASE below, dialplan in deploy/asterisk/test/extensions.conf. Files under
#   $FORESIGHT_ASTERISK_HOME/nodeK (default <repo>/var/asterisk, git-ignored), nodes.json lists ports and credentials.
#   Idempotent: a running node is kept.
# stop: every node this checkout started ('core stop now' on its control socket, else its PID file).
# status: exit 0 only when every node of the last start runs and its AMI answers; 3 when none runs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENDOR="${FORESIGHT_VENDOR_DIR:-$REPO/../shared/vendor}"
CACHE="${FORESIGHT_CACHE_DIR:-/var/cache/foresight}"
# Resolved, so that a symlinked home names the same nodes (their command lines hold the real path).
HOME_DIR="$(realpath -m "${FORESIGHT_ASTERISK_HOME:-$REPO/var/asterisk}")"
AST_TARBALL="asterisk-22.10.1.tar.gz"
PJ_TARBALL="pjproject-2.17.tar.bz2"
BUILD_DEPS=(build-essential pkg-config libjansson-dev libedit-dev libxml2-dev uuid-dev libsqlite3-dev libssl-dev
  libsrtp2-dev libcurl4-openssl-dev libncurses-dev)

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # log, apt_ensure, wait_tcp

# The install folder is named after the sources, so new tarballs get a new build next to the old one.
prefix() {
  local key
  key="$(cat "$VENDOR/$AST_TARBALL" "$VENDOR/$PJ_TARBALL" | sha256sum | cut -c1-12)"
  echo "$CACHE/asterisk-$key"
}

install() {
  (cd "$VENDOR" && sha256sum --quiet -c SHA256SUMS) || {
    log "checksum mismatch in $VENDOR"
    return 1
  }
  local final
  final="$(prefix)"
  if [[ -x "$final/sbin/asterisk" ]]; then
    log "already installed: $final"
    return 0
  fi
  apt_ensure "${BUILD_DEPS[@]}"
  mkdir -p "$CACHE"
  # Two checkouts installing at once would build twice and race on the rename: one builds, the other waits. The lock
  # is released when install returns, so that nodes started afterwards do not inherit it.
  exec 9>"$CACHE/.asterisk.lock"
  flock 9
  local rc=0
  locked_install "$final" || rc=$?
  exec 9>&-
  return "$rc"
}

locked_install() {
  local final=$1
  if [[ -x "$final/sbin/asterisk" ]]; then
    log "installed by another run meanwhile: $final"
    return 0
  fi
  local work started
  work="$(mktemp -d "$CACHE/.build-XXXXXX")"
  started=$SECONDS
  local buildlog="$work/build.log"
  log "building Asterisk into $final (log: $buildlog)"
  if ! build "$work" "$final" >"$buildlog" 2>&1; then
    tail -n 40 "$buildlog" >&2
    log "build failed; sources and log kept in $work"
    return 1
  fi
  local took=$((SECONDS - started))
  echo "built in ${took}s on $(nproc) cores, $(date -u +%FT%TZ)" >"$work/stage$final/BUILD_INFO"
  cp "$buildlog" "$work/stage$final/build.log"
  # Same filesystem, so the rename is atomic: the folder exists only once it is complete.
  mv "$work/stage$final" "$final"
  rm -rf "$work"
  log "built and installed in ${took}s: $final"
}

# build WORK FINAL: configure and compile with FINAL as prefix, install into WORK/stage (DESTDIR). A subshell, so the
# cd and export stay here; steps are chained with && because errexit does not apply under `if ! build`.
build() (
  local work=$1 final=$2
  tar -xzf "$VENDOR/$AST_TARBALL" -C "$work" &&
    # The bundled pjproject build takes its tarball from here after checking the md5 Asterisk ships: no download.
    mkdir -p "$work/externals" &&
    cp "$VENDOR/$PJ_TARBALL" "$work/externals/" &&
    export EXTERNALS_CACHE_DIR="$work/externals" &&
    cd "$work/asterisk-22.10.1" &&
    # res_stir_shaken needs libjwt >= 1.15, newer than Debian's.
    nice -n 10 ./configure --prefix="$final" --with-pjproject-bundled --without-libjwt &&
    nice -n 10 make menuselect.makeopts &&
    # Sounds and music on hold would be downloaded at install time; the lab nodes play nothing.
    menuselect/menuselect --disable-category MENUSELECT_CORE_SOUNDS --disable-category MENUSELECT_MOH \
      --disable-category MENUSELECT_EXTRA_SOUNDS --disable res_stir_shaken menuselect.makeopts &&
    # The bundled pjproject's parallel build now and then fails one library (seen: libpjmedia-codec) on a busy
    # machine; a serial pass over the same tree finishes it.
    { nice -n 10 make -j"$(nproc)" ||
      { echo "[asterisk] parallel build failed; finishing it serially" >&2 && nice -n 10 make; }; } &&
    nice -n 10 make install DESTDIR="$work/stage"
)

# Ports of node K (1-based): SIP udp 127.0.0.1:(SIP_BASE+K), AMI 127.0.0.1:(AMI_BASE+K), RTP a 100-port range per
# node. 5060/5080/5081 are Kamailio's and 5071-5074 the sipp backends' (test/integration), hence 5260+K for SIP.
SIP_BASE="${FORESIGHT_ASTERISK_SIP_BASE:-5260}"
AMI_BASE="${FORESIGHT_ASTERISK_AMI_BASE:-5038}"
RTP_BASE="${FORESIGHT_ASTERISK_RTP_BASE:-31000}"
AMI_USER=foresight
AMI_SECRET="${FORESIGHT_ASTERISK_AMI_SECRET:-foresight-lab}"
TEMPLATES="$REPO/deploy/asterisk/test"
START_TIMEOUT_S="${FORESIGHT_ASTERISK_START_TIMEOUT_S:-30}"

node_dirs() { compgen -G "$HOME_DIR/node*" | sort -V || true; }

# Prints the PID of node DIR's Asterisk if it runs; a recycled PID must be an asterisk run with this node's config.
node_pid() {
  local dir=$1 pid
  pid="$(cat "$dir/run/asterisk.pid" 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "asterisk.*-C $dir/etc/asterisk.conf" &&
    echo "$pid"
}

# AMI answers with its banner once the manager is up (it is among the last things to load).
ami_ready() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    timeout 2 head -n 1 <&3 | grep -q '^Asterisk Call Manager/'
  ) 2>/dev/null
}

write_config() {
  local k=$1 dir=$2 prefix=$3
  mkdir -p "$dir"/{etc,run,spool,log,lib,db,cache}
  local f
  for f in "$TEMPLATES"/*.conf; do
    sed -e "s|@HOME@|$dir|g" -e "s|@PREFIX@|$prefix|g" -e "s|@NODE@|ast$k|g" \
      -e "s|@SIP_PORT@|$((SIP_BASE + k))|g" -e "s|@AMI_PORT@|$((AMI_BASE + k))|g" -e "s|@AMI_SECRET@|$AMI_SECRET|g" \
      -e "s|@RTP_START@|$((RTP_BASE + (k - 1) * 100))|g" -e "s|@RTP_END@|$((RTP_BASE + (k - 1) * 100 + 99))|g" \
      "$f" >"$dir/etc/$(basename "$f")"
  done
}

start_node() {
  local k=$1 prefix=$2
  local dir="$HOME_DIR/node$k" ami=$((AMI_BASE + k)) sip=$((SIP_BASE + k)) pid
  if pid="$(node_pid "$dir")"; then
    log "ast$k already running (pid $pid)"
    return 0
  fi
  # Someone else's service on our ports would make the node half-start; say so instead.
  if wait_tcp 127.0.0.1 "$ami" 0; then
    log "ast$k: tcp 127.0.0.1:$ami is taken by another process"
    return 1
  fi
  write_config "$k" "$dir" "$prefix"
  rm -f "$dir/run/asterisk.pid" "$dir/run/asterisk.ctl"
  # -f: stay in the foreground of this background job (Asterisk writes run/asterisk.pid itself; `core restart`
  # re-executes in place, so the PID stays). setsid: the node outlives the shell or test that started it.
  setsid nohup "$prefix/sbin/asterisk" -C "$dir/etc/asterisk.conf" -f -n >>"$dir/log/console.log" 2>&1 </dev/null &
  local launched=$!
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until ami_ready "$ami"; do
    if ! kill -0 "$launched" 2>/dev/null; then
      tail -n 30 "$dir/log/console.log" "$dir/log/messages.log" >&2 2>/dev/null || true
      log "ast$k exited during start"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "ast$k: AMI 127.0.0.1:$ami not answering after ${START_TIMEOUT_S}s (log: $dir/log)"
      return 1
    fi
    sleep 0.2
  done
  log "ast$k started (pid $launched): SIP udp 127.0.0.1:$sip, AMI 127.0.0.1:$ami"
}

start() {
  local n=${1:-2}
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || {
    log "start: N must be a positive integer, got '$n'"
    return 2
  }
  install
  local prefix
  prefix="$(prefix)"
  mkdir -p "$HOME_DIR"
  for k in $(seq 1 "$n"); do start_node "$k" "$prefix"; done
  write_nodes_json "$n"
}

# var/asterisk/nodes.json: what tests and operators need to reach the nodes (ids, ports, AMI credentials).
write_nodes_json() {
  local n=$1 k sep="" out="["
  for k in $(seq 1 "$n"); do
    out+="$sep{\"id\":\"ast$k\",\"sipPort\":$((SIP_BASE + k)),\"amiPort\":$((AMI_BASE + k)),"
    out+="\"amiUser\":\"$AMI_USER\",\"amiSecret\":\"$AMI_SECRET\",\"home\":\"$HOME_DIR/node$k\"}"
    sep=","
  done
  echo "$out]" >"$HOME_DIR/nodes.json"
}

stop_node() {
  local dir=$1 name pid
  name="ast${dir##*/node}"
  if ! pid="$(node_pid "$dir")"; then
    rm -f "$dir/run/asterisk.pid"
    return 0
  fi
  # The control socket is the clean way (modules unload, AMI says Shutdown); the PID file is the fallback.
  # Without a control socket -rx fails at once, and there is nothing to wait for.
  if [[ -S "$dir/run/asterisk.ctl" ]] &&
    timeout 10 "$(dirname "$(readlink -f "/proc/$pid/exe")")/asterisk" -C "$dir/etc/asterisk.conf" \
      -rx 'core stop now' >/dev/null 2>&1; then
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) still up (no control socket, or 'core stop now' did not end it); SIGTERM"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/run/asterisk.pid"
  log "$name stopped (pid $pid)"
}

stop() {
  local dir
  for dir in $(node_dirs); do stop_node "$dir"; done
}

# Every node of the last start must run and answer on AMI; exit 3 when none was started or none runs.
status() {
  local n k pid running=0 bad=0
  n="$(grep -o '"id"' "$HOME_DIR/nodes.json" 2>/dev/null | wc -l)"
  for ((k = 1; k <= n; k++)); do
    if ! pid="$(node_pid "$HOME_DIR/node$k")"; then
      echo "ast$k not running"
      bad=1
    elif ami_ready $((AMI_BASE + k)); then
      echo "ast$k running (pid $pid), AMI 127.0.0.1:$((AMI_BASE + k)), SIP udp 127.0.0.1:$((SIP_BASE + k))"
      running=1
    else
      echo "ast$k running (pid $pid), AMI 127.0.0.1:$((AMI_BASE + k)) not answering"
      running=1
      bad=1
    fi
  done
  if ((running == 0)); then
    echo "stopped"
    return 3
  fi
  return "$bad"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-2}" ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 install|start [N]|stop|status" >&2
    exit 2
    ;;
esac
