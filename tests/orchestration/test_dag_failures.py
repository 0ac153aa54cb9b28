"""Failure handling through Airflow: timeouts leave nothing running, a killed driver is retried.

Both run real Airflow task runs (``dag.test``) of the project's operator submitting real Spark
applications; processes are found by a token in their environment, which every process of a
spark-submit tree inherits (the JVM, the Python driver, the PySpark worker daemons).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.runtime import spark_conf
from pyspark.testing import assertDataFrameEqual

from tests import procs
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_local

PROBE_DAG = """
from datetime import datetime, timedelta
from airflow.sdk import DAG
from musicrec.orchestration.operators import spark_task

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    spark_task(
        task_id="{task_id}",
        application="{application}",
        application_args={args!r},
        py_files="{py_files}",
        env_vars={{"MUSICREC_PROBE": "{token}"}},
        execution_timeout=timedelta(seconds={timeout}),
        retries={retries},
        retry_delay=timedelta(seconds=2),
    )
"""


def tries_of(data_root: Path) -> list[dict]:
    path = data_root / c.TASK_TRIES_HISTORY
    return [json.loads(line) for line in path.read_text().splitlines()]


def processes_with(token: str) -> list[tuple[int, str]]:
    """Live processes of the spark-submit tree carrying ``token`` (pid, command line)."""
    return [(p.pid, p.cmdline) for p in procs.with_token(token)]


def probe_env(
    tmp_path: Path, data_root: Path, master: str | None = None, **dag
) -> tuple[dict[str, str], str]:
    token = uuid.uuid4().hex
    dags = tmp_path / "dags"
    dags.mkdir()
    py_files = ROOT / "dist" / "musicrec.zip"
    (dags / "probe.py").write_text(PROBE_DAG.format(token=token, py_files=py_files, **dag))
    env = airflow_local.environment(
        tmp_path / "airflow_home",
        data_root,
        master=master,
        extra={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
    )
    airflow_local.prepare_home(env)
    return env, token


def run_probe(
    env: dict[str, str], dag_id: str, day: str, timeout: int = 900, output: list | None = None
) -> dict:
    """One dag.test() run of the probe DAG; ``output`` receives what it printed."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_dag.py"), day, "--dag-id", dag_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    runs = [json.loads(x[7:]) for x in out.stdout.splitlines() if x.startswith("DAGRUN ")]
    assert len(runs) == 1, out.stdout[-3000:] + out.stderr[-5000:]
    if output is not None:
        output.append(out.stdout + out.stderr)
    return runs[0]


@pytest.mark.airflow
@pytest.mark.fault
@pytest.mark.timeout(600)
def test_timeout_fails_the_task_and_leaves_no_spark_process(tmp_path):
    env, token = probe_env(
        tmp_path,
        tmp_path / "data",
        dag_id="probe_timeout",
        task_id="sleepy",
        application=ROOT / "tests" / "apps" / "sleepy_job.py",
        args=[str(tmp_path / "checkpoints"), "--data-root", str(tmp_path / "data")],
        timeout=45,
        retries=0,
    )
    seen: list[list[tuple[int, str]]] = []
    stop = threading.Event()

    def watch() -> None:  # what was running while the task ran: proves the check can fail
        while not stop.is_set():
            seen.append(processes_with(token))
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_probe(env, "probe_timeout", "2026-01-05")
    finally:
        stop.set()
        watcher.join()
    assert run["state"] == "failed" and run["tasks"]["sleepy"] == "failed", run
    kinds = " ".join(cmd for snapshot in seen for _, cmd in snapshot)
    # The full tree existed: the SparkSubmit JVM, the Python driver, a PySpark worker.
    assert "deploy.SparkSubmit" in kinds, kinds[-2000:]
    daemon, _why = spark_conf.LOCAL_OVERRIDES["spark.python.daemon.module"]
    assert "sleepy_job.py" in kinds and daemon in kinds, kinds[-2000:]
    deadline = time.monotonic() + 30
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(1)
    assert processes_with(token) == []
    # The on-call record of the try: failed for good, a timeout, no Spark task finished.
    [record] = tries_of(tmp_path / "data")
    assert (record["task_id"], record["try_number"], record["outcome"]) == ("sleepy", 1, "failed")
    assert record["exit_class"] == "timeout" and record["log_url"].endswith("try_number=1")


