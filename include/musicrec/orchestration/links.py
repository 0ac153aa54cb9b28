"""Operator extra link from each Spark task to its application in the Spark History Server."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseOperatorLink

DEFAULT_HISTORY_SERVER = "http://127.0.0.1:18080"


def history_server_url() -> str:
    return os.environ.get("MUSICREC_HISTORY_SERVER_URL", DEFAULT_HISTORY_SERVER).rstrip("/")


def application_url(app_id: str | None) -> str:
    """The application's page in the History Server (``make airflow`` starts one)."""
    return f"{history_server_url()}/history/{app_id}/jobs/" if app_id else ""


class SparkHistoryLink(BaseOperatorLink):
    """Airflow 3 computes links in the worker right after the task and keeps them as XCom;
    the application id comes from the executor-health summary the job printed."""

    name = "Spark History Server"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        hook = getattr(operator, "_hook", None)
        health = getattr(hook, "health", None) or {}
        app_id = health.get("app_id")
        return application_url(app_id)
