#!/usr/bin/env bash
# Build python_router.wasm from app.py with componentize-py (PyPI, pinned in
# requirements.txt). The tool goes into a virtualenv: $CTIHOST_PY_VENV, by
# default target/py-venv at the repository's root.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${CTIHOST_PY_VENV:-../../target/py-venv}
if [ ! -x "$VENV/bin/componentize-py" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r requirements.txt
fi
"$VENV/bin/componentize-py" -d ../../wit -w router componentize app -o python_router.wasm
echo "built examples/python-router/python_router.wasm"
