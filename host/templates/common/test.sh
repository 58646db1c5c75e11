#!/usr/bin/env bash
# The plugin's own test: run its hook on sample-input.json in the real sandbox
# (`ctihost plugin invoke`, the same limits as the host) and check the answer.
set -euo pipefail
cd "$(dirname "$0")"
# The ctihost binary: $CTIHOST, else the one that created this project,
# else ctihost on PATH.
CTIHOST=${CTIHOST:-}
if [ -z "$CTIHOST" ]; then
  if [ -x '{{ctihost}}' ]; then CTIHOST='{{ctihost}}'
  elif command -v ctihost >/dev/null; then CTIHOST=ctihost
  else
    echo "test.sh: no ctihost binary found: set CTIHOST=/path/to/ctihost (make run builds target/release/ctihost)" >&2
    exit 2
  fi
fi
expect='{{expect}}'
out=$("$CTIHOST" plugin invoke --hook {{hook}} --input sample-input.json plugin.toml)
echo "$out"
grep -q '"outcome": "ok"' <<<"$out" || { echo "FAIL: the hook failed" >&2; exit 1; }
grep -qF "$expect" <<<"$out" || { echo "FAIL: expected $expect in the answer" >&2; exit 1; }
echo "PASS: {{name}} ({{hook}})"
