# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.biofed-installed
PATIENTS ?= 500
SEED ?= 7
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo dev test lint bench snapshot clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/biofed demo --patients $(PATIENTS) --seed $(SEED) --landing landing --lake lake

dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check connectors quality mcp_catalog pipelines tests benchmarks

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/lint-imports
	$(BIN)/ruff check connectors quality mcp_catalog pipelines tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@set -e; for b in $(wildcard benchmarks/*.py); do echo "== $$b"; $(BIN)/python $$b; done

snapshot: $(STAMP)
	$(BIN)/biofed catalog snapshot

clean:
	rm -rf lake landing .dagster_home