def kill_driver_when_writing(token: str, lake: Path, done: threading.Event, log: list) -> None:
    """SIGKILL the SparkSubmit JVM once Spark writes output files (or after 90 s at most):
    ingest's staged interval, or a dynamic overwrite's staging folder."""
    started = None
    while not done.is_set():
        jvms = [pid for pid, cmd in processes_with(token) if "SparkSubmit" in cmd]
        if jvms and started is None:
            started = time.monotonic()
        staging = (
            [*lake.glob("*/.spark-staging-*"), *lake.glob("*/_staging/*/_temporary")]
            if lake.exists()
            else []
        )
        if jvms and (staging or time.monotonic() - started > 90):
            for pid in jvms:
                os.kill(pid, signal.SIGKILL)
            log.append({"pid": jvms, "while_writing": bool(staging)})
            return
        time.sleep(0.05)


@pytest.mark.airflow
@pytest.mark.fault
@pytest.mark.timeout(900)
@pytest.mark.cluster
def test_killed_driver_is_retried_and_output_matches_a_clean_run(spark, tmp_path, healthy_cluster):
    """On the standalone cluster: the driver (spark-submit, client mode) dies while executors
    on the workers are writing; Airflow's retry must succeed and match a clean run."""
    from musicrec.generator.cli import generate
    from musicrec.generator.world import WorldSpec
    from musicrec.generator.writer import FaultRates
    from musicrec.runtime import submit

    day = date(2026, 4, 1)
    roots = {name: tmp_path / name / "data" for name in ("killed", "clean")}
    generate(
        roots["clean"] / c.LANDING_EVENTS,
        day,
        1,
        150_000,
        WorldSpec(users=2000, artists=400, seed=3),
        FaultRates.testing(),
        processes=1,
    )
    # The same bytes in both landing folders.
    shutil.copytree(roots["clean"] / c.LANDING_EVENTS, roots["killed"] / c.LANDING_EVENTS)
    interval = ["--start", day.isoformat(), "--end", "2026-04-02"]
    clean = subprocess.run(
        submit.command("ingest", ["--data-root", str(roots["clean"]), *interval]),
        env=submit.environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]

    env, token = probe_env(
        tmp_path / "killed",
        roots["killed"],
        master=healthy_cluster.master_url,
        dag_id="probe_retry",
        task_id="ingest",
        application=ROOT / "spark_jobs" / "ingest.py",
        args=["--data-root", str(roots["killed"]), *interval],
        timeout=600,
        retries=2,
    )
    done, kills = threading.Event(), []
    killer = threading.Thread(
        target=kill_driver_when_writing, args=(token, roots["killed"] / "lake", done, kills)
    )
    killer.start()
    try:
        run = run_probe(env, "probe_retry", day.isoformat())
    finally:
        done.set()
        killer.join()
    assert kills and kills[0]["while_writing"], kills  # killed with files half-written
    assert run["state"] == "success" and run["tries"]["ingest"] == 2, run

    for table in (c.ACCEPTED_EVENTS, c.QUARANTINE_EVENTS):
        got = spark.read.parquet(str(roots["killed"] / table))
        want = spark.read.parquet(str(roots["clean"] / table))
        assert got.count() == want.count() > 0
        assertDataFrameEqual(got, want)
        leftovers = [
            p
            for p in (roots["killed"] / table).rglob("*")
            if p.name.startswith((".spark", "_temp"))
        ]
        assert leftovers == []
    batch = "20260401T00_24h"
    counts = [
        json.loads((r / c.MANIFESTS / "ingest" / f"{batch}.json").read_text())["counts"]
        for r in (roots["killed"], roots["clean"])
    ]
    assert counts[0] == counts[1]
    retry = json.loads((roots["killed"] / c.MANIFESTS / "ingest" / f"{batch}.json").read_text())
    interrupted = retry["outputs"]["removed_interrupted_writes"]
    assert any("_staging" in p or ".spark-staging-" in p for p in interrupted), interrupted
    # Both applications are over on the cluster: none running, no executor JVM left behind.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = healthy_cluster.status() or {}
        stray = [
            p.pid
            for p in procs.processes()
            if "CoarseGrainedExecutorBackend" in p.cmdline
            and str(healthy_cluster.run_dir) in os.path.realpath(f"/proc/{p.pid}/cwd")
        ]
        if not status.get("activeapps") and not stray:
            break
        time.sleep(1)
    assert not status.get("activeapps") and not stray, (status.get("activeapps"), stray)


