# Entry points for newcomers: run, test, lint, fake-core, proto, bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## run: serve the gateway on http://localhost:4001 backed by the in-memory runtime
run: $(STAMP)
	MN_RUNTIME=memory $(BIN)/mn-api

## test: install the project with its test extras and run the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff and the layer contracts
lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
