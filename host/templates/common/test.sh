#!/usr/bin/env bash
# The plugin's own test: run its hook on sample-input.json in the real sandbox
# (`ctihost plugin invoke`, the same limits as the host) and check the answer.
set -euo pipefail
cd "$(dirname "$0")"
CTIHOST=${CTIHOST:-ctihost}
expect='{{expect}}'
out=$("$CTIHOST" plugin invoke --hook {{hook}} --input sample-input.json plugin.toml)
echo "$out"
grep -q '"outcome": "ok"' <<<"$out" || { echo "FAIL: the hook failed" >&2; exit 1; }
grep -qF "$expect" <<<"$out" || { echo "FAIL: expected $expect in the answer" >&2; exit 1; }
echo "PASS: {{name}} ({{hook}})"
