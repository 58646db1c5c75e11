# The two commands of the README: `make run` and `make test`.
.PHONY: run test deps test-deps lint bench fuzz soak

# The stock plugins are built for wasm32-wasip2 by host/build.rs.
deps:
	rustup target add wasm32-wasip2

# The SIP tests drive SIPp (Debian's sip-tester) and baresip (a real
# softphone); the plugin-language tests build Python and JavaScript components
# (componentize-py from PyPI into target/py-venv, jco and componentize-qjs
# from npm as locked in examples/js-screenpop); the desktop test drives Debian's
# Chromium through chromedriver. tests/install-deps.sh installs each missing
# tool on its own (root), never Debian's nodejs/npm over the image's Node.js.
test-deps: deps
	bash tests/install-deps.sh

run: deps
	cargo run --release -p ctihost -- run

lint: test-deps
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cd plugins && cargo fmt --all -- --check
	cd host/fuzz && cargo fmt -- --check
	cd plugins && cargo clippy --workspace --release --target wasm32-wasip2 --target-dir ../target/wasm -- -D warnings

test: lint
	cargo test --workspace

# The SIP benchmark compares with Kamailio, the media benchmark with
# rtpengine, when they can be installed.
bench: deps
	bash tests/install-deps.sh --bench
	cargo bench -p ctihost --bench plugins --bench sip --bench screenpop --bench media --bench store

# One hour at half the measured maximum, with reloads, refused REGISTERs and
# idle TCP around the calls (SOAK_SECS, SOAK_RATE).
SOAK_SECS ?= 3600
SOAK_RATE ?= 1100
soak: deps
	bash tests/install-deps.sh --bench
	CTIHOST_SOAK_SECS=$(SOAK_SECS) CTIHOST_SOAK_RATE=$(SOAK_RATE) cargo bench -p ctihost --bench soak

# Each cargo-fuzz target for FUZZ_SECS seconds (host/fuzz/FUZZING.md).
FUZZ_SECS ?= 30
fuzz: deps
	bash host/fuzz/run.sh $(FUZZ_SECS)
