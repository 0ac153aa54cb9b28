# Two commands for a newcomer: `make demo` and `make test`. Both set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data
AIRFLOW_PORT ?= 8080
PYTEST_ARGS ?=
BENCH ?= small
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export GX_ANALYTICS_ENABLED := false

.PHONY: help venv dist demo airflow backfill test test-unit lint format bench clean

help:
	@echo "make demo   - generate two weeks of listening logs and run the pipeline on them"
	@echo "make test   - the whole test suite (unit, fault injection, cluster, Airflow, PostgreSQL)"
	@echo "make airflow - a local Airflow UI (api-server, scheduler, dag-processor, triggerer)"
	@echo "make backfill FROM=2026-01-02 TO=2026-01-04 - backfill through that local Airflow"
	@echo "make lint   - ruff and mypy;  make bench BENCH=small|medium|large - benchmarks"

$(BIN)/.installed: requirements.txt pyproject.toml
	@scripts/check_prereqs.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

venv: $(BIN)/.installed

# The library reaches Spark executors only as this zip (--py-files), never via a shared FS.
dist/musicrec.zip: $(BIN)/.installed $(shell find include/musicrec -name '*.py')
	@mkdir -p dist
	$(BIN)/python scripts/build_pyfiles.py include dist/musicrec.zip

dist: dist/musicrec.zip

airflow: dist
	$(BIN)/python scripts/airflow_server.py --port $(AIRFLOW_PORT) --data-root $(DATA)

backfill: dist
	$(BIN)/python scripts/airflow_local.py backfill create --dag-id musicrec_pipeline \
		--from-date $(FROM) --to-date $(TO)

demo: dist
	PYTHONPATH=scripts $(BIN)/python scripts/demo.py --data-root $(DATA)

test: dist
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: dist
	$(BIN)/python -m pytest -m "unit" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: dist
	$(BIN)/python benchmarks/run.py --size $(BENCH)

clean:
	rm -rf dist build $(DATA) .pytest_cache .mypy_cache .ruff_cache
