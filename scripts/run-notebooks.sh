#!/usr/bin/env bash
# Executes every notebook under notebooks/ headless with Debian's Jupyter and fails on any cell error.
# Installs what is missing (idempotent). The kernel is Debian's /usr/bin/python3, whatever python3 is first on PATH
# (a pyenv Python would lack pandas and matplotlib).
# Inputs: test/fixtures/replay/ by default; FORESIGHT_TELEMETRY / FORESIGHT_REPORT point the notebooks elsewhere.
set -euo pipefail
source "$(dirname "$0")/services/lib.sh"
cd "$ROOT"

apt_ensure jupyter-nbconvert python3-nbconvert python3-nbclient jupyter-client python3-ipykernel \
  python3-pandas python3-matplotlib

OUT="$ROOT/var/notebooks"
KERNELS="$ROOT/var/jupyter/kernels/foresight-python3"
mkdir -p "$OUT" "$KERNELS"
# A kernel spec of our own pins the interpreter; JUPYTER_PATH makes it visible without touching the system.
cat >"$KERNELS/kernel.json" <<JSON
{"argv": ["/usr/bin/python3", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
 "display_name": "Python 3 (Debian)", "language": "python"}
JSON
export JUPYTER_PATH="$ROOT/var/jupyter"
export MPLBACKEND=Agg
export MPLCONFIGDIR="$ROOT/var/jupyter/mpl"
export FORESIGHT_ROOT="$ROOT"

shopt -s nullglob
notebooks=(notebooks/*.ipynb)
[ ${#notebooks[@]} -gt 0 ] || { log "no notebooks"; exit 0; }
for nb in "${notebooks[@]}"; do
  log "executing $nb"
  /usr/bin/python3 -m nbconvert --to notebook --execute \
    --ExecutePreprocessor.kernel_name=foresight-python3 --ExecutePreprocessor.timeout=300 \
    --output-dir "$OUT" "$nb"
done
log "ok: ${#notebooks[@]} notebooks executed into var/notebooks"
