"""The Airflow DAG: integrity at parse time, and real dag.test() runs on local Spark."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
from datetime import date
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.runtime.cluster import free_port

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_local

DAG_FILE = ROOT / "dags" / "musicrec_pipeline.py"
ORDER = ["ingest", "validate", "prepare", "train", "evaluate", "publish"]


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["musicrec_pipeline"]


@pytest.mark.unit
def test_parsing_imports_neither_pyspark_nor_great_expectations():
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyspark', 'great_expectations')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(DAG_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=airflow_local.environment(Path("/tmp/musicrec-parse-home"), Path("/tmp/none")),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.unit
def test_dag_integrity():
    from musicrec.orchestration.operators import MusicrecSparkSubmitOperator

    dag = load_dag()
    assert [t.task_id for t in dag.topological_sort()] == ORDER
    for upstream, downstream in zip(ORDER, ORDER[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert {"musicrec", "spark"} <= set(dag.tags) and dag.doc_md and dag.max_active_runs == 1
    for task in dag.tasks:
        assert isinstance(task, MusicrecSparkSubmitOperator)
        assert Path(task.application).is_file() and task.application.endswith(f"{task.task_id}.py")
        assert task.retries >= 2 and task.retry_exponential_backoff and task.max_retry_delay
        assert task.execution_timeout is not None and task.pool == "spark"
        assert task._conn_id == "spark_default" and task.py_files.endswith("musicrec.zip")
        assert task.owner == "data-platform" and task.on_failure_callback
    assert [a.name for a in dag.get_task("publish").outlets] == ["musicrec_recommendations"]
    assert dag.get_task("train").execution_timeout > dag.get_task("validate").execution_timeout


@pytest.mark.unit
def test_params_are_validated_by_their_schema():
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    dag = load_dag()
    params = ParamsDict(dag.params)
    params.update({"rank": 16, "item_level": "track"})
    params.validate()
    for bad in ({"rank": 0}, {"rank": 1001}, {"item_level": "album"}, {"alpha": -1}):
        candidate = ParamsDict(dag.params)
        with pytest.raises(ParamValidationError, match=next(iter(bad))):
            candidate.update(bad)
            candidate.validate()


@pytest.mark.unit
def test_params_take_their_defaults_and_bounds_from_the_config_module():
    from musicrec import config

    classes = (config.ALSConfig, config.PrepareConfig, config.PublishConfig)
    owners = {name: cls for cls in classes for name in config.settings(cls)}
    dag = load_dag()
    assert set(dag.params) <= set(owners)
    for name in dag.params:
        param, want = dag.params.get_param(name), config.param_schema(owners[name], name)
        assert param.value == want.pop("default"), name
        assert param.description == want.pop("description"), name
        assert param.schema == want, name


def run_dag(env: dict[str, str], dates: list[str], conf: dict) -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_dag.py"), *dates, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    runs = [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("DAGRUN ")]
    assert len(runs) == len(dates), out.stdout[-3000:] + out.stderr[-5000:]
    return runs


SMALL = {"window_days": 2, "rank": 8, "max_iter": 5, "top_n": 10}


@pytest.fixture(scope="module")
def airflow_root(tmp_path_factory):
    from musicrec.generator.cli import generate
    from musicrec.generator.world import WorldSpec
    from musicrec.generator.writer import FaultRates

    root = tmp_path_factory.mktemp("airflow") / "data"
    landing = root / c.LANDING_EVENTS
    spec = WorldSpec(users=300, artists=80, seed=5)
    generate(landing, date(2026, 3, 1), 5, 5000, spec, FaultRates(), processes=1)
    # A sixth day delivered broken: far more than 1% of its lines are quarantined.
    generate(
        landing,
        date(2026, 3, 6),
        1,
        5000,
        spec,
        FaultRates(malformed=0.05, missing_field=0.05),
        processes=1,
    )
    env = airflow_local.environment(root.parent / "airflow_home", root)
    airflow_local.prepare_home(env)
    return root, env


@pytest.fixture(scope="module")
def first_two_days(airflow_root) -> list[dict]:
    """dag.test() for 2026-03-01, then 03-02, in order, as the scheduler would.

    Two days, not more: each full run costs minutes, and the REST backfill below runs 03-02
    again and 03-03 for the first time, so the module sees a first day, a second day, a
    reprocessed day and a new day through the scheduler."""
    _, env = airflow_root
    return run_dag(env, ["2026-03-01", "2026-03-02"], SMALL)


@pytest.mark.airflow
@pytest.mark.timeout(2400)
def test_the_first_day_stops_at_prepare_and_the_second_publishes_for_every_user(
    airflow_root, first_two_days
):
    root, env = airflow_root
    first, second = first_two_days
    # Day one has no history to train on: prepare fails fast (no retry) and stops the chain.
    assert first["tasks"]["ingest"] == first["tasks"]["validate"] == "success"
    assert first["tasks"]["prepare"] == "failed" and first["tries"]["prepare"] == 1
    assert set(first["tasks"].values()) == {"success", "failed", "upstream_failed"}
    assert second["state"] == "success", second
    assert set(second["tasks"].values()) == {"success"}
    db = sqlite3.connect(root / c.SERVING / "serving.db")
    assert db.execute("SELECT version FROM serving_versions WHERE is_current = 1").fetchall() == [
        ("artist-2026-03-02",)
    ]
    model_users = json.loads(
        (root / c.MODELS / "runs" / "artist-2026-03-02" / "metadata.json").read_text()
    )["data"]["users"]
    served = db.execute("SELECT count(DISTINCT user_id) FROM recommendations").fetchone()[0]
    assert served == model_users > 100


def published_rows(root: Path, version: str) -> dict[str, list[tuple]]:
    """Each published table's rows, sorted, a ranked list (an array column) as a tuple."""
    import pyarrow.parquet as pq

    def row(values: dict) -> tuple:
        return tuple(tuple(v) if isinstance(v, list) else v for v in values.values())

    folder = root / c.SERVING / "versions" / version
    return {
        kind.name: sorted(map(row, pq.read_table(kind).to_pylist()))
        for kind in sorted(folder.iterdir())
        if kind.is_dir()
    }


