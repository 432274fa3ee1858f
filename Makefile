# SaaSDesk — `make demo` runs the back office with demo data; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The port `make demo` / `make run` serve on: `PORT=8001 make demo` or `make demo PORT=8001`.
PORT ?= 8000

.PHONY: demo setup test bench bench-check bench-track bench-delivery bench-notifications bench-credits bench-webhooks bench-stats migrate run clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

# Sets up everything on the embedded defaults (SQLite, eager Celery, no Stripe
# key), loads demo data, prints an admin password and an API key once, serves :$(PORT).
demo: migrate
	$(PY) manage.py demo_setup --base-url http://127.0.0.1:$(PORT)
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

run: migrate
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# The test suite. SQLite without DATABASE_URL (PostgreSQL/Redis-only tests are
# skipped with a reason); the full suite with DATABASE_URL and REDIS_URL.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (need PostgreSQL: BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/saasdesk_bench).
bench: $(STAMP)
	$(PY) bench/run.py all

bench-check bench-track bench-delivery bench-notifications bench-credits bench-webhooks: $(STAMP)
	$(PY) bench/run.py $(subst bench-,,$@)

# /usage/stats over 10 million events (loads them once into BENCH_STATS_DATABASE_URL,
# default saasdesk_stats; minutes). Not part of `make bench`.
bench-stats: $(STAMP)
	$(PY) bench/run.py stats

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
