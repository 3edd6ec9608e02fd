# Two commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.toml

.PHONY: run test lint unit integration soak system-deps bench bench-quick asan clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# setup.py compiles the optional native forwarding path (mediaserver/sfu/csrc/).
$(STAMP): pyproject.toml setup.py $(wildcard mediaserver/sfu/csrc/*) | $(BIN)/python
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

# The native forwarding path under AddressSanitizer + UBSan (and LeakSanitizer) with
# fuzzed RTP: the extension rebuilt with sanitizers, loaded in place of the installed one.
ASAN_SO := build/asan/_fastpath$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
asan: $(STAMP)
	mkdir -p build/asan
	gcc -shared -fPIC -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -std=c11 \
		-Wall -Wextra -Wno-unused-parameter \
		-I$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['include'])") \
		mediaserver/sfu/csrc/*.c -o $(ASAN_SO)
	PYTHONPATH=tests FASTPATH_SO=$(ASAN_SO) FASTPATH_FUZZ_ITERATIONS=$${FASTPATH_FUZZ_ITERATIONS:-50000} \
		LD_PRELOAD=$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so) \
		PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(BIN)/python -m pytest -q -p no:cacheprovider --capture=sys -p fastpath_so \
		tests/unit/test_fastpath.py tests/unit/test_fastpath_simulcast.py tests/unit/test_fastpath_unprotect.py \
		tests/unit/test_native_srtp.py

clean:
	rm -rf $(VENV) build *.egg-info
