"""The on-call view in a real browser, on a real api-server and History Server.

Debian's chromium driven by playwright (never ``playwright install``): log in through Airflow's
login page, open the view from the Browse menu, read the rows of a seeded history (a lost
executor, a poison task, an ingest that failed before any Spark task ran), the trouble filter,
the per-day plot, and follow a History Server link to the application. Anonymous and forged
requests to the view and its API are refused like ``/api/v2``.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.monitoring import tries
from musicrec.runtime import cluster

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_local

pytestmark = pytest.mark.airflow
CHROMIUM = "/usr/bin/chromium"


def status(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def real_application(events: Path, name: str) -> str:
    """A small Spark application with its event log in ``events``: the link's target."""
    code = (
        "import sys\n"
        "from pyspark.sql import SparkSession\n"
        "spark = (SparkSession.builder.master('local[1]').appName(sys.argv[2])\n"
        "    .config('spark.eventLog.enabled', 'true').config('spark.eventLog.dir', sys.argv[1])\n"
        "    .config('spark.ui.enabled', 'false').getOrCreate())\n"
        "spark.range(100).count()\n"
        "print(spark.sparkContext.applicationId)\n"
        "spark.stop()\n"
    )
    events.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", code, events.as_uri(), name],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    return out.stdout.strip().splitlines()[-1]


def health(app_id: str, name: str, **fields) -> dict:
    return {
        "app_id": app_id,
        "app_name": name,
        "log": f"/srv/secret/spark-events/{app_id}",  # a server path: never shown
        "tasks": 40,
        "executors_added": 2,
        "executors_removed": [],
        "failed_tasks": 0,
        "failed_task_reasons": {},
        "retried_tasks": 0,
        "fetch_failures": 0,
        "resubmitted_stages": 0,
        "failed_stages": [],
        "gc_time_s": 0.4,
        "spill_disk_mb": 0.0,
        **fields,
    }


def seed(data: Path, airflow: str) -> dict[str, str]:
    """Five task tries and one application run outside Airflow, over the last days."""
    now = datetime.now(UTC).replace(microsecond=0)
    events = data / "spark-events"
    apps = {
        "lost": real_application(events, "musicrec-train"),
        "poison": "app-20261129101500-0002",
        "clean": "app-20261130101500-0003",
        "demo": "local-1764500000000",
    }

    def a_try(task, logical, try_number, result, code, klass, ended, app=None, error=None):
        run_id = f"scheduled__{logical}T00:00:00+00:00"
        return tries.record(
            dag_id="musicrec_pipeline",
            run_id=run_id,
            logical_date=f"{logical}T00:00:00+00:00",
            task_id=task,
            try_number=try_number,
            result=result,
            code=code,
            klass=klass,
            started_at=ended - timedelta(seconds=90),
            ended_at=ended,
            log_url=f"{airflow}/dags/musicrec_pipeline/runs/{run_id}/tasks/{task}"
            f"?try_number={try_number}",
            health=app,
            error=error,
        )

    lost = health(
        apps["lost"],
        "musicrec-train",
        executors_removed=[{"executor_id": "1", "reason": "Command exited with code 137"}],
        failed_tasks=3,
        failed_task_reasons={"ExecutorLostFailure": 3},
        retried_tasks=3,
        resubmitted_stages=1,
    )
    poison = health(
        apps["poison"],
        "musicrec-prepare",
        executors_removed=[
            {"executor_id": str(i), "reason": "Command exited with code 137"} for i in (1, 2)
        ],
        failed_tasks=4,
        failed_task_reasons={"ExecutorLostFailure": 4},
    )
    rows = [
        a_try("train", "2026-11-26", 1, "succeeded", 0, "ok", now - timedelta(days=3), lost),
        a_try(
            "prepare",
            "2026-11-27",
            1,
            "failed",
            4,
            "poison task",
            now - timedelta(days=2),
            poison,
            "NOT RETRYABLE: spark-submit prepare failed (exit code 4)",
        ),
        a_try(
            "ingest",
            "2026-11-28",
            1,
            "retried",
            1,
            "retryable",
            now - timedelta(days=1, minutes=10),
            None,
            "spark-submit ingest failed (exit code 1). missing landing hours 03, 04",
        ),
        a_try(
            "ingest",
            "2026-11-28",
            2,
            "failed",
            1,
            "retryable",
            now - timedelta(days=1),
            None,
            "spark-submit ingest failed (exit code 1). missing landing hours 03, 04",
        ),
        a_try(
            "validate",
            "2026-11-29",
            1,
            "succeeded",
            0,
            "ok",
            now - timedelta(hours=2),
            health(apps["clean"], "musicrec-validate"),
        ),
    ]
    for row in rows:
        tries.append(data, row)
    history = data / c.EXECUTOR_HEALTH_HISTORY
    demo = health(apps["demo"], "musicrec-ingest", end_ms=int(now.timestamp() * 1000))
    history.write_text(
        "".join(json.dumps(h) + "\n" for h in (lost, poison, health(apps["clean"], "v"), demo))
    )
    return apps


