#!/usr/bin/env bash
# Builds {{file}} from app.py with componentize-py (PyPI, pinned in
# requirements.txt; installed into .venv when not on PATH).
set -euo pipefail
cd "$(dirname "$0")"
PY=${COMPONENTIZE_PY:-}
if [ -z "$PY" ]; then
  if command -v componentize-py >/dev/null; then
    PY=componentize-py
  else
    [ -x .venv/bin/componentize-py ] || { python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt; }
    PY=.venv/bin/componentize-py
  fi
fi
"$PY" -d wit -w {{world}} componentize app -o {{file}}
echo "built {{file}}"
