#!/usr/bin/env bash
# Debian's Chromium for the dashboard tests (playwright-core drives it; no browser download).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
case "${1:-start}" in
  start|install) apt_ensure chromium fonts-dejavu-core ;;
  stop) ;;
  status) command -v chromium ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
