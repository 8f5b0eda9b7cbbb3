# Trade2026 — developer entry points. A fresh machine needs: `make up`, then `make test`.
# Local mode runs every program as a process under supervisord (python -m mesh); see mesh/.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
# `make logs NAME=oms`
NAME ?=
# Test tiers, run in this order; a tier without tests (pytest exit code 5) is not a failure.
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

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services mesh

## test: bring the mesh up, then every test tier in order (stops at the first failing tier)
test: deps
	$(VPY) -m mesh up
	@for tier in $(TEST_TIERS); do \
	  [ -d $$tier ] || continue; \
	  echo "== $$tier"; \
	  $(VPY) -m pytest -q $(PYTEST_ARGS) $$tier; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "   (no tests)"; elif [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

## bench: load benchmarks against the running mesh
bench: up
	@if [ -f bench/__main__.py ]; then $(VPY) -m bench; else echo "no benchmarks yet (bench/__main__.py)"; fi
