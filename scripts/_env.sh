# Sourced by the scripts here: make .venv (Python >= 3.11) and install the project into it.
# Idempotent: re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "setting up $VENV (one time) ..." >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,embedded]" >&2
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
# Bytecode for our packages, as pip leaves it for a wheel it installs: an editable install
# is compiled on first import, and at every start where PYTHONDONTWRITEBYTECODE is set
# (about 65 ms of each server start). Only what changed is compiled again.
"$VENV/bin/python" -m compileall -q orchestrator mcp_frontend >/dev/null
export PATH="$VENV/bin:$PATH"
