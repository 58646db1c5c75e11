#!/usr/bin/env bash
# Builds {{file}} from app.js with componentize-qjs (QuickJS; npm, version
# pinned in package.json). `--sync` because the host runs plugins without the
# component model's async ABI. QuickJS rather than jco's StarlingMonkey: a
# 1.6 MB component that compiles in ~2 s and decides in ~20 us on a warm
# instance (StarlingMonkey: 12 MB, ~12 s, ~270 us); see docs/plugins.md.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/componentize-qjs ] || npm install --no-audit --no-fund
npm run --silent build
echo "built {{file}}"
