"""Failure recovery on a real Spark standalone cluster: master, two workers, History Server.

Started from the pinned pyspark by ``musicrec.cluster`` (what ``make cluster-up`` runs), one
core per worker, so each application gets two single-core executors, one per worker. Every
test kills something while a job runs and checks the job's result against an undisturbed run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.monitoring import executor_health
from musicrec.runtime import submit
from musicrec.runtime.cluster import NOT_ANSWERING, StandaloneCluster, alive_workers, free_port
from pyspark.testing import assertDataFrameEqual

from tests import procs
from tests.conftest import FAULT_DAY, ROOT, make_data_root
from tests.jobs import run_job

pytestmark = [pytest.mark.cluster, pytest.mark.fault]


class Submitted:
    """A spark-submit on the cluster with its driver REST API on a known port."""

    def __init__(self, cluster: StandaloneCluster, cmd_for: Callable[[dict], list[str]]):
        self.ui = free_port()
        conf = {
            "spark.ui.enabled": "true",
            "spark.ui.port": str(self.ui),
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": cluster.event_dir.as_uri(),
        }
        self.proc = subprocess.Popen(
            cmd_for(conf),
            env=submit.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.app_id: str | None = None
        self.killed: list[str] = []
        self.thread: threading.Thread | None = None

    def api(self, path: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.ui}/api/v1/applications"
        if self.app_id is None:
            with urllib.request.urlopen(url, timeout=5) as response:
                self.app_id = json.load(response)[0]["id"]
        with urllib.request.urlopen(f"{url}/{self.app_id}/{path}", timeout=5) as response:
            return list(json.load(response))

    def when(self, ready: Callable[[Submitted], bool], action: Callable[[], None]) -> None:
        """Poll the driver in the background; run ``action`` once ``ready`` holds."""

        def loop() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if ready(self):
                        action()
                        return
                except NOT_ANSWERING + (ValueError, LookupError):
                    pass  # the driver UI is not up yet (or half up), or no executors yet
                time.sleep(0.3)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def busy_executor(self) -> str | None:
        busy = [e for e in self.api("executors") if e["id"] != "driver" and e["activeTasks"]]
        return busy[0]["id"] if busy else None

    def kill_executor(self, executor_id: str) -> None:
        pid = executor_pid(self.app_id or "", executor_id)
        os.kill(pid, signal.SIGKILL)
        self.killed.append(executor_id)

    def finish(self, timeout: float = 900) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        if self.thread is not None:
            self.thread.join(timeout=10)
        return self.proc.returncode, out, err

    def summary(self, cluster: StandaloneCluster) -> dict:
        assert self.app_id is not None
        log = executor_health.find_log(cluster.event_dir, self.app_id)
        assert log is not None, f"no event log for {self.app_id}"
        return executor_health.summarize(log)


def executor_pid(app_id: str, executor_id: str) -> int:
    """The executor JVM, found in the workers' process list by application and executor id."""
    for p in procs.processes():
        args = p.cmdline.split()
        if "CoarseGrainedExecutorBackend" not in p.cmdline or app_id not in args:
            continue
        if args[args.index("--executor-id") + 1] == executor_id:
            return p.pid
    raise LookupError(f"no JVM for executor {executor_id} of {app_id}")


def completed_stages(job: Submitted, name_part: str) -> int:
    return sum(1 for s in job.api("stages?status=complete") if name_part in s["name"])


def lost(summary: dict) -> list[dict]:
    return executor_health.lost_executors(summary)


# -- ALS training -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def als_table(tmp_path_factory) -> Path:
    from musicrec.generator.interactions import SIZES, interactions, write_table

    table = tmp_path_factory.mktemp("als") / "lake" / "interactions" / "artist"
    write_table(interactions(SIZES["tiny"], seed=3), table)
    return table


# Per layout: the regulariser (MLlib scales it by row counts, the grid layouts do not) and
# the stage every iteration completes, by which training progress is read.
LAYOUT_RUNS = {
    "mllib": ("0.05", "aggregate at ALS", "12"),
    "half-gridify": ("0.5", "half_gridify.py", "12"),
    "full-gridify": ("0.5", "full_gridify.py", "6"),  # exact solves, several jobs per half
}