@pytest.mark.timeout(420)
def test_on_call_reads_the_view_in_a_browser(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install chromium"

    data = tmp_path / "data"
    port = cluster.free_port()
    apps = seed(data, f"http://127.0.0.1:{port}")
    env = airflow_local.environment(tmp_path / "home", data)
    history_port = cluster.free_port()
    history_url = f"http://{cluster.HOST}:{history_port}"
    env["MUSICREC_HISTORY_SERVER_URL"] = history_url
    airflow_local.prepare_home(env)
    password = secrets.token_urlsafe(8)
    live = airflow_local.service_environment(env, port, password)
    history = cluster.start_history_server(
        data / "spark-events", history_port, tmp_path / "history.log"
    )
    procs = {"history-server": history}
    procs.update(airflow_local.start_services(live, only=("api-server",)))
    try:
        api = airflow_local.Api(live["AIRFLOW__API__BASE_URL"], password)
        api.wait_up(procs)
        base = live["AIRFLOW__API__BASE_URL"]

        # -- refused without a login, like Airflow's own API ---------------------------------
        forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.Zm9yZ2Vk"}
        for path in ("/musicrec-oncall/", "/musicrec-oncall/api/tries?all=true"):
            assert status(base + path)[0] == 401, path
            assert status(base + path, forged)[0] in (401, 403), path
        assert status(base + "/api/v2/dags")[0] == 401
        for path in ("/musicrec-oncall/docs", "/musicrec-oncall/openapi.json"):
            assert status(base + path)[0] in (401, 404), path
        api.login()
        code, body = status(
            base + "/musicrec-oncall/api/tries?all=true",
            {"Authorization": f"Bearer {api.token}"},
        )
        assert code == 200 and "/srv/secret" not in body and str(data) not in body
        assert len(json.loads(body)) == 6  # five tries and the application outside Airflow

        cluster.StandaloneCluster.wait_http(
            f"{history_url}/api/v1/applications/{apps['lost']}", 90.0, "the seeded application"
        )
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            # -- log in through the login page --------------------------------------------
            page.goto(base + "/")
            page.wait_for_url(re.compile(r"/auth/login"), timeout=60_000)
            page.get_by_label(re.compile("username", re.I)).fill(airflow_local.USER)
            page.get_by_label(re.compile("password", re.I)).fill(password)
            page.get_by_role("button", name=re.compile("sign in|log ?in", re.I)).click()
            # -- Browse > Executor health ---------------------------------------------------
            page.get_by_role("button", name=re.compile("^browse$", re.I)).click()
            page.get_by_role("menuitem", name="Executor health").click()
            view = page.frame_locator("iframe").first
            table = view.locator("tbody tr")
            expect(view.locator("h1")).to_contain_text("executor health", ignore_case=True)
            # Trouble only (the default): the lost executor, the poison task, both ingest
            # tries that failed before any Spark task ran; not the clean tries.
            expect(table).to_have_count(4, timeout=30_000)
            text = view.locator("tbody").inner_text()
            assert "Command exited with code 137" in text and "poison task" in text
            assert text.count("no Spark application ran") == 2
            assert "2026-11-28" in text and "scheduled__2026-11-28" in text
            assert apps["clean"] not in text and apps["demo"] not in text
            assert "/srv/secret" not in view.locator("body").inner_text()
            ingest = view.locator("tr[data-task='ingest']")
            expect(ingest.locator(".badge")).to_have_text(["failed", "retried"])
            expect(ingest.first.locator("a.log")).to_have_attribute(
                "href", re.compile(r"tasks/ingest\?try_number=2$")
            )
            # -- the plot: a bar for each day with trouble, none for a quiet day -----------
            bars = view.locator("svg.perday rect[data-series]")
            assert bars.count() >= 4
            lost_day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
            assert (
                view.locator(
                    f"svg.perday rect[data-series='executors_lost'][data-day='{lost_day}']"
                ).count()
                == 1
            )
            # -- all tries ------------------------------------------------------------------
            view.get_by_role("link", name="all tries").click()
            expect(table).to_have_count(6, timeout=30_000)
            outside = view.locator("tbody").inner_text()
            assert apps["clean"] in outside and "outside Airflow" in outside
            view.get_by_role("link", name="trouble only").click()
            expect(table).to_have_count(4, timeout=30_000)
            # -- the History Server link opens the application ------------------------------
            with page.context.expect_page() as opened:
                view.locator(f"a.history:text('{apps['lost']}')").click()
            spark = opened.value
            spark.wait_for_load_state()
            assert spark.url.startswith(history_url)
            expect(spark.locator("body")).to_contain_text("musicrec-train", timeout=60_000)
            spark.close()
            page.screenshot(path=str(tmp_path / "oncall.png"), full_page=True)
            # -- the log link takes the Airflow page itself to the try's log ----------------
            view.locator("tr[data-task='ingest'] a.log").first.click()
            page.wait_for_url(re.compile(r"/tasks/ingest\?try_number=2$"), timeout=30_000)
            browser.close()
    finally:
        airflow_local.stop_services(live, procs)
