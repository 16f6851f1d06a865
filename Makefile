# Two commands set up and run everything: `make run` and `make test`.
# Each creates .venv when missing and (re)installs when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench crash-test demo clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: start the daemon on simulated hardware, SQLite under ./var/
run: $(STAMP)
	@mkdir -p var
	$(BIN)/kiosk run

## test: the whole suite (also on a private PostgreSQL when CI=true or KIOSK_TEST_POSTGRES=1)
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check kiosk api drivers simulators tests bench
	$(BIN)/mypy

## bench: benchmarks; figures printed and written to bench/results/
bench: $(STAMP)
	@mkdir -p bench/results
	$(BIN)/python bench/run_all.py

## crash-test: SIGKILL the daemon at random points, then check nothing was lost (KILLS=30 SEED=1)
crash-test: $(STAMP)
	@mkdir -p bench/results
	$(BIN)/python bench/crash_harness.py --kills $(or $(KILLS),30) --seed $(or $(SEED),1)

## demo: load the demo tower (百富国际大厦) into ./var/kiosk.db
demo: $(STAMP)
	$(BIN)/kiosk demo-data

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
