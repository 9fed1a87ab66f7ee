# Two entry points: `make demo` (the main job) and `make test`. Each sets up .venv on a fresh machine.
# `make test` leaves out the soak tests (marker `slow`); `make test-all` runs every test (with the
# `boards` extra: its place-and-route test needs YoWASP).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
BSTAMP  := $(VENV)/.installed-boards
export AMARANTH_USE_YOSYS := builtin

.PHONY: demo test test-all venv clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24" "setuptools>=77" wheel
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

# The demo builds a bitstream: it adds the YoWASP yosys/nextpnr (the `boards` extra).
$(BSTAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[test,boards]"
	touch $(BSTAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(BSTAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(BSTAMP)
	$(BIN)/eqfpga demo

bench: $(BSTAMP)
	$(BIN)/eqfpga bench

clean:
	rm -rf build out runs sim_build .pytest_cache
