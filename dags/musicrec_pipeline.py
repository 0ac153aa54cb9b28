"""
# musicrec: listening logs to recommendations

Daily chain over the logical interval `[data_interval_start, data_interval_end)`:

| task | what | fails fast (no retry) when |
|---|---|---|
| `ingest` | parse landing hours, quarantine bad records, de-duplicate, exactly once | arguments are bad |
| `validate` | Great Expectations suite on the day's accepted events, Data Docs | an expectation fails |
| `prepare` | streams -> counts -> preference/confidence over the trailing window | |
| `train` | implicit ALS in the chosen layout (param `layout`: half gridify by default, full gridify, MLlib), factor checkpoints, versioned model | |
| `evaluate` | NDCG/MAP/precision/recall/EPR vs popularity, quality gate | the gate fails |
| `publish` | top-N per user and related artists to the serving database | the model did not pass |

Every task is a spark-submit of `spark_jobs/<task>.py` through the `spark_default` connection,
with the library shipped as `--py-files`. Re-running a date replaces exactly that date's outputs.
Trigger with parameters from the UI (rank, alpha, regParam, window, item level, top-N).
Variables (read at run time): `musicrec_data_root`, `musicrec_database_url`,
`musicrec_reader_role` (PostgreSQL role granted SELECT on the published views).
Every application writes its Spark event log to `<data root>/spark-events` (History Server);
after each one an executor-health summary (executors lost and why, failed and retried tasks,
fetch failures, stage retries, GC, spill) ends the task log, is the task's XCom
`executor_health`, is appended to `<data root>/monitoring/executor_health.jsonl`, and raises a
`spark_trouble` alert when a task succeeded in trouble. Each try, whatever its outcome, is a
row of *Browse > Executor health* (`<data root>/monitoring/task_tries.jsonl`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, Param, chain
from airflow.timetables.interval import CronDataIntervalTimetable
from musicrec.config import ALSConfig, PrepareConfig, PublishConfig, param_schema
from musicrec.orchestration.notifier import MusicrecAlertNotifier
from musicrec.orchestration.operators import spark_task

PROJECT = Path(__file__).resolve().parents[1]
JOBS = PROJECT / "spark_jobs"
PY_FILES = str(PROJECT / "dist" / "musicrec.zip")
DATA = "{{ var.value.get('musicrec_data_root', '" + str(PROJECT / "data") + "') }}"
# Event logs of every application, for the History Server and the executor-health summary.
EVENTS = DATA + "/spark-events"
RECOMMENDATIONS = Asset(name="musicrec_recommendations", uri="musicrec://serving/recommendations")

INTERVAL = [
    "--start",
    "{{ data_interval_start.isoformat() }}",
    "--end",
    "{{ data_interval_end.isoformat() }}",
]
# The day processed is the data interval's start (for a manual run too, where Airflow infers
# the interval ending at the logical date): every step uses it, never {{ ds }}.
DAY = "{{ data_interval_start.strftime('%Y-%m-%d') }}"
MODEL = DATA + "/models/runs/{{ params.item_level }}-" + DAY
SPLIT = ["--interactions", DATA + "/lake/interactions/{{ params.item_level }}", "--as-of", DAY]
# The serving store: train (retention), evaluate (the champion) and publish read the same one.
STORE = [
    "--database-url",
    "{{ var.value.get('musicrec_database_url', '') }}",
    "--reader-role",
    "{{ var.value.get('musicrec_reader_role', '') }}",
]
# Trigger parameters: each default and bound comes from the config module, like the jobs'.
PARAMS = {
    name: Param(**param_schema(cls, name))
    for cls, names in (
        (ALSConfig, ("layout", "rank", "alpha", "reg_param", "max_iter")),
        (PrepareConfig, ("window_days", "item_level")),
        (PublishConfig, ("top_n",)),
    )
    for name in names
}

# (task, extra args, execution timeout): timeouts sized to each step on the embedded master.
STEPS: list[tuple[str, list[str], timedelta]] = [
    ("ingest", [*INTERVAL], timedelta(minutes=30)),
    ("validate", [*INTERVAL], timedelta(minutes=20)),
    (
        "prepare",
        [
            "--date",
            DAY,
            "--window-days",
            "{{ params.window_days }}",
            "--item-level",
            "{{ params.item_level }}",
        ],
        timedelta(minutes=30),
    ),
    (
        "train",
        [
            *SPLIT,
            "--layout",
            "{{ params.layout }}",
            "--rank",
            "{{ params.rank }}",
            "--alpha",
            "{{ params.alpha }}",
            "--reg-param",
            "{{ params.reg_param }}",
            "--max-iter",
            "{{ params.max_iter }}",
            *STORE,
        ],
        timedelta(hours=2),
    ),
    ("evaluate", [*SPLIT, "--model", MODEL, *STORE], timedelta(minutes=45)),
    (
        "publish",
        [*SPLIT, "--model", MODEL, "--top-n", "{{ params.top_n }}", *STORE],
        timedelta(minutes=30),
    ),
]

default_args = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "on_failure_callback": MusicrecAlertNotifier(),
}

with DAG(
    dag_id="musicrec_pipeline",
    description="Listening logs -> implicit ALS -> recommendations, daily",
    doc_md=__doc__,
    # A data-interval timetable: the run for day D covers [D, D+1) and starts after it ends
    # (Airflow 3's plain "@daily" would give an empty interval at the trigger time).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # backfills are explicit: `airflow backfill create` or the UI
    max_active_runs=1,  # dates build on each other: id dictionaries, champion model
    default_args=default_args,
    tags=["musicrec", "spark", "recommendations"],
    params=PARAMS,
) as dag:
    tasks = [
        spark_task(
            task_id=name,
            application=str(JOBS / f"{name}.py"),
            application_args=[
                "--data-root",
                DATA,
                "--run-id",
                "{{ run_id }}",
                "--event-log-dir",
                EVENTS,
                *args,
            ],
            py_files=PY_FILES,
            pool="spark",
            execution_timeout=timeout,
            outlets=[RECOMMENDATIONS] if name == "publish" else [],
        )
        for name, args, timeout in STEPS
    ]
    chain(*tasks)
