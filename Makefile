# Two commands set up and run everything: `make run` and `make test`.
# Each creates .venv when missing and (re)installs when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench demo clean

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
	$(BIN)/ruff check kiosk api drivers simulators tests
	$(BIN)/mypy

## bench: benchmarks; figures printed and written to bench/results/
bench: $(STAMP)
	@mkdir -p bench/results
	$(BIN)/python bench/run_all.py

## demo: load the demo tower (百富国际大厦) into ./var/kiosk.db
demo: $(STAMP)
	$(BIN)/kiosk demo-data

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
