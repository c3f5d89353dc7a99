#!/usr/bin/env bash
# `npm test`: lint, types, then every test — unit, real-service integration and browser — with the real services
# installed and started by the project's own scripts. Services this run started are stopped again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=(databases victoria-metrics chromium node-exporter kamailio kafka asterisk)

started=()
cleanup() {
  for svc in "${started[@]}"; do bash "scripts/services/$svc.sh" stop >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# Which Node ran this, and whether it is in the range package.json supports (README "Supported Node").
echo "== node $(node --version) (npm $(npm --version)); supported: $(node -p 'require("./package.json").engines.node')"
node -e '
  const want = require("./package.json").engines.node.match(/^>=(\d+)\.(\d+)/);
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (!want || maj < +want[1] || (maj === +want[1] && min < +want[2])) {
    console.error(`node ${process.version} is outside the supported range`);
    process.exit(1);
  }
'

echo "== lint and types"
npx biome check .
npx tsc --noEmit

echo "== services"
for svc in "${SERVICES[@]}"; do
  script="scripts/services/$svc.sh"
  [ -f "$script" ] || continue
  if bash "$script" status >/dev/null 2>&1; then
    echo "$svc: already running"
  else
    bash "$script" start
    started+=("$svc")
    echo "$svc: started"
  fi
done

echo "== tests"
mkdir -p var
status=0
npx vitest run --reporter=default --reporter=json --outputFile=var/vitest-report.json "$@" || status=$?
# One plain closing line that any CI reader understands.
node -e '
  const r = JSON.parse(require("fs").readFileSync("var/vitest-report.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' || true
[ "$status" -eq 0 ] || exit "$status"

if [ -f scripts/run-notebooks.sh ]; then
  echo "== notebooks"
  bash scripts/run-notebooks.sh
fi
