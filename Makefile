# Hutch. `make run` serves on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check services services-stop clean

$(STAMP): pyproject.toml setup.py projections/otel_spans_rowbinary.c schemas/otlp/trace_check.c schemas/otlp/trace_wire.h
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hutch serve

# The whole suite on the embedded backends; with HUTCH_TEST_KAFKA / HUTCH_TEST_POSTGRES set
# (`eval "$$(bash ops/services.sh env)"`), the integration tests run and the suite runs again
# on Kafka and PostgreSQL.
test: $(STAMP)
	$(BIN)/pytest -q
	@if [ -n "$$HUTCH_TEST_KAFKA$$HUTCH_TEST_POSTGRES" ]; then \
		echo "== the suite again on the production backends (Kafka, PostgreSQL)"; \
		HUTCH_TEST_BACKENDS=production $(BIN)/pytest -q -m "not slow"; \
	fi

# Install (once) and start Kafka and PostgreSQL on 127.0.0.1; prints the settings to export.
services:
	bash ops/services.sh start

services-stop:
	bash ops/services.sh stop

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
