# Shortcuts for working on parlor. Everything here is plain cargo (or docker) underneath.
.PHONY: build run test lint deny fmt bench bench-quick migrate seed services ci docker-build compose-up compose-observability compose-down

build:
	cargo build --release

run:
	cargo run --release -- serve

test:
	cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Licenses and banned crates (deny.toml); `cargo install cargo-deny --locked` once.
deny:
	cargo deny check --hide-inclusion-graph licenses bans

fmt:
	cargo fmt --all

# The criterion benchmarks of the hot functions (frame parse, event serialisation, fan-out,
# review, store append); docs/performance.md has the load benchmarks of parlor-bench.
bench:
	cargo bench --workspace

# Every benchmark run once, as CI does.
bench-quick:
	cargo test --workspace --benches

migrate:
	cargo run --release -- migrate

# A demo: six users (password parlor-demo), rooms and history.
seed:
	cargo run --release -- seed

# Starts (or installs) PostgreSQL, Redis, RabbitMQ and the SMTP sink the tests use.
services:
	bash .ci/services.sh

ci:
	bash .ci/run

docker-build:
	docker build -t parlor:local .

compose-up:
	docker compose up -d --build

compose-observability:
	docker compose --profile observability up -d --build

compose-down:
	docker compose --profile observability down
