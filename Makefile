# fidele — the two commands a new user types: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/fidele_test

.PHONY: install run test test-sqlite test-postgres lint format bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[dev]"
	touch $(VENV)/.installed $@

# fidele in .venv, for the README's "First steps" on a fresh clone.
install: $(VENV)/.installed
	@echo "installed: 'source $(BIN)/activate' puts the fidele command on your PATH"

run: $(VENV)/.installed
	@echo "fidele is in $(BIN): 'source $(BIN)/activate' puts it on your PATH (README: First steps)"
	$(BIN)/fidele demo

# The whole suite, on SQLite and (when reachable or in CI) on PostgreSQL.
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python bench/analytics.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/checkout.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) fidele.db fidele.db-wal fidele.db-shm