@pytest.mark.airflow
@pytest.mark.fault
@pytest.mark.timeout(900)
def test_a_retried_train_task_resumes_from_its_factor_checkpoint(tmp_path):
    """spark-submit is killed mid-training (after a factor checkpoint): the operator's retry
    goes on from that checkpoint, not from iteration 0."""
    from musicrec.generator.interactions import AS_OF, SIZES, interactions, write_table

    root = tmp_path / "data"
    table = root / c.INTERACTIONS / "artist"
    write_table(interactions(SIZES["small"], seed=1), table)
    args = ["--data-root", str(root), "--interactions", str(table), "--as-of", AS_OF]
    args += ["--model-id", "resumed", "--layout", "half-gridify", "--rank", "16"]
    args += ["--max-iter", "14", "--checkpoint-interval", "2"]
    args += ["--event-log-dir", str(root / "spark-events")]  # executor health for on-call
    env, token = probe_env(
        tmp_path,
        root,
        dag_id="probe_resume",
        task_id="train",
        application=ROOT / "spark_jobs" / "train.py",
        args=args,
        timeout=600,
        retries=1,
    )
    marker = root / c.MODELS / "checkpoints" / "resumed" / "checkpoint.json"
    seen: list[int] = []
    done = threading.Event()

    def kill_after_a_checkpoint() -> None:
        while not done.is_set():
            if marker.exists():
                seen.append(json.loads(marker.read_text())["iteration"])
                for pid, cmd in processes_with(token):
                    if "SparkSubmit" in cmd:
                        os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_a_checkpoint)
    killer.start()
    try:
        printed: list[str] = []
        run = run_probe(env, "probe_resume", "2026-01-28", output=printed)
    finally:
        done.set()
        killer.join()
    assert seen, "no checkpoint was written before the run ended"
    assert run["state"] == "success" and run["tries"]["train"] == 2, run
    manifest = json.loads((root / c.MANIFESTS / "train" / "resumed.json").read_text())
    assert manifest["fit"]["resumed_from_iteration"] >= seen[0] >= 2, manifest["fit"]
    assert manifest["params"]["max_iter"] == 14
    assert (root / c.MODELS / "runs" / "resumed" / "factors" / "users").is_dir()
    assert not marker.exists()  # a finished model leaves no checkpoint behind
    logs = printed[0] + "".join(
        p.read_text() for p in (tmp_path / "airflow_home" / "logs").rglob("*.log")
    )
    resumed_at = manifest["fit"]["resumed_from_iteration"]
    assert f"resuming from the factor checkpoint after iteration {resumed_at}" in logs
    # One on-call record per try: the killed one (to be retried), then the one that finished.
    first, second = tries_of(root)
    assert (first["try_number"], first["outcome"], first["exit_class"]) == (
        1,
        "retried",
        "retryable",
    )
    assert (second["try_number"], second["outcome"]) == (2, "succeeded")
    assert second["app_id"] and second["health"]["tasks"] > 0 and "log" not in second["health"]
    assert second["run_id"] == first["run_id"] and second["dag_id"] == "probe_resume"
