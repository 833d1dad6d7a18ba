# Two commands on a fresh machine: `make run` and `make test` (see README.md).
# Every target does its own set-up and is idempotent.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv services-up services-down browser run test lint typecheck unit integration \
        schemas bench bench-client bench-sync bench-pusher bench-lag bench-api bench-token-kills bench-quota bench-tracing \
        chaos clean alerts-test

help:
	@echo "make run            the whole system with demo data (Ctrl-C stops it)"
	@echo "make test           lint, type checks, unit and integration tests"
	@echo "make services-up    start Kafka and PostgreSQL (writes .run/services.env)"
	@echo "make services-down  stop them"
	@echo "make browser        install Debian's chromium for the page's tests (when missing)"
	@echo "make bench          every benchmark (see bench/README.md)"
	@echo "make chaos          ten minutes of faults, the history checked (bench/chaos.py)"
	@echo "make bench-token-kills  refreshers SIGKILLed mid-refresh: how often it costs the connection"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

services-up:
	@deploy/local/services.sh up

services-down:
	@deploy/local/services.sh down

# Debian's chromium for the console's end-to-end tests (Playwright never downloads one).
browser:
	@deploy/local/browser.sh >/dev/null

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

schemas: venv
	$(BIN)/python -m schemas

unit: venv
	$(BIN)/pytest tests/unit

integration: venv services-up browser
	$(BIN)/pytest tests/integration

# promtool from Debian's prometheus package, unpacked into the cache (no daemon installed).
alerts-test:
	@promtool="$$(deploy/local/promtool.sh)" && cd deploy/prometheus \
	  && "$$promtool" check rules alerts.yml \
	  && "$$promtool" test rules alerts_test.yml alerts_metered_test.yml

test: venv services-up browser lint typecheck alerts-test
	$(BIN)/pytest

run: venv
	@deploy/local/run.sh

bench: bench-client bench-sync bench-pusher bench-lag

bench-client: venv
	$(BIN)/python -m bench.client_bench

chaos: venv services-up
	$(BIN)/python -m bench.chaos

bench-token-kills: venv services-up
	$(BIN)/python -m bench.token_kills

bench-lag: venv services-up
	$(BIN)/python -m bench.lag_bench

bench-pusher: venv services-up
	$(BIN)/python -m bench.pusher_bench $(PUSHER_BENCH_ARGS)

# One realm's quota spent by four processes at once (issue 15; bench/quota_bench.py).
bench-quota: venv services-up
	$(BIN)/python -m bench.quota_bench

bench-sync: venv services-up
	$(BIN)/python -m bench.sync_bench

# What a span costs, tracing off and on (seconds; bench/tracing_cost.py).
bench-tracing: venv
	$(BIN)/python -m bench.tracing_cost

bench-api: venv services-up
	$(BIN)/python -m bench.api_bench

clean: services-down
	rm -rf .run $(VENV)
