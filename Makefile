# Two commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.toml

.PHONY: run test lint unit integration soak system-deps bench bench-quick clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/mediaserver serve --config $(CONFIG)

# System packages the tests use (redis-server for later state tests); installed only if missing.
system-deps:
	@./scripts/ensure-system-deps.sh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# The cluster's Redis-restart scenario 5 times in a row (the suite runs it once). ~2 min.
soak: $(STAMP) system-deps
	CLUSTER_SOAK_REPEAT=$${CLUSTER_SOAK_REPEAT:-5} $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/cluster/test_redis_restart.py

lint: $(STAMP)
	$(BIN)/ruff check mediaserver linkapi loadtests tests
	$(BIN)/ruff format --check mediaserver linkapi loadtests tests
	$(BIN)/mypy

# Benchmarks against Janus (root: they create a network namespace). < 10 minutes.
bench: $(STAMP) system-deps
	$(BIN)/pip install --quiet matplotlib
	$(BIN)/python -m loadtests.run

bench-quick: $(STAMP) system-deps
	$(BIN)/python -m loadtests.run --quick --output loadtests/results/quick.json --no-docs

clean:
	rm -rf $(VENV) build *.egg-info
