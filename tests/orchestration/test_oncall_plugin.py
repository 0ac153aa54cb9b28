"""The on-call plugin's view and API over the executor-health history; the History link."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def load_plugin():
    spec = importlib.util.spec_from_file_location(
        "musicrec_oncall", ROOT / "plugins" / "musicrec_oncall.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_view_lists_tries_in_trouble_and_applications_outside_airflow(tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient
    from musicrec.monitoring import tries

    now = datetime.now(UTC)
    quiet = {"app_id": "app-1", "app_name": "musicrec-ingest", "tasks": 5, "failed_tasks": 0}
    lost = {
        "app_id": "app-2",
        "app_name": "musicrec-train",
        "tasks": 9,
        "failed_tasks": 2,
        "executors_removed": [{"executor_id": "1", "reason": "Command exited with code 137"}],
        "failed_task_reasons": {"ExecutorLostFailure": 2},
        "log": str(tmp_path / "spark-events" / "app-2"),  # a server path: never shown
    }
    decommissioned = quiet | {
        "app_id": "app-3",
        "executors_removed": [
            {"executor_id": "2", "reason": "Executor decommission: worker decommissioned"}
        ],
        "resubmitted_stages": 1,
    }

    def a_try(task, n, result, app, minutes_ago, error=None):
        return tries.record(
            dag_id="musicrec_pipeline",
            run_id="r1",
            logical_date="2026-11-20T00:00:00+00:00",
            task_id=task,
            try_number=n,
            result=result,
            code=0 if app else 1,
            klass="ok" if result == "succeeded" else "retryable",
            started_at=now - timedelta(minutes=minutes_ago + 1),
            ended_at=now - timedelta(minutes=minutes_ago),
            log_url=f"http://a/{task}/{n}",
            health=app,
            error=error,
        )

    for row in (
        a_try("ingest", 1, "succeeded", quiet, 50),
        a_try("train", 1, "succeeded", lost, 40),
        a_try("validate", 1, "retried", None, 30, "spark-submit validate failed (exit code 1)"),
        a_try("prepare", 1, "succeeded", decommissioned, 20),
    ):
        tries.append(tmp_path, row)
    outside = {
        "app_id": "local-7",
        "app_name": "musicrec-evaluate",
        "tasks": 3,
        "end_ms": int(now.timestamp() * 1000),
    }
    history = tmp_path / "monitoring" / "executor_health.jsonl"
    history.write_text("".join(json.dumps(a) + "\n" for a in (quiet, lost, outside)) + "{cut")
    monkeypatch.setenv("AIRFLOW_VAR_MUSICREC_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("MUSICREC_HISTORY_SERVER_URL", "http://history:18080")
    plugin = load_plugin()
    from airflow.api_fastapi.core_api.security import get_user

    anonymous = TestClient(plugin.app)  # no auth manager runs here: nobody is let in
    assert anonymous.get("/api/tries").status_code in (401, 403, 500)
    plugin.app.dependency_overrides[get_user] = lambda: "on-call"  # as if logged in
    client = TestClient(plugin.app)
    trouble = client.get("/api/tries").json()
    # The retried try (no Spark application at all) and the lost executor; a planned
    # decommission is no trouble (executor_health.trouble, the alerts' definition).
    assert [(r["task_id"], r["try_number"]) for r in trouble] == [("validate", 1), ("train", 1)]
    assert trouble[0]["trouble"] == ["retried (retryable)"] and trouble[0]["app_id"] is None
    every = client.get("/api/tries?all=true").json()
    # Newest first; the application run outside Airflow is a row, those a try names are not.
    assert [r["app_id"] for r in every] == ["local-7", "app-3", None, "app-2", "app-1"]
    assert every[0]["dag_id"] is None and every[0]["task_id"] == "musicrec-evaluate"
    assert client.get("/api/tries?limit=0").status_code == 422
    page = client.get("/").text
    assert "Command exited with code 137" in page and "app-1" not in page
    assert "no Spark application ran" in page and "exit code 1" in page
    assert "http://history:18080/history/app-2/jobs/" in page and "http://a/train/1" in page
    assert str(tmp_path) not in page and str(tmp_path) not in client.get("/api/tries").text
    assert "<svg" in page and "0 {}" not in page
    assert "outside Airflow" in client.get("/?all=true").text
    assert client.get("/docs").status_code == 404  # no CDN-loaded docs pages
    per_day = client.get("/api/per-day?days=7").json()
    assert len(per_day) == 7 and per_day[-1]["day"] == now.date().isoformat()
    names = [v["name"] for v in plugin.MusicrecOnCallPlugin.external_views]
    assert names == ["Executor health"]


def test_history_link_points_at_the_application():
    from musicrec.orchestration.links import SparkHistoryLink

    operator = SimpleNamespace(_hook=SimpleNamespace(health={"app_id": "local-123"}))
    link = SparkHistoryLink().get_link(operator, ti_key=None)
    assert link == "http://127.0.0.1:18080/history/local-123/jobs/"
    assert SparkHistoryLink().get_link(SimpleNamespace(), ti_key=None) == ""