def train_args(root: Path, table: Path, model_id: str, layout: str = "mllib") -> list[str]:
    from musicrec.generator.interactions import AS_OF

    return [
        *["--data-root", str(root), "--interactions", str(table), "--as-of", AS_OF],
        *["--model-id", model_id, "--rank", "16", "--num-blocks", "2"],
        *["--max-iter", LAYOUT_RUNS[layout][2]],
        *["--alpha", "10", "--reg-param", LAYOUT_RUNS[layout][0], "--layout", layout],
    ]


def holdout_ndcg(spark, table: Path, model_dir: Path) -> float:
    from musicrec.evaluation.ranking import score_model
    from musicrec.generator.interactions import AS_OF
    from musicrec.lake import io
    from musicrec.model import factors, scoring

    model = factors.load(spark, model_dir)
    items, known = scoring.item_matrix(model.items)
    train = io.read_split(spark, table, AS_OF, c.SPLIT_TRAIN)
    holdout = io.read_split(spark, table, AS_OF, c.SPLIT_HOLDOUT)
    scores = score_model(spark, model.users, items, known, train, holdout)
    return float(scores["all"]["ndcg@10"])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", list(LAYOUT_RUNS))
def test_als_training_survives_a_killed_executor(
    healthy_cluster, als_table, tmp_path, spark, layout
):
    root = tmp_path / "data"
    calm_args = train_args(root, als_table, "undisturbed", layout)
    assert run_job("train", calm_args) == 0  # the same seed on the embedded master
    stage = LAYOUT_RUNS[layout][1]

    job = Submitted(
        healthy_cluster,
        lambda conf: submit.command(
            "train", train_args(root, als_table, "killed", layout), healthy_cluster.master_url, conf
        ),
    )
    # Mid-training: a few iterations done (MLlib ends each with an `aggregate at ALS.scala`,
    # the grid layouts run a job per half-iteration). Grid tasks last a fraction of a
    # second here: an executor is killed busy if caught so, else idle (its cached blocks
    # are lost either way).
    done_at_kill: list[int] = []

    def kill() -> None:
        done_at_kill.append(completed_stages(job, stage))
        executors = [e["id"] for e in job.api("executors") if e["id"] != "driver"]
        job.kill_executor(job.busy_executor() or executors[0])

    job.when(
        lambda j: completed_stages(j, stage) >= 4
        and (j.busy_executor() is not None or completed_stages(j, stage) >= 8),
        kill,
    )
    code, _, err = job.finish()
    assert code == 0, err[-4000:]
    assert job.killed, "the executor was not killed during training"
    # Killed with most of the 12 iterations still to run: its cached blocks and map outputs
    # were lost mid-fit. (Whether one of its tasks was running at that instant is timing:
    # ALS tasks here last a fraction of a second, so ExecutorLostFailure is not asserted.)
    assert done_at_kill and done_at_kill[0] < (12 if layout == "mllib" else 20), done_at_kill
    summary = job.summary(healthy_cluster)
    assert [e["executor_id"] for e in lost(summary)] == job.killed, summary["executors_removed"]

    models = root / c.MODELS / "runs"
    calm = holdout_ndcg(spark, als_table, models / "undisturbed")
    disturbed = holdout_ndcg(spark, als_table, models / "killed")
    assert calm > 0.05  # a model that learned something, so 2% is a meaningful bound
    assert abs(disturbed - calm) <= 0.02 * calm, (calm, disturbed)


