# Two commands for a newcomer: `make demo` and `make test`. Both set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data
AIRFLOW_PORT ?= 8080
PYTEST_ARGS ?=
BENCH ?= small
# Spark master of the spark_default connection: the embedded local[*,4] unless set, e.g.
# `make airflow SPARK_MASTER=spark://127.0.0.1:7077` after `make cluster-up`.
SPARK_MASTER ?=
CLUSTER_DIR ?= run/spark-cluster
ifneq ($(SPARK_MASTER),)
export MUSICREC_SPARK_MASTER := $(SPARK_MASTER)
endif
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export GX_ANALYTICS_ENABLED := false

.PHONY: help venv dist demo airflow backfill test test-unit test-prereqs lint format bench clean \
	cluster-up cluster-down cluster-status

help:
	@echo "make demo   - generate two weeks of listening logs and run the pipeline on them"
	@echo "make test   - the whole test suite (unit, fault injection, cluster, Airflow, PostgreSQL)"
	@echo "make airflow - a local Airflow UI (api-server, scheduler, dag-processor, triggerer)"
	@echo "make backfill FROM=2026-01-02 TO=2026-01-04 - backfill through that local Airflow"
	@echo "make cluster-up / cluster-down - Spark master, 2 workers, History Server on 127.0.0.1"
	@echo "make lint   - ruff and mypy;  make bench BENCH=small|medium|large - benchmarks"

$(BIN)/.installed: requirements.txt pyproject.toml
	@scripts/check_prereqs.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

venv: $(BIN)/.installed

# The library reaches Spark executors only as this zip (--py-files), never via a shared FS:
# the modules the Spark jobs import, nothing else.
dist/musicrec.zip: $(BIN)/.installed $(shell find include/musicrec spark_jobs -name '*.py')
	@mkdir -p dist
	$(BIN)/python scripts/build_pyfiles.py include dist/musicrec.zip spark_jobs

# Spark's classes as a class-data-sharing archive every driver maps (spark_conf.CLASS_ARCHIVE):
# recorded from a warm-up run, rebuilt only when the installed jars or the JDK may change.
dist/spark-classes.jsa: $(BIN)/.installed scripts/build_class_archive.py \
		scripts/class_archive_warmup.py | dist/musicrec.zip
	PYTHONPATH=include $(BIN)/python scripts/build_class_archive.py $@

dist: dist/musicrec.zip dist/spark-classes.jsa

airflow: dist
	$(BIN)/python scripts/airflow_server.py --port $(AIRFLOW_PORT) --data-root $(DATA)

backfill: dist
	$(BIN)/python scripts/airflow_local.py backfill create --dag-id musicrec_pipeline \
		--from-date $(FROM) --to-date $(TO)

# A Spark standalone cluster from the pinned pyspark: master spark://127.0.0.1:7077 (UI :8081),
# two workers, a History Server on :18080 reading $(DATA)/spark-events (the jobs' event logs).
cluster-up: venv
	$(BIN)/python -m musicrec.runtime.cluster up --run-dir $(CLUSTER_DIR) --event-dir $(DATA)/spark-events

cluster-down: venv
	$(BIN)/python -m musicrec.runtime.cluster down --run-dir $(CLUSTER_DIR)

cluster-status: venv
	$(BIN)/python -m musicrec.runtime.cluster status --run-dir $(CLUSTER_DIR)

demo: dist
	PYTHONPATH=scripts $(BIN)/python scripts/demo.py --data-root $(DATA)

# Two workers, whole files each (module fixtures such as the cluster start once), longest
# files first (tests/conftest.py). Three were tried on two cores: the same wall time (31 min
# 35 s against 31 min 55 s), each slow test about 1.5x longer.
TEST_WORKERS ?= 2
test: test-prereqs dist
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Before anything is installed or run: what the tests need from the machine.
test-prereqs:
	@scripts/check_prereqs.sh --tests $(PYTHON)

test-unit: test-prereqs dist
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
	rm -rf dist build $(DATA) run .pytest_cache .mypy_cache .ruff_cache
