#!/usr/bin/env bash
# Builds {{file}} from app.js with jco componentize (npm; versions pinned in
# package.json: jco 1.35.0's CLI was seen broken).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@bytecodealliance/jco ] || npm install --no-audit --no-fund
npm run --silent build
echo "built {{file}}"
