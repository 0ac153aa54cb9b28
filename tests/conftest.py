"""Shared fixtures: one local SparkSession for the whole run, generated landing data."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import date
from pathlib import Path

import pytest
from musicrec.runtime import spark_conf

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Every JVM the tests start (spark-submit drivers, executors, the standalone cluster) compiles
# with C1 only: the tests' JVMs are short-lived and their data small, and C2 compilation was
# about 40% of their CPU time (measured: ingest of 5k events, 38 s -> 21 s of CPU). Behaviour is
# the same; only the JIT tier differs. Production runs keep the JVM's default (apart from a
# grid layout's train step, spark_conf.GRID_TRAINING_JIT).
os.environ.setdefault("JDK_JAVA_OPTIONS", spark_conf.C1_ONLY)

ROOT = Path(__file__).resolve().parents[1]
FAULT_DAY = date(2026, 1, 1)


# `make test` runs two pytest-xdist workers, one test file at a time each, in this order: the
# longest files first, so they run side by side instead of one after the other at the end.
LONGEST_FIRST = ("test_dag.py", "test_cluster.py", "test_dag_failures.py", "test_model_steps.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [n for n in LONGEST_FIRST if not any((ROOT / "tests").rglob(n))]
    if missing:  # a renamed file would silently lose its place at the front
        raise pytest.UsageError(f"LONGEST_FIRST names files that do not exist: {missing}")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from musicrec.runtime.session import build_session
    from musicrec.runtime.spark_conf import TEST_MASTER

    session = build_session(
        "musicrec-tests",
        master=TEST_MASTER,
        checkpoint_dir=tmp_path_factory.mktemp("checkpoints"),
        conf={"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def fault_landing(tmp_path_factory) -> Path:
    """Two days of logs with every defect kind injected (about 2% of lines)."""
    from musicrec.generator.cli import generate
    from musicrec.generator.world import WorldSpec
    from musicrec.generator.writer import FaultRates

    out = tmp_path_factory.mktemp("landing") / "listening_events"
    generate(
        out,
        FAULT_DAY,
        2,
        20_000,
        WorldSpec(users=600, artists=200, seed=7),
        FaultRates.testing(),
        processes=1,
    )
    return out


@pytest.fixture(scope="session")
def clean_landing(tmp_path_factory) -> Path:
    """Ten clean days: enough history for the volume band and for model steps."""
    from musicrec.generator.cli import generate
    from musicrec.generator.world import WorldSpec
    from musicrec.generator.writer import FaultRates

    out = tmp_path_factory.mktemp("clean") / "listening_events"
    generate(
        out,
        date(2026, 2, 1),
        10,
        6_000,
        WorldSpec(users=400, artists=150, seed=11),
        FaultRates(),
        processes=2,
    )
    return out


def make_data_root(tmp_path: Path, landing: Path) -> Path:
    """A fresh data root whose landing folder is a copy of a generated one."""
    root = tmp_path / "data"
    target = root / "landing" / "listening_events"
    target.parent.mkdir(parents=True)
    shutil.copytree(landing, target)
    return root


@pytest.fixture
def fault_root(tmp_path, fault_landing) -> Path:
    return make_data_root(tmp_path, fault_landing)


@pytest.fixture
def clean_root(tmp_path, clean_landing) -> Path:
    return make_data_root(tmp_path, clean_landing)


@pytest.fixture(scope="session")
def pg_server():
    from tests import pg

    server = pg.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory):
    """A Spark standalone cluster (master, two one-core workers, History Server), as
    ``make cluster-up`` starts it; event logs in ``<shared>/data/spark-events``."""
    from musicrec.runtime.cluster import StandaloneCluster, free_port

    from tests import procs

    shared = tmp_path_factory.mktemp("cluster-shared")
    cluster = StandaloneCluster(
        shared / "run",
        workers=2,
        worker_cores=1,
        worker_memory="1536m",
        master_port=free_port(),
        master_ui_port=free_port(),
        history_port=free_port(),
        event_dir=shared / "data" / "spark-events",  # where the DAG's jobs write them
    )
    cluster.start()
    yield cluster
    cluster.stop()
    leftovers = [p.pid for p in procs.processes() if str(cluster.run_dir) in p.cmdline]
    assert not leftovers, f"cluster processes left running: {leftovers}"


@pytest.fixture
def healthy_cluster(standalone_cluster):
    """Both workers up and registered: workers a previous test killed are started again."""
    from musicrec.runtime.cluster import alive, alive_workers

    cluster = standalone_cluster
    for index in range(cluster.workers):
        pid = cluster.pids.get(f"worker-{index}")
        if pid is None or not alive(pid):
            cluster.start_worker(index)
    cluster.wait_for(
        lambda s: s is not None and len(alive_workers(s)) >= cluster.workers,
        120,
        "both workers",
    )
    return cluster
