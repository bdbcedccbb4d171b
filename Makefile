# StreamPulse: `make demo` runs the main job on the local stack; `make test` runs every test.
# Both install what is missing first (venv, pinned Python packages, jars, stack binaries).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SP := $(BIN)/streampulse
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit test-integration lint stack-up stack-down stack-status clean k8s-tools

setup: $(STAMP)
	@start=$$(date +%s); $(SP) jars fetch >&2 && echo "[setup] jars ready in $$(( $$(date +%s) - start ))s" >&2

# Re-install only when the pins or the project metadata change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -c constraints.txt -e ".[dev]" \
		&& echo "[setup] Python packages installed in $$(( $$(date +%s) - start ))s" >&2
	@touch $@

stack-up: setup
	$(SP) stack up

stack-down:
	@test -x $(SP) && $(SP) stack down || true

stack-status:
	$(SP) stack status

demo: stack-up
	$(SP) demo

test: stack-up
	$(BIN)/pytest

test-unit: setup
	$(BIN)/pytest tests/unit

# kustomize and the CRD/Kubernetes schemas deploy/k8s is checked with, pinned, into <cache_dir>/k8s
# (tests/unit/test_k8s_manifests.py fetches them too when they are missing).
k8s-tools: setup
	$(BIN)/python deploy/k8s/tools.py

lint: setup
	$(BIN)/ruff check .

clean: stack-down
	rm -rf .state $(VENV)
