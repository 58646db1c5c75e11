#!/usr/bin/env bash
# Build js_screenpop.wasm from app.js with jco componentize (npm; exact
# versions in package-lock.json: jco 1.34.0 with componentize-js 0.22.0).
set -euo pipefail
cd "$(dirname "$0")"
[ -x node_modules/.bin/jco ] || npm ci --no-audit --no-fund
npm run --silent build
echo "built examples/js-screenpop/js_screenpop.wasm"
