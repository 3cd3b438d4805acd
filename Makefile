# Every target sets up what it needs: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test test-unit test-integration test-compat compat-clients lint format bench clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fast]'
	touch $(STAMP)

# The real Particle clients tests/compat drives, exactly as package-lock.json pins them.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

compat-clients:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_STAMP); \
	else echo "npm not found: tests/compat will be skipped"; fi

# Set up, then run the cloud on SQLite with a demo fleet (Ctrl-C stops everything). The demo
# lives in .fermion/demo, beside the README tour's .fermion, and is kept between runs;
# `make up UP=--fresh` seeds a new one.
up: $(STAMP)
	FERMION_HOME=$(CURDIR)/.fermion $(BIN)/fermion up --demo $(UP)

# Fast unit tests first, then integration tests (real processes and sockets on loopback), then
# the real Particle clients (particle-cli, particle-api-js) against a real server (tests/compat).
test: $(STAMP) compat-clients
	$(BIN)/pytest tests/unit -q
	$(BIN)/pytest tests/integration -q
	$(BIN)/pytest tests/compat -q
	$(BIN)/pytest tests/scenarios -q

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

test-compat: $(STAMP) compat-clients
	$(BIN)/pytest tests/compat -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The console's screenshots in docs/images and the README, taken by its browser tests; a plain
# test run leaves them alone so that `make test` leaves the checkout clean.
screenshots: $(STAMP)
	FERMION_SCREENSHOTS=1 $(BIN)/pytest tests/integration/console/test_console.py \
		tests/integration/console/test_console_rough_edges.py -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
