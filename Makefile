# Trade2026 — developer entry points. A fresh machine needs: `make up`, then `make test`.
# Local mode runs every program as a process under supervisord (python -m mesh); see mesh/.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
# `make logs NAME=oms`
NAME ?=
# Test tiers, run in this order by one pytest invocation.
TEST_TIERS ?= tests/unit tests/policy tests/integration tests/contract tests/e2e
PYTEST_ARGS ?=

.PHONY: deps install up down status logs gen lint test bench

## deps: the virtualenv with the project installed editable (skipped while the stamp is newer than pyproject.toml)
deps: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(VPY) ]; then \
	  $(PYTHON) -m venv $(VENV) || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "python3 -m venv failed: installing python3-venv"; rm -rf $(VENV); \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv \
	        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; } \
	        && $(PYTHON) -m venv $(VENV); \
	    else echo "python3 -m venv failed: install the python3-venv package" >&2; exit 1; fi; }; \
	fi
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## install: every binary of the local mesh (envoy, nats, valkey, questdb, opa, grpcurl) into ignored caches
install: deps
	$(VPY) -m mesh install

## up: install what is missing, then start the whole mesh in dependency order with readiness checks
up: deps
	$(VPY) -m mesh up

## down: stop every program and supervisord; fails if a port of mesh/ports.toml is still in use
down:
	@if [ -x $(VPY) ]; then $(VPY) -m mesh down; else echo "no virtualenv: nothing is running"; fi

status: deps
	$(VPY) -m mesh status

logs: deps
	$(VPY) -m mesh logs $(NAME)

## gen: generated code (gen/) from proto/
gen: deps
	bash tools/gen.sh
	$(VPY) -m mesh.edge render --compose --out mesh/edge/envoy.compose.yaml

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services mesh bench tests
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format --diff --exit-code

## test: lint, bring the mesh up, then every test tier in one pytest run (unit, policy, integration, contract, e2e)
test: deps lint
	$(VPY) -m mesh up
	$(VPY) -m pytest -q $(PYTEST_ARGS) $(TEST_TIERS)

## bench: benchmarks against the running mesh (tables on stdout, JSON in bench/results/)
bench: up
	$(VPY) -m bench.edge_overhead
	$(VPY) -m bench.matching_engine
	$(VPY) -m bench.sink_ticks
	$(VPY) -m bench.marketdata_fanout
	$(VPY) -m bench.order_entry
