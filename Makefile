# Hutch. `make run` serves on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check services services-stop clean portal-vendor portal-screenshots

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

# The portal's vendored browser files (committed; `make run` needs no step): uPlot for its
# charts, axe-core for the browser tests' accessibility checks, at the versions
# portal/package-lock.json pins.
portal-vendor:
	cd portal && npm ci
	cp portal/node_modules/uplot/dist/uPlot.esm.js portal/node_modules/uplot/dist/uPlot.min.css portal/static/vendor/
	cp portal/node_modules/uplot/LICENSE portal/static/vendor/uPlot.LICENSE
	cp portal/node_modules/axe-core/axe.min.js tests/support/vendor/axe.min.js
	cp portal/node_modules/axe-core/LICENSE tests/support/vendor/axe-core.LICENSE

# Refresh the README tour's screenshots (docs/portal/) from the portal's browser tests.
portal-screenshots: $(STAMP)
	HUTCH_PORTAL_SCREENSHOTS=docs/portal $(BIN)/pytest -q tests/test_portal.py tests/test_portal_observability.py tests/test_portal_views.py tests/test_portal_more.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
