# The two commands of the README: `make run` and `make test`.
.PHONY: run test deps lint bench

# The stock plugins are built for wasm32-wasip2 by host/build.rs; the SIP
# tests drive SIPp (Debian's sip-tester), installed here when missing (root).
deps:
	rustup target add wasm32-wasip2
	command -v sipp >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y sip-tester; }

run: deps
	cargo run --release -p ctihost -- run

lint: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cd plugins && cargo fmt --all -- --check
	cd plugins && cargo clippy --workspace --release --target wasm32-wasip2 --target-dir ../target/wasm -- -D warnings

test: lint
	cargo test --workspace

bench: deps
	cargo bench -p ctihost --bench plugins
