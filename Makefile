# Two entry points for a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 first and alone: here it resolves to the local CPU wheel. Unpinned, pip would
# fetch a multi-GB CUDA build as a dependency of sentence-transformers.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/crosswalk demo

# The store tests run on SQLite and on PostgreSQL (the local server unless the URL says otherwise).
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

test: install
	CROSSWALK_TEST_POSTGRES_URL="$${CROSSWALK_TEST_POSTGRES_URL:-$(TEST_POSTGRES_URL)}" $(BIN)/python -m pytest

# The house style: ruff's lint rules and its formatting (pyproject.toml [tool.ruff]); CI runs both.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/mapping.py
	$(BIN)/python benchmarks/mllp.py

# The README's screenshots from the real model on the samples (needs /usr/bin/chromium and playwright).
screenshots: install
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
