# Entry points for newcomers: run, test, lint, fake-core, proto, bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fake-core proto bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## run: serve the gateway on http://localhost:4001 backed by the in-memory runtime
run: $(STAMP)
	MN_RUNTIME=memory $(BIN)/mn-api

# Services the tests start themselves (on free loopback ports); installed when missing.
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium

## test: install the project with its test extras and run the whole suite
test: $(STAMP)
	@tools/ensure-packages.sh $(SYSTEM_PACKAGES)
	$(BIN)/python -m pytest

## fake-core: serve the in-memory runtime over the core's gRPC protocol on 127.0.0.1:50051
fake-core: $(STAMP)
	$(BIN)/mn-fake-core $(FAKE_CORE_ARGS)

## proto: regenerate the gRPC modules from src/mn_api/adapters/grpc/protos/*.proto
proto: $(STAMP)
	$(BIN)/python tools/proto.py

## bench: this gateway against the published one, side by side (writes bench/RESULTS.md)
bench: $(STAMP)
	@tools/ensure-packages.sh wrk:wrk
	$(BIN)/python -m bench.compare $(BENCH_ARGS)

## lint: ruff and the layer contracts
lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
