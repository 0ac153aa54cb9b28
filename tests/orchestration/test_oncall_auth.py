"""The on-call view behind Airflow's login, on a real api-server: anonymous and forged
requests are refused like /api/v2, a logged-in user gets the page."""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.request

import pytest
from musicrec import constants as c
from musicrec.runtime.cluster import free_port

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_local

pytestmark = pytest.mark.airflow


def status(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.timeout(600)
def test_the_view_and_its_api_need_an_airflow_login(tmp_path):
    data = tmp_path / "data"
    history = data / c.EXECUTOR_HEALTH_HISTORY
    history.parent.mkdir(parents=True)
    record = {
        "app_id": "app-9",
        "app_name": "musicrec-train",
        "executors_removed": [{"executor_id": "1", "reason": "Command exited with code 137"}],
        "failed_tasks": 1,
        "failed_task_reasons": {"ExecutorLostFailure": 1},
        "fetch_failures": 0,
        "resubmitted_stages": 0,
        "log": str(data / "spark-events" / "app-9"),
    }
    history.write_text(json.dumps(record) + "\n")
    env = airflow_local.environment(tmp_path / "home", data)
    airflow_local.prepare_home(env)
    password = secrets.token_urlsafe(8)
    live = airflow_local.service_environment(env, free_port(), password)
    procs = airflow_local.start_services(live, only=("api-server",))
    try:
        api = airflow_local.Api(live["AIRFLOW__API__BASE_URL"], password)
        api.wait_up(procs)
        base = live["AIRFLOW__API__BASE_URL"]
        forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.Zm9yZ2Vk"}
        for path in ("/musicrec-oncall/", "/musicrec-oncall/api/recent?all=true"):
            assert status(base + path)[0] == 401, path
            assert status(base + path, forged)[0] in (401, 403), path
        assert status(base + "/api/v2/dags")[0] == 401  # the same answer as Airflow's own
        for path in ("/musicrec-oncall/docs", "/musicrec-oncall/openapi.json"):
            assert status(base + path)[0] in (401, 404), path
        api.login()
        bearer = {"Authorization": f"Bearer {api.token}"}
        code, page = status(base + "/musicrec-oncall/", bearer)
        assert code == 200 and "Command exited with code 137" in page and str(data) not in page
        code, body = status(base + "/musicrec-oncall/api/recent?all=true", bearer)
        assert code == 200 and json.loads(body)[0]["app_id"] == "app-9" and str(data) not in body
        # The UI's session cookie is as good as the header.
        assert status(base + "/musicrec-oncall/", {"Cookie": f"_token={api.token}"})[0] == 200
    finally:
        airflow_local.stop_services(live, procs)
