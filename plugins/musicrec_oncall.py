"""On-call plugin: recent Spark applications with lost executors, failed tasks, stage retries.

A FastAPI app inside the Airflow api-server (``/musicrec-oncall/``), linked from the UI's
navigation, reading the executor-health history every job appends to
``<data root>/monitoring/executor_health.jsonl``; plus the History Server link on every
Spark task. Nothing is read at import time.

Behind Airflow's own authentication: every route depends on the api-server's ``get_user``
(the auth manager's JWT, as a bearer token or the UI's session cookie), so an anonymous or
forged request gets 401/403 like ``/api/v2``. No generated docs pages (they load scripts
from a CDN), and no server paths in what it shows.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from musicrec import constants as c
from musicrec.monitoring import executor_health
from musicrec.orchestration.links import SparkHistoryLink, history_server_url

PROJECT = Path(__file__).resolve().parents[1]
app = FastAPI(
    title="musicrec on-call",
    dependencies=[Depends(get_user)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
HIDDEN = ("log",)  # server paths: not for the browser


def history_file() -> Path:
    root = os.environ.get("AIRFLOW_VAR_MUSICREC_DATA_ROOT", str(PROJECT / "data"))
    return Path(root) / c.EXECUTOR_HEALTH_HISTORY


def recent(limit: int = 200, troubled_only: bool = True) -> list[dict]:
    path = history_file()
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines()[-5000:]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    if troubled_only:
        rows = [r for r in rows if executor_health.trouble(r)]
    return rows[::-1][:limit]


@app.get("/api/recent")
def api_recent(all: bool = False, limit: int = 200) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in HIDDEN}
        for r in recent(limit, troubled_only=not all)
    ]


@app.get("/", response_class=HTMLResponse)
def page(all: bool = False) -> str:
    rows = recent(troubled_only=not all)
    base = history_server_url()
    cells = []
    for r in rows:
        lost = "; ".join(
            f"{x.get('executor_id')}: {x.get('reason')}" for x in executor_health.lost_executors(r)
        )
        reasons = ", ".join(f"{k} {v}" for k, v in (r.get("failed_task_reasons") or {}).items())
        app_id = html.escape(str(r.get("app_id")))
        cells.append(
            "<tr>"
            f"<td><a href='{base}/history/{app_id}/jobs/' target='_blank'>{app_id}</a></td>"
            f"<td>{html.escape(str(r.get('app_name')))}</td>"
            f"<td>{r.get('duration_s')}</td><td>{html.escape(lost) or '-'}</td>"
            f"<td>{r.get('failed_tasks')} {html.escape(reasons)}"
            f"</td><td>{r.get('retried_tasks')}</td><td>{r.get('fetch_failures')}</td>"
            f"<td>{r.get('resubmitted_stages')}</td><td>{r.get('gc_time_s')}</td>"
            f"<td>{r.get('spill_disk_mb')}</td></tr>"
        )
    scope = "all recent applications" if all else "applications with trouble"
    toggle = "?all=false" if all else "?all=true"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Executor health</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{border-bottom:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}</style>
</head><body><h2>Spark executor health: {scope}</h2>
<p><a href="{toggle}">toggle all / trouble only</a></p>
<table><tr><th>application</th><th>job</th><th>duration s</th><th>executors lost (reason)</th>
<th>failed tasks</th><th>retried</th><th>fetch failures</th><th>stage retries</th>
<th>GC s</th><th>spill MB</th></tr>{"".join(cells) or "<tr><td colspan=10>none</td></tr>"}
</table></body></html>"""


class MusicrecOnCallPlugin(AirflowPlugin):
    name = "musicrec_oncall"
    fastapi_apps = [{"app": app, "url_prefix": "/musicrec-oncall", "name": "Executor health"}]
    external_views = [
        {
            "name": "Executor health",
            "href": "musicrec-oncall/",
            "destination": "nav",
            "category": "browse",
            "url_route": "musicrec_executor_health",
        }
    ]
    operator_extra_links = [SparkHistoryLink()]
