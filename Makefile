# Shortcuts for working on parlor. Everything here is plain cargo underneath.
.PHONY: build run test lint fmt bench migrate services ci

build:
	cargo build --release

run:
	cargo run --release -- serve

test:
	cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

bench:
	cargo bench -p parlor-moderation --bench review

migrate:
	cargo run --release -- migrate

# Starts (or installs) PostgreSQL, Redis, RabbitMQ and the SMTP sink the tests use.
services:
	bash .ci/services.sh

ci:
	bash .ci/run
