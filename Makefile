# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast lint bench bench-api bench-inventory install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pim-rollout demo

# Tests run in parallel processes (pytest-xdist); most wait on simulated Graph latency, so a
# few more processes than cores keep both busy. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 4
# Bytecode is cached even where the environment turns that off (PYTHONDONTWRITEBYTECODE): every
# test worker, and every service process a test starts, would otherwise compile the app and
# rewrite the test modules again, seconds of CPU each.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=15

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/convert.py

bench-api: $(STAMP)
	$(BIN)/python bench/api_load.py

bench-inventory: $(STAMP)
	$(BIN)/python bench/inventory.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
