# Every target sets up what it needs: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test test-unit test-integration lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fast]'
	touch $(STAMP)

# Set up, then run the cloud on SQLite with a demo fleet (Ctrl-C stops everything).
up: $(STAMP)
	$(BIN)/fermion up --demo

# Fast unit tests first, then integration tests (real processes and sockets on loopback).
test: $(STAMP)
	$(BIN)/pytest tests/unit -q
	$(BIN)/pytest tests/integration -q
	$(BIN)/pytest tests/scenarios -q

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
