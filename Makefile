# Entry points for newcomers: run, test, lint, fake-core, proto, bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The versions the suite runs on, resolved from pyproject.toml by `make lock`.
CONSTRAINTS := constraints.txt

.PHONY: run test test-cluster image test-image lint lock fake-core proto bench clean

# The venv keeps the pip its Python ships with: the install must work with it.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

# Serving needs the gateway alone, not the test toolchain.
RUN_STAMP := $(VENV)/.installed-run

$(RUN_STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) -e .
	touch $(RUN_STAMP)

# The newest built Web UI, served by the gateway at / when it is there.
WEBUI ?= $(wildcard $(CURDIR)/../shared/webui/mn-web-ui-1.2.5)

## run: serve the gateway on http://localhost:4001 backed by the in-memory runtime
run: $(RUN_STAMP)
	MN_RUNTIME=memory $(if $(WEBUI),MN_API_WEBUI_DIR=$(abspath $(WEBUI))) $(BIN)/mn-api

# Services the tests start themselves (on free loopback ports), and the tools that check
# the deployment kit (deploy/); installed when missing.
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium nginx:nginx \
	systemd-analyze:systemd promtool:prometheus
# What builds the container image: no daemon, no registry.
IMAGE_PACKAGES := buildah:buildah mmdebstrap:mmdebstrap

## test: install the project with its test extras and run the whole suite
test: $(STAMP)
	@tools/ensure-packages.sh $(SYSTEM_PACKAGES)
	$(BIN)/python -m pytest -m "not cluster"

## test-cluster: the gateway in front of core clusters of three nodes (real and simulated), killed and starved
test-cluster: $(STAMP)
	@tools/ensure-packages.sh $(SYSTEM_PACKAGES)
	$(BIN)/python -m pytest -m cluster tests/cluster

## image: build the gateway's container image with buildah (deploy/container/build.sh; IMAGE=name:tag)
image: $(STAMP)
	@tools/ensure-packages.sh $(IMAGE_PACKAGES)
	MN_IMAGE_PYTHON=$(BIN)/python deploy/container/build.sh $(IMAGE)

## test-image: build the image, start the gateway in it and probe it (deploy/container/probe.sh)
test-image: $(STAMP)
	@tools/ensure-packages.sh $(IMAGE_PACKAGES)
	MN_IMAGE_PYTHON=$(BIN)/python MN_IMAGE_TAGFILE=$(VENV)/.image deploy/container/build.sh $(IMAGE)
	deploy/container/probe.sh "$$(cat $(VENV)/.image)"

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

## lock: re-resolve constraints.txt from pyproject.toml (newest versions that fit, any platform)
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --extra test \
		--output-file $(CONSTRAINTS) pyproject.toml

## lint: ruff and the layer contracts
lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