# -- ingestion ----------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_ingest_output_is_identical_after_a_killed_executor(
    healthy_cluster, fault_landing, tmp_path, spark
):
    day = FAULT_DAY.isoformat()
    interval = ["--start", day, "--end", (FAULT_DAY + timedelta(days=1)).isoformat()]
    calm_root = make_data_root(tmp_path / "calm", fault_landing)
    assert run_job("ingest", ["--data-root", str(calm_root), *interval]) == 0

    root = make_data_root(tmp_path / "killed", fault_landing)
    job = Submitted(
        healthy_cluster,
        lambda conf: submit.command(
            "ingest", ["--data-root", str(root), *interval], healthy_cluster.master_url, conf
        ),
    )
    job.when(
        lambda j: j.busy_executor() is not None,
        lambda: job.kill_executor(job.busy_executor() or "0"),
    )
    code, _, err = job.finish()
    assert code == 0, err[-4000:]
    assert job.killed and lost(job.summary(healthy_cluster)), (
        "no executor was lost during ingestion"
    )

    for table in (c.ACCEPTED_EVENTS, c.QUARANTINE_EVENTS):
        expected = spark.read.parquet(str(calm_root / table))
        actual = spark.read.parquet(str(root / table))
        assertDataFrameEqual(actual, expected.collect())
    manifests = [
        json.loads(next((r / c.MANIFESTS / "ingest").rglob("*.json")).read_text())["counts"]
        for r in (calm_root, root)
    ]
    assert manifests[0] == manifests[1]
    leftovers = [p for p in (root / c.ACCEPTED_EVENTS).rglob("*") if ".spark-staging" in p.name]
    assert not leftovers


# -- workers ------------------------------------------------------------------------------

SLOW = ROOT / "tests" / "apps" / "slow_shuffle_job.py"


def slow_job(cluster: StandaloneCluster, tmp_path: Path, *shape: str) -> Submitted:
    """``shape``: map tasks and seconds per task (default 8 x 2 s)."""
    args = [str(tmp_path / "ck"), str(tmp_path / "out"), *shape]
    return Submitted(cluster, lambda conf: submit.app_command(SLOW, args, cluster.master_url, conf))


def worker_of(cluster: StandaloneCluster, job: Submitted, executor_id: str) -> str:
    """Name (worker-N) of the worker running an executor, from the executor's work folder."""
    pid = executor_pid(job.app_id or "", executor_id)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    return next(n for n in cluster.pids if n.startswith("worker-") and f"/{n}/" in cwd + "/")


def result_rows(out: str) -> int:
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return int(json.loads(line[7:])["rows"])


@pytest.mark.timeout(600)
def test_a_killed_worker_leaves_the_job_to_the_other(healthy_cluster, tmp_path):
    job = slow_job(healthy_cluster, tmp_path)
    victim: list[str] = []

    def kill_worker() -> None:
        executor = job.busy_executor() or "0"
        victim.append(worker_of(healthy_cluster, job, executor))
        healthy_cluster.kill(victim[0])  # the worker JVM, no goodbye

    job.when(lambda j: j.busy_executor() is not None, kill_worker)
    code, out, err = job.finish()
    assert code == 0, err[-4000:]
    assert victim and result_rows(out) == 97
    summary = job.summary(healthy_cluster)
    assert len(lost(summary)) == 1, summary["executors_removed"]  # its executor went with it
    status = healthy_cluster.wait_for(
        lambda s: s is not None and len(alive_workers(s)) == 1, 60, "the master to drop it"
    )
    assert status is not None


@pytest.mark.timeout(600)
def test_a_decommissioned_worker_hands_over_its_shuffle_files(healthy_cluster, tmp_path):
    # Long enough that the decommissioned executor migrates its map outputs and leaves
    # while the other one is still mapping: the reduce stage must then fetch the migrated
    # copies, not the lost originals.
    job = slow_job(healthy_cluster, tmp_path, "10", "2.5")
    victim: list[str] = []

    def decommission() -> None:
        # Map outputs exist on both executors, the map stage is still running.
        executor = job.busy_executor() or "0"
        victim.append(worker_of(healthy_cluster, job, executor))
        healthy_cluster.kill(victim[0], signal.SIGPWR)

    def some_maps_done(j: Submitted) -> bool:
        done = [e for e in j.api("executors") if e["id"] != "driver" and e["completedTasks"]]
        return len(done) == 2 and j.busy_executor() is not None

    job.when(some_maps_done, decommission)
    try:
        code, out, err = job.finish()
    finally:
        if victim:  # a decommissioned worker takes no more work: replace it
            healthy_cluster.kill(victim[0])
    assert code == 0, err[-4000:]
    assert victim and result_rows(out) == 97
    summary = job.summary(healthy_cluster)
    removed = summary["executors_removed"]
    assert removed and all("ecommission" in r["reason"] for r in removed), removed
    # No fetch failure and no failed task. Map tasks that ran on the leaving executor are
    # still re-run once (a resubmitted stage): Spark trusts a migrated map output only if it
    # moved to another *host*, and on this one machine every executor is on 127.0.0.1.
    assert summary["fetch_failures"] == 0 and summary["failed_tasks"] == 0, summary


