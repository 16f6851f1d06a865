# Two commands set up and run everything: `make run` and `make test`.
# Each creates .venv when missing and (re)installs when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# New Year's Day, half past midnight Shanghai time: another day, month and year than the
# tests' own, after hours, and a different date in UTC (16:30 on 31 December)
TEST_CLOCK  ?= 2027-01-01T00:30:00+08:00
CLOCK_TESTS := tests/kiosk tests/reports tests/test_scheduler.py tests/api/test_handovers.py

.PHONY: run test test-main test-clock lint system-deps bench bench-quick crash-test mutation mutation-ci demo clean

# pytest workers: the suite is spread over the cores (pytest-xdist), a test file to a worker
# (--dist loadfile) so a module that starts a daemon, a browser or a fleet starts it once.
# Two workers a core: most tests wait (on a simulated door, a browser, a daemon or
# PostgreSQL in another process) far more than they compute; the clock pass used 118 s of
# CPU in 402 s on two workers and took 262 s on four (docs/testing.md, "CI time").
# WORKERS=0 runs it in one process.
WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
CLOCK_WORKERS ?= $(shell nproc)

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
## and, beside it, the clock-sensitive tests again with the wall clock moved (see
## KIOSK_TEST_CLOCK): two pytest runs side by side, each one's output shown when it ends
test: $(STAMP) system-deps
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-main test-clock

## test-main: the whole suite, once (no system-deps: `make test` or .ci/run installs them first)
test-main: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

## test-clock: the clock pass alone. Its own pytest run, not more workers of the main one:
## time-machine moves a whole worker process's clock from pytest_configure on, and
## pytest-xdist cannot send chosen files to chosen workers. It runs beside the main pass,
## which mostly waits, on CLOCK_WORKERS (one a core) so the two crowd the cores less.
test-clock: $(STAMP)
	KIOSK_TEST_CLOCK=$(TEST_CLOCK) KIOSK_TEST_POSTGRES=0 $(BIN)/python -m pytest -q -n $(CLOCK_WORKERS) --dist loadfile $(CLOCK_TESTS)

## lint: ruff, mypy and the architecture's layer rules (import-linter contracts in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check kiosk api drivers simulators tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## system-deps: as root, the Debian packages the tests drive (Chromium, a CJK font, PostgreSQL,
## socat for pty pairs, poppler for PDF pages), installed once before the workers start;
## as another user it only says which are missing (their tests then skip)
system-deps:
	@bash deploy/system-deps.sh

## bench: benchmarks, each in its own process; figures printed and written to bench/results/,
## then the README's performance table is made again from them
bench: $(STAMP)
	@mkdir -p bench/results
	$(BIN)/python bench/run_all.py
	$(BIN)/python bench/readme_table.py

## bench-quick: every bench at small sizes in under two minutes (bench/results/quick/)
bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

## crash-test: SIGKILL the daemon at random points, then check nothing was lost (KILLS=30 SEED=1)
crash-test: $(STAMP)
	@mkdir -p bench/results
	$(BIN)/python bench/crash_harness.py --kills $(or $(KILLS),30) --seed $(or $(SEED),1)

## mutation: mutmut over kiosk/policy.py, kiosk/session.py, kiosk/audit/, kiosk/services/authz.py
## ([tool.mutmut] in pyproject.toml); lists survivors, fails on any not explained in docs/testing.md
mutation: $(STAMP)
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python tests/mutation_report.py

## mutation-ci: the rules (kiosk/policy.py) and the log's encoding (kiosk/audit/chain.py) only,
## sized for CI (see docs/testing.md for its time). The API matrix is left out of its selection
## (PYTEST_ADDOPTS: mutmut reads one selection, from pyproject.toml): it reaches seven of
## these modules' functions, each reached by other selected tests too, and killed none of
## their mutants that the rest did not; it cost each surviving chain mutant and the stats
## phase over two minutes of a loaded machine's time (docs/testing.md, "CI time")
mutation-ci: $(STAMP)
	PYTEST_ADDOPTS="--deselect tests/api/test_matrix.py" $(BIN)/mutmut run --max-children 2 "kiosk.policy*" "kiosk.audit.chain*" || true
	$(BIN)/python tests/mutation_report.py kiosk.policy kiosk.audit.chain

## demo: load the demo tower (百富国际大厦) into ./var/kiosk.db
demo: $(STAMP)
	$(BIN)/kiosk demo-data

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
