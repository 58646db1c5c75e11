#!/usr/bin/env bash
# Installs the system tools the tests (and, with --bench, the benchmarks) drive,
# each missing one on its own, so one package apt cannot take never blocks the
# others, and never one that conflicts with what the machine already has: the
# Debian image ships Node.js from NodeSource with npm bundled, and Debian's own
# `npm` conflicts with that `nodejs`.
#
#   tests/install-deps.sh              install what the tests need and is missing
#   tests/install-deps.sh --bench      the same, plus the benchmarks' peers
#   tests/install-deps.sh --simulate   ask apt to simulate the whole list this
#                                      script could ever ask for on this machine
#                                      (apt-get install -s), installing nothing
#
# Every tool is named by the command it provides and the Debian package that
# provides it. A tool already on PATH is left alone.
set -euo pipefail

mode=install
bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --simulate) mode=simulate ;;
    *) echo "usage: $0 [--bench] [--simulate]" >&2; exit 2 ;;
  esac
done

# command  package  (what for)
tools=(
  "sipp sip-tester"              # SIP peers of the tests (callers, phones)
  "baresip baresip-core"         # a real softphone
  "chromium chromium"            # the desktop and wallboard browser test
  "chromedriver chromium-driver" # WebDriver for it
  "kamailio kamailio"            # record-routing proxy of a test; SIP benchmark peer
  "openssl openssl"              # bank CAs and certificates (CRM, HTTPS, SIP TLS) in tests
  "tshark tshark"                # the capture proving SIP over TLS leaves nothing in clear
)
bench_tools=(
  "rtpengine rtpengine-daemon"   # media benchmark peer
)

have_venv() { python3 -c 'import venv, ensurepip' 2>/dev/null; }
installed_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# The list this machine could ever need, whatever is installed now.
all=()
for t in "${tools[@]}" "${bench_tools[@]}"; do all+=("${t#* }"); done
all+=(python3-venv)
# Node.js and npm come from the image. Only a machine with no Node.js at all
# would get Debian's pair (nothing is there for them to conflict with).
if ! command -v node >/dev/null && ! installed_pkg nodejs; then
  all+=(nodejs npm)
fi

if [ "$mode" = simulate ]; then
  # A machine that never ran apt-get update knows no package at all.
  if ! compgen -G '/var/lib/apt/lists/*Packages' >/dev/null; then
    apt-get update -qq
  fi
  echo "install-deps: simulating: apt-get install -s ${all[*]}"
  # -s resolves the whole list together: a conflict with an installed package
  # (Debian's npm against NodeSource's nodejs) fails here even where every
  # tool is already present.
  DEBIAN_FRONTEND=noninteractive apt-get install -s -y "${all[@]}" >/tmp/install-deps-simulate.log 2>&1 || {
    cat /tmp/install-deps-simulate.log >&2
    echo "install-deps: apt cannot install the list together (see above)" >&2
    exit 1
  }
  echo "install-deps: the list installs together"
  exit 0
fi

missing=()
for t in "${tools[@]}"; do
  command -v "${t%% *}" >/dev/null || missing+=("$t")
done
if [ "$bench" = 1 ]; then
  for t in "${bench_tools[@]}"; do
    command -v "${t%% *}" >/dev/null || missing+=("$t")
  done
fi
have_venv || missing+=("python3-venv python3-venv")
if ! command -v npm >/dev/null; then
  if command -v node >/dev/null || installed_pkg nodejs; then
    echo "install-deps: node is installed without npm; Debian's npm conflicts with a NodeSource nodejs." >&2
    echo "install-deps: reinstall Node.js with npm bundled (NodeSource), or remove nodejs and run this again." >&2
    exit 1
  fi
  missing+=("node nodejs" "npm npm")
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every tool is present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing: ${missing[*]}; run as root (or install those Debian packages)" >&2
  exit 1
fi
apt-get update -qq
failed=()
for t in "${missing[@]}"; do
  cmd=${t%% *} pkg=${t#* }
  echo "install-deps: installing $pkg (for $cmd)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/tmp/install-deps-"$pkg".log 2>&1; then
    tail -20 /tmp/install-deps-"$pkg".log >&2
    failed+=("$pkg")
  fi
done
# What was asked for must now work.
for t in "${missing[@]}"; do
  cmd=${t%% *} pkg=${t#* }
  if [ "$cmd" = python3-venv ]; then have_venv || failed+=("$pkg (python3 -m venv)"); continue; fi
  command -v "$cmd" >/dev/null || failed+=("$pkg (no $cmd on PATH)")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "install-deps: could not install: ${failed[*]}" >&2
  exit 1
fi
echo "install-deps: done"