# -- a poison partition -------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_a_poison_partition_fails_fast_naming_the_executor_loss(healthy_cluster, tmp_path):
    from musicrec.runtime.spark_conf import RESILIENCE

    poison = ROOT / "tests" / "apps" / "poison_job.py"
    root = tmp_path / "data"
    job = Submitted(
        healthy_cluster,
        lambda conf: submit.app_command(
            poison,
            ["--data-root", str(root), "--event-log-dir", str(healthy_cluster.event_dir)],
            healthy_cluster.master_url,
            conf,
        ),
    )
    job.when(lambda j: j.busy_executor() is not None, lambda: None)  # learns the app id
    code, out, err = job.finish()
    assert code == c.EXIT_POISON_TASK, err[-4000:]
    # spark-submit relays the Python driver's log on its stdout, Spark's own on stderr.
    assert "POISON TASK (not retryable)" in out and "ExecutorLostFailure" in out, out[-3000:]
    assert "RESULT" not in out
    summary = job.summary(healthy_cluster)
    max_failures = int(RESILIENCE["spark.task.maxFailures"][0])
    attempts = summary["failed_task_reasons"].get("ExecutorLostFailure", 0)
    assert 1 <= len(lost(summary)) <= max_failures, summary["executors_removed"]
    assert 1 <= attempts <= max_failures, summary


# -- the DAG on the cluster ---------------------------------------------------------------


@pytest.mark.airflow
@pytest.mark.timeout(900)
def test_the_dag_runs_on_the_cluster_by_changing_only_the_connection(
    healthy_cluster, clean_landing
):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import airflow_local

    # The data root whose spark-events folder the cluster's History Server reads.
    root = make_data_root(healthy_cluster.event_dir.parent.parent, clean_landing)
    assert root / "spark-events" == healthy_cluster.event_dir
    history_file = root / c.EXECUTOR_HEALTH_HISTORY
    before = len(history_file.read_text().splitlines()) if history_file.exists() else 0
    env = airflow_local.environment(
        root.parent / "airflow_home", root, master=healthy_cluster.master_url
    )
    airflow_local.prepare_home(env)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_dag.py"), "2026-02-01"]
        + ["--mark-success", "prepare|train|evaluate|publish"],
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )
    runs = [json.loads(x[7:]) for x in out.stdout.splitlines() if x.startswith("DAGRUN ")]
    assert runs, out.stdout[-2000:] + out.stderr[-4000:]
    assert runs[0]["tasks"]["ingest"] == runs[0]["tasks"]["validate"] == "success", runs
    history = [json.loads(x) for x in history_file.read_text().splitlines()[before:]]
    assert [h["app_name"] for h in history] == ["musicrec-ingest", "musicrec-validate"]
    assert all(h["executors_added"] >= 2 for h in history)  # executor JVMs on the workers
    assert (root / c.ACCEPTED_EVENTS / "event_date=2026-02-01").is_dir()
    # The operator's extra link points at the History Server: it lists both applications.
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(
            healthy_cluster.history_url + "/api/v1/applications", timeout=10
        ) as r:
            listed = {a["id"] for a in json.load(r)}
        if {h["app_id"] for h in history} <= listed or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert {h["app_id"] for h in history} <= listed
