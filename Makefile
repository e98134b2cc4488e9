# The two set-up commands: `make run` (the platform with demo data) and `make test`.
# Only Python 3.11+ is needed; everything else goes into .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Two pytest workers (pytest-xdist): much of the suite waits on child processes, sockets, the
# browser and the database rather than computing, so two keep a 2-core CI machine busy. Each
# test file stays on one worker (--dist loadfile), so what a module shares is made once. Files
# go out in collection order (--no-loadscope-reorder), where tests/conftest.py puts the longest
# one (minutes, one test) first; xdist's default order, most tests first, sent it last.
# `make test PYTEST_WORKERS=` runs in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder
# The 40 slowest set-ups, calls and tear-downs at the end of every run, so a CI log shows where
# the 15-minute budget (issue 16) goes, and the 40 tests that used the most CPU time with the
# sum over all tests (tests/cpu_durations.py: unlike wall time, hardly changed by a busy
# machine); `make test PYTEST_DURATIONS=` leaves both lists out.
PYTEST_DURATIONS ?= --durations=40 --cpu-durations=40

.PHONY: run test lint format clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/phr dev run

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_DURATIONS) $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
