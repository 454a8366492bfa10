# tikv-operator developer entry points. `make test` is all CI runs (through .ci/run).
SHELL := bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
PYTEST_ARGS ?=

.PHONY: help install lint unit integration test demo bench soak image platform-up platform-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV) || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

install: $(VENV)/.synced ## install the project and its pinned dependencies into .venv

lint: install ## ruff (the import contracts run with the unit tests)
	$(VENV)/bin/ruff check .

unit: install ## fast tests, no platform needed
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

integration: install ## integration tests (uses the running platform, or brings one up and down)
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

test: lint unit ## everything CI runs: lint, unit, then integration on a platform of its own
	hack/test $(PYTEST_ARGS)

demo: install ## the whole product on this machine as a short kubectl story (KEEP=1 leaves it running)
	KEEP=$(KEEP) $(VENV)/bin/python hack/demo.py

bench: install ## the benchmarks (cost per check, latency, API writes, scale) -> bench/RESULTS.md
	$(VENV)/bin/python -m bench.run_all

# The fault soak: hours of mixed faults in minutes, judged by an oracle; its own platform.
DURATION ?= 30m
SEED ?= 19
CLUSTERS ?= 20
soak: install ## fault soak with an oracle (DURATION=30m SEED=19 CLUSTERS=20) -> bench/RESULTS.md; exits 1 on a violation
	TIKV_PLATFORM_DIR=$${TIKV_PLATFORM_DIR:-$(CURDIR)/.platform-soak} \
		$(VENV)/bin/python -m bench.soak --duration $(DURATION) --seed $(SEED) --clusters $(CLUSTERS)

image: ## build the operator image with buildah, no Docker engine needed (localhost/tikv-operator:dev)
	hack/image build

platform-up: ## start the local platform (eval "$$(hack/platform env)" to use it; NODE=1 adds a kubelet node)
	hack/platform up $(if $(NODE),--with-node)

platform-down: ## stop the local platform
	hack/platform down

clean: ## remove .venv and caches of this checkout (not the per-machine binary cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
