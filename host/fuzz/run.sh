#!/usr/bin/env bash
# Run every fuzz target (or the ones named) for SECONDS each, two at a time
# (the machine has two cores), on the seed corpus (seeds/, in git) plus what
# earlier runs found (corpus/, not in git). A crash or failed assertion
# stops the run with the reproducer in host/fuzz/artifacts/<target>/.
#
# The pinned toolchain is stable (no nightly can be fetched on every
# machine): RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# Usage: host/fuzz/run.sh [SECONDS] [TARGET...]     (see FUZZING.md)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true
if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz (crates.io, --locked)"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
# One build for all targets, without AddressSanitizer: the host is safe
# Rust (panics and failed assertions are what the targets look for), and
# the build and the runs are several times faster.
cargo fuzz build -s none -O
mkdir -p logs
run_one() {
    t=$1
    mkdir -p "corpus/$t"
    cargo fuzz run -s none -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$t.log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log")
    # libFuzzer's last status line: edges covered (cov) and features (ft).
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "logs/$t.log" | tail -1)
    units=$(grep -c . <(ls "corpus/$t") || true)
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "FAIL $t: see host/fuzz/logs/$t.log, reproducer in host/fuzz/artifacts/$t/"
        grep -A4 "panicked" "logs/$t.log" | head -8
    else
        echo "ok   $t: ${execs:-?} executions in ${secs} s, corpus $units inputs, ${cov:-cov: ?}"
    fi
}
export -f run_one
export secs
# FUZZ_JOBS targets at a time (2: the machine's cores).
printf '%s\n' "${targets[@]}" | xargs -P "${FUZZ_JOBS:-2}" -I{} bash -c 'run_one {}' | tee logs/summary.txt
! grep -q '^FAIL' logs/summary.txt
