# The two commands of the README: `make run` and `make test`. Both install what they need.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# REDbot lives in its own virtual environment so its pins cannot clash with ours.
REDBOT_VENV ?= .venv-redbot

.PHONY: run test lint system-packages

run: $(VENV)/.installed
	$(BIN)/reporting-svc serve

test: $(VENV)/.installed-test $(REDBOT_VENV)/.installed system-packages lint
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# nginx, curl and wget for the integration tests (apt-get; skipped when present).
system-packages:
	scripts/install-system-packages

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(REDBOT_VENV)/.installed:
	$(PYTHON) -m venv $(REDBOT_VENV)
	$(REDBOT_VENV)/bin/pip install --quiet 'redbot>=2.7,<3'
	touch $@
