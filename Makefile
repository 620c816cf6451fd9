# Two commands set Reef up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Most tests wait on real processes (agents, servers, a browser), so three workers overlap well on two cores.
TEST_WORKERS ?= 3

.PHONY: run test lint install install-test check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Start Reef: migrate, find or start Redis, create the first administrator, run daphne + Celery.
run: install
	$(PY) manage.py serve

## Run the whole test suite against PostgreSQL and Redis when they are reachable.
test: install-test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## Lint and type-check (configured in pyproject.toml): what .ci/run checks before the tests.
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

check: install
	$(PY) manage.py check

clean:
	rm -rf $(VENV) var/*.sqlite3 var/redis
