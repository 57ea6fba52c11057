# gridcase — the two commands: `make run` (everything in one process) and `make test` (every tier).
#
#   make setup [INSTALLER=uv|pip]
#                           .venv with the project and its dev tools (re-installs when pyproject.toml changes):
#                           uv (installed by pip inside .venv) installs in seconds; pip when uv is unavailable
#   make run  [ARGS=...]    gridcase up, embedded: SQLite + in-process bus, http://127.0.0.1:8000
#                           (GRIDCASE_PORT, GRIDCASE_DATA_DIR, GRIDCASE_TIME_SCALE from the environment)
#   make test [PYTEST_ARGS=...] [TESTS=tests/unit]
#                           pytest, every tier (unit, integration, e2e, faults, browser); starts a throwaway
#                           RabbitMQ and PostgreSQL on free loopback ports when they are installed and
#                           GRIDCASE_TEST_BROKER_URL / _POSTGRES_URL are not given; the browser tier drives
#                           Debian's /usr/bin/chromium with Playwright (never `playwright install`)
#   make test-cluster [PYTEST_ARGS=...]
#                           the cluster tier (tests/cluster): starts a 3-node RabbitMQ cluster and a PostgreSQL
#                           primary + standby with automatic failover (deploy/local/cluster.sh) and kills nodes
#                           under load, an API replica behind nginx (Debian's, with deploy/nginx.conf) mid-request
#                           and a scheduler mid-tick; `make test` skips it
#   make bench [ARGS=...]   benchmarks (ratios against raw baselines measured in the same run)
#   make lint               ruff
#   make vendor             the pages' browser assets from npm at pinned versions (deploy/vendor-assets.sh)
#   make migration SERVICE=escalation MESSAGE="what changed"
#                           a new migration, generated from the store's tables (services/<service>/store.py)
#   make clean              caches and build output; `make distclean` also removes .venv

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BYTECODE := $(VENV)/.bytecode
PIP := $(BIN)/python -m pip --disable-pip-version-check
PIP_QUIET ?= -q
INSTALLER ?= uv
ARGS ?=
PYTEST_ARGS ?=
TESTS ?= tests
WITH_SERVERS := deploy/local/with-servers.sh

export PIP_PROGRESS_BAR := off
# uv uses the python3 of the venv, never a Python it downloads itself.
export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := help
.PHONY: help setup run test test-cluster bench lint vendor migration clean distclean

help:
	@awk '/^#/ { sub(/^# ?/, ""); print; next } { exit }' Makefile

setup: $(STAMP)

$(BIN)/python:
	@echo "setup: creating $(VENV) ($$($(PYTHON) --version))"
	@$(PYTHON) -m venv $(VENV)

# The stamp is newer than pyproject.toml once the install succeeded; a failed install leaves no stamp.
# uv (from the package registry, installed by pip inside the venv) resolves and installs every package
# in a few seconds where pip takes a minute and a half; when it cannot be installed or fails (no wheel
# for this machine, a registry only pip's own configuration reaches), pip does the same install.
$(STAMP): pyproject.toml | $(BIN)/python
	@start=$$SECONDS; \
	if [[ "$(INSTALLER)" == uv ]]; then \
		echo "setup: installing uv into $(VENV) with pip"; \
		if $(PIP) install $(PIP_QUIET) uv; then \
			echo "setup: installing gridcase and its packages with uv"; \
			$(BIN)/uv pip install --python $(BIN)/python -e '.[dev]' && installed=uv \
				|| echo "setup: uv failed; falling back to pip"; \
		else \
			echo "setup: uv is unavailable; falling back to pip"; \
		fi; \
	fi; \
	if [[ -z "$$installed" ]]; then \
		echo "setup: installing gridcase and its packages with pip (a minute or two; a line per package)"; \
		$(PIP) install $(PIP_QUIET) --upgrade pip && $(PIP) install -e '.[dev]' && installed=pip; \
	fi; \
	[[ -n "$$installed" ]] && touch $@ && echo "setup: done with $$installed in $$((SECONDS - start)) s"

# Bytecode of every installed package, written once for the tests and benchmarks: where Python may not
# write it at import (PYTHONDONTWRITEBYTECODE=1, as on this project's CI machine), each of the hundreds of
# processes the tests start compiles every module it imports again (about a quarter of a production e2e
# module's time; benchmarks/RESULTS.md). `make run` does not wait for it, so a first start stays short.
# A file a package ships that does not compile (an example, another Python's) is left as it is.
$(BYTECODE): $(STAMP)
	@echo "setup: writing the installed packages' bytecode for the tests"
	@$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
	@touch $@

# gridcase's own modules, before each test run (only those changed since are compiled again)
OWN_BYTECODE = $(BIN)/python -m compileall -q -j 0 services shared gridcase harness benchmarks >/dev/null || true

run: setup
	@echo "run: starting gridcase up"
	$(BIN)/gridcase up $(if $(GRIDCASE_PORT),--port $(GRIDCASE_PORT)) $(ARGS)

test: setup $(BYTECODE)
	@$(OWN_BYTECODE)
	$(WITH_SERVERS) $(BIN)/pytest -q $(PYTEST_ARGS) $(TESTS)

test-cluster: setup $(BYTECODE)
	@$(OWN_BYTECODE)
	GRIDCASE_TEST_CLUSTER=1 $(BIN)/pytest -q $(PYTEST_ARGS) tests/cluster

bench: setup $(BYTECODE)
	@$(OWN_BYTECODE)
	$(WITH_SERVERS) $(BIN)/python -m benchmarks $(ARGS)

lint: setup
	$(BIN)/ruff check .

vendor:
	deploy/vendor-assets.sh

migration: setup
	$(BIN)/python -m shared.migrations $(SERVICE) "$(MESSAGE)"

clean:
	rm -rf build dist .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 \
		| xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
