# lq: the two commands that matter are `make demo` (run the product offline) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= demo/lq.sqlite
# three workers, whole files each (a file's servers and fixtures stay in one process): most
# tests wait on sockets, browsers and subprocesses, so three share two cores well
PYTEST_ARGS ?= -n 3 --dist loadfile --no-loadscope-reorder --durations=25

.PHONY: setup demo test test-container lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install lq with everything the tests need

DEMO_SYMBOLS ?= BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT

DEMO_ARGS ?=

demo: $(STAMP)  ## the dashboard on the local exchange (no internet needed); prints the URL to open
	$(BIN)/lq dashboard --source local --db $(DEMO_DB) --symbols $(DEMO_SYMBOLS) $(DEMO_ARGS)

lint: $(STAMP)  ## the fast job that runs before the tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy lq

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP)  ## lint, then the whole test suite (installs Chromium for the browser tests if missing)
	bash scripts/install-chromium
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-container: $(STAMP)  ## build the image and run compose.yaml with podman against the local exchange (installs podman; minutes)
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "run 'sudo apt-get install podman runc debootstrap' first" >&2; exit 1; fi; \
	  echo "installing podman, runc and debootstrap..." >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; \
	fi
	bash scripts/install-chromium
	LQ_CONTAINER_TESTS=1 $(BIN)/pytest -m container tests/container -s --durations=5

bench: $(STAMP)  ## print the performance figures and their ratios against baselines
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