@pytest.mark.airflow
@pytest.mark.timeout(2400)
def test_rest_backfill_of_two_days_on_a_running_airflow(airflow_root, first_two_days):
    """api-server, scheduler, dag-processor, triggerer on free ports; POST /api/v2/backfills."""
    import secrets
    import time

    root, env = airflow_root
    assert first_two_days[-1]["state"] == "success"
    before = published_rows(root, "artist-2026-03-02")
    password = secrets.token_urlsafe(8)
    live = airflow_local.service_environment(env, free_port(), password)
    # Only the backfill runs here: no scheduled run of "today" (no logs for it) beside it.
    live["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    procs = airflow_local.start_services(live)
    try:
        api = airflow_local.Api(live["AIRFLOW__API__BASE_URL"], password)
        api.wait_healthy(procs)
        api.login()
        dag_id = "musicrec_pipeline"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the dag-processor has to parse the file first
            dags = api.get("/api/v2/dags")["dags"]
            if any(d["dag_id"] == dag_id for d in dags):
                break
            time.sleep(2)
        # dag.test() labels a manual run of day D with logical date D+1 (its interval ends
        # there); the backfill's logical dates are interval starts. Drop the manual runs that
        # would share a logical date, so the backfill creates one run per day itself.
        for r in api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]:
            if "2026-03-02" <= (r["logical_date"] or "")[:10] <= "2026-03-03":
                api.delete(f"/api/v2/dags/{dag_id}/dagRuns/{r['dag_run_id']}")
        api.post(
            "/api/v2/backfills",
            {
                "dag_id": dag_id,
                "from_date": "2026-03-02T00:00:00Z",
                "to_date": "2026-03-03T00:00:00Z",
                "reprocess_behavior": "completed",
                "max_active_runs": 1,
                "dag_run_conf": SMALL,
            },
        )
        deadline = time.monotonic() + 1800
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = api.get(f"/api/v2/dags/{dag_id}/dagRuns?run_type=backfill")["dag_runs"]
            if len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs):
                break
            time.sleep(5)
        days = sorted(r["data_interval_start"][:10] for r in runs)
        assert days == ["2026-03-02", "2026-03-03"], runs
        assert [r["state"] for r in runs] == ["success"] * 2, runs
        assert all(r["conf"] == SMALL for r in runs)
    finally:
        airflow_local.stop_services(live, procs)
    assert all(p.poll() is not None for p in procs.values())
    # 03-02 ran again through the scheduler: the same published recommendations.
    assert published_rows(root, "artist-2026-03-02") == before
    db = sqlite3.connect(root / c.SERVING / "serving.db")
    assert db.execute("SELECT version FROM serving_versions WHERE is_current = 1").fetchall() == [
        ("artist-2026-03-03",)
    ]


@pytest.mark.airflow
@pytest.mark.timeout(1200)
def test_corrupted_day_stops_before_publishing_and_alerts(airflow_root):
    root, env = airflow_root
    db_path = root / c.SERVING / "serving.db"
    before = sqlite3.connect(db_path).execute("SELECT * FROM serving_versions").fetchall()
    (run,) = run_dag(env, ["2026-03-06"], SMALL)
    assert run["state"] == "failed"
    assert run["tasks"]["ingest"] == "success" and run["tasks"]["validate"] == "failed"
    assert run["tries"]["validate"] == 1  # rejected data is not retried
    for task in ORDER[2:]:
        assert run["tasks"][task] == "upstream_failed"
    assert sqlite3.connect(db_path).execute("SELECT * FROM serving_versions").fetchall() == before
    alerts = [json.loads(x) for x in (root / "alerts" / "alerts.jsonl").read_text().splitlines()]
    alert = [a for a in alerts if a["task_id"] == "validate"][-1]
    assert "expect_column_values_to_be_between(column=quarantine_ratio" in "\n".join(
        alert["error_tail"]
    )
    assert alert["data_interval"][0].startswith("2026-03-06") and alert["try_number"] == 1
    assert alert["logical_date"] and alert["log_url"] and alert["dag_id"] == "musicrec_pipeline"


@pytest.mark.unit
def test_rest_client_retries_a_locked_sqlite_database():
    """Airflow answers 503 "Database is locked" on SQLite while the scheduler writes: retried."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = [503, 503, 200]
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            code = answers.pop(0)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'{"id": 7}' if code == 200 else b'{"detail": "Database is locked"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = airflow_local.Api(f"http://127.0.0.1:{server.server_port}", "pw")
        assert api.post("/api/v2/backfills", {"dag_id": "d"}) == {"id": 7}
        assert bodies == [b'{"dag_id": "d"}'] * 3
        answers[:] = [404]
        with pytest.raises(urllib.error.HTTPError) as err:  # other errors are not retried
            api.post("/api/v2/backfills", {"dag_id": "d"})
        assert err.value.code == 404 and len(bodies) == 4
    finally:
        server.shutdown()
