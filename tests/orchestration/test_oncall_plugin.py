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


def test_view_lists_only_applications_with_trouble(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    history = tmp_path / "monitoring" / "executor_health.jsonl"
    history.parent.mkdir()
    quiet = {
        "app_id": "app-1",
        "app_name": "musicrec-ingest",
        "executors_removed": [],
        "failed_tasks": 0,
        "resubmitted_stages": 0,
        "fetch_failures": 0,
    }
    lost = {
        "app_id": "app-2",
        "app_name": "musicrec-train",
        "failed_tasks": 2,
        "executors_removed": [{"executor_id": "1", "reason": "Command exited with code 137"}],
        "failed_task_reasons": {"ExecutorLostFailure": 2},
        "resubmitted_stages": 1,
        "fetch_failures": 0,
        "retried_tasks": 2,
        "log": str(tmp_path / "spark-events" / "app-2"),  # a server path: never shown
    }
    decommissioned = quiet | {
        "app_id": "app-3",
        "executors_removed": [
            {"executor_id": "2", "reason": "Executor decommission: worker decommissioned"}
        ],
        "resubmitted_stages": 1,
    }
    rows = (quiet, lost, decommissioned)
    history.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("AIRFLOW_VAR_MUSICREC_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("MUSICREC_HISTORY_SERVER_URL", "http://history:18080")
    plugin = load_plugin()
    from airflow.api_fastapi.core_api.security import get_user

    anonymous = TestClient(plugin.app)  # no auth manager runs here: nobody is let in
    assert anonymous.get("/api/recent").status_code in (401, 403, 500)
    plugin.app.dependency_overrides[get_user] = lambda: "on-call"  # as if logged in
    client = TestClient(plugin.app)
    assert [r["app_id"] for r in client.get("/api/recent").json()] == ["app-2"]
    # A planned decommission is no trouble: the alerts' definition (executor_health.trouble).
    listed = [r["app_id"] for r in client.get("/api/recent?all=true").json()]
    assert listed == ["app-3", "app-2", "app-1"]
    page = client.get("/").text
    assert "Command exited with code 137" in page and "app-1" not in page
    assert str(tmp_path) not in page and str(tmp_path) not in client.get("/api/recent").text
    assert client.get("/docs").status_code == 404  # no CDN-loaded docs pages
    assert "http://history:18080/history/app-2/jobs/" in page
    names = [v["name"] for v in plugin.MusicrecOnCallPlugin.external_views]
    assert names == ["Executor health"]


def test_history_link_points_at_the_application():
    from musicrec.orchestration.links import SparkHistoryLink

    operator = SimpleNamespace(_hook=SimpleNamespace(health={"app_id": "local-123"}))
    link = SparkHistoryLink().get_link(operator, ti_key=None)
    assert link == "http://127.0.0.1:18080/history/local-123/jobs/"
    assert SparkHistoryLink().get_link(SimpleNamespace(), ti_key=None) == ""
