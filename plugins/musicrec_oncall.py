"""On-call plugin: one row per Airflow task try, with its Spark application's executor health.

A FastAPI app inside the Airflow api-server (``/musicrec-oncall/``, Browse > Executor health)
reading what every try and every Spark application leave under
``<data root>/monitoring/`` (``musicrec.monitoring.tries``): DAG run, logical date, task, try,
outcome and exit-code class, executors lost and why, failed tasks by reason, fetch failures,
stage retries, GC and spill, links to the try's log and to the application in the Spark
History Server; above the table, executor losses, failed Spark tasks and failed tries per day.
Plus the History Server link on every Spark task. Nothing is read at import time.

Behind Airflow's own authentication: every route depends on the api-server's ``get_user``
(the auth manager's JWT, as a bearer token or the UI's session cookie), so an anonymous or
forged request gets 401/403 like ``/api/v2``. No generated docs pages (they load scripts
from a CDN), no external assets, and no server paths in what it shows.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse
from musicrec.monitoring import executor_health, tries
from musicrec.orchestration.links import SparkHistoryLink, application_url

PROJECT = Path(__file__).resolve().parents[1]
app = FastAPI(
    title="musicrec on-call",
    dependencies=[Depends(get_user)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
MAX_ROWS = 500


def data_root() -> Path:
    return Path(os.environ.get("AIRFLOW_VAR_MUSICREC_DATA_ROOT", str(PROJECT / "data")))


def recent(
    limit: int = 200, troubled_only: bool = True, every: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    every = tries.rows(data_root()) if every is None else every
    if troubled_only:
        every = [r for r in every if tries.trouble(r)]
    return [r | {"trouble": tries.trouble(r)} for r in every[:limit]]


@app.get("/api/tries")
def api_tries(
    all: bool = False, limit: int = Query(200, ge=1, le=MAX_ROWS)
) -> list[dict[str, Any]]:
    return recent(limit, troubled_only=not all)


@app.get("/api/per-day")
def api_per_day(days: int = Query(28, ge=1, le=366)) -> list[dict[str, Any]]:
    return tries.per_day(tries.rows(data_root()), days)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    return _e(0 if value in (None, "") else value)


def _row(r: dict[str, Any]) -> str:
    health = r.get("health") or {}
    lost = executor_health.lost_executors(health)
    lost_cell = (
        f"{len(lost)}<div class='why'>"
        + "<br>".join(f"{_e(x.get('executor_id'))}: {_e(x.get('reason'))}" for x in lost)
        + "</div>"
        if lost
        else "0"
    )
    by_reason = health.get("failed_task_reasons") or {}
    failed_cell = _num(health.get("failed_tasks")) + (
        "<div class='why'>"
        + "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in sorted(by_reason.items()))
        + "</div>"
        if by_reason
        else ""
    )
    app_id = r.get("app_id")
    if not app_id:
        app_cell = "<span class='muted'>no Spark application ran</span>"
    else:
        app_cell = (
            f"<a class='history' href='{_e(application_url(app_id))}' target='_blank' "
            f"data-out='_blank' rel='noopener'>{_e(app_id)}</a>"
        )
        if not health.get("tasks"):
            app_cell += "<div class='why'>no Spark task ran</div>"
    if r.get("dag_id"):
        run = (
            f"<div>{_e(r.get('logical_date', '')[:10] if r.get('logical_date') else '')}</div>"
            f"<div class='muted runid'>{_e(r.get('run_id'))}</div>"
        )
        outcome = r.get("outcome") or ""
        outcome_cell = (
            f"<span class='badge {outcome}'>{_e(outcome)}</span>"
            f"<div class='why'>{_e(r.get('exit_class'))}"
            + (f" (exit {_e(r.get('exit_code'))})" if r.get("exit_code") else "")
            + "</div>"
            + (f"<div class='err'>{_e(r['error'][:200])}</div>" if r.get("error") else "")
        )
        log = (
            f"<a class='log' href='{_e(r.get('log_url'))}' target='_top' data-out='_self'>log</a>"
            if r.get("log_url")
            else ""
        )
        try_cell = _num(r.get("try_number"))
    else:
        run = "<span class='muted'>outside Airflow</span>"
        outcome_cell = "<span class='muted'>not a task try</span>"
        log, try_cell = "", ""
    when = _e((r.get("ended_at") or "")[:16].replace("T", " "))
    return (
        f"<tr data-task='{_e(r.get('task_id'))}' data-outcome='{_e(r.get('outcome'))}'>"
        f"<td class='when'>{when}</td><td>{run}</td><td>{_e(r.get('task_id'))}</td>"
        f"<td class='n'>{try_cell}</td><td>{outcome_cell}</td><td>{app_cell}</td>"
        f"<td class='n'>{lost_cell}</td><td class='n'>{failed_cell}</td>"
        f"<td class='n'>{_num(health.get('retried_tasks'))}</td>"
        f"<td class='n'>{_num(health.get('fetch_failures'))}</td>"
        f"<td class='n'>{_num(health.get('resubmitted_stages'))}</td>"
        f"<td class='n'>{_num(health.get('gc_time_s'))}</td>"
        f"<td class='n'>{_num(health.get('spill_disk_mb'))}</td><td>{log}</td></tr>"
    )


# Airflow frames the view in an iframe sandboxed without allow-popups or allow-top-navigation
# (but with allow-scripts and allow-same-origin): a link to the History Server or to a log
# would do nothing. Framed, a click is replayed as a link of the Airflow page itself.
SCRIPT = """
if (window.top !== window.self) {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-out]");
    if (!link) return;
    try {
      const doc = window.parent.document;
      const out = doc.createElement("a");
      out.href = link.href; out.target = link.dataset.out; out.rel = "noopener";
      doc.body.appendChild(out); out.click(); out.remove();
      event.preventDefault();
    } catch (err) { /* not framed by Airflow's own origin: leave the link alone */ }
  });
}
"""

COLUMNS = (
    ("ended (UTC)", ""), ("logical date / DAG run", ""), ("task", ""), ("try", "n"),
    ("outcome", ""), ("Spark application", ""), ("executors<br>lost", "n"),
    ("failed<br>tasks", "n"), ("task<br>retries", "n"), ("fetch<br>failures", "n"),
    ("stage<br>retries", "n"), ("GC s", "n"), ("spill<br>MB", "n"), ("", ""),
)  # fmt: skip
HEADER = "".join(f"<th class='{k}'>{name}</th>" for name, k in COLUMNS)

STYLE = """
:root{color-scheme:light dark}
body{font:13px/1.45 Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 20px;
color:#1a202c;background:transparent}
h1{font-size:18px;font-weight:600;margin:0 0 4px}
p.sub{margin:0 0 12px;color:#4a5568}
nav a{margin-right:12px;color:#2c6fbb;text-decoration:none}nav a.on{font-weight:600;
border-bottom:2px solid #2c6fbb}
table{border-collapse:collapse;width:100%;margin-top:12px}
th{font-weight:600;font-size:12px;color:#4a5568;text-align:left;border-bottom:1px solid #cbd5e0;
padding:6px;vertical-align:bottom}
td{border-bottom:1px solid #edf2f7;padding:6px;vertical-align:top}
.runid{word-break:break-all}.err{color:#a61b1b;font-size:12px;max-width:22em}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.when{white-space:nowrap}
.muted{color:#718096;font-size:12px}.why{color:#718096;font-size:12px;text-align:left}
.badge{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;font-weight:600}
.badge.succeeded{background:#e6f4ea;color:#1e6b34}.badge.retried{background:#fff4e0;
color:#8a5300}.badge.failed{background:#fde8e8;color:#a61b1b}
svg.perday text{font-size:11px;fill:#4a5568}
a{color:#2c6fbb}
"""


@app.get("/", response_class=HTMLResponse)
def page(all: bool = False, days: int = Query(28, ge=1, le=366)) -> str:
    every = tries.rows(data_root())
    shown = recent(MAX_ROWS, troubled_only=not all, every=every)
    plot = tries.plot_svg(tries.per_day(every, days))
    body = "".join(_row(r) for r in shown) or (
        "<tr><td colspan='14' class='muted'>no task try "
        + ("recorded yet" if all else "in trouble")
        + "</td></tr>"
    )
    on_trouble, on_all = ("", "on") if all else ("on", "")
    scope = (
        "Every task try, and applications run outside Airflow"
        if all
        else "Tries that failed, were retried or lost an executor"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Executor health</title><style>{STYLE}</style></head><body>
<h1>Spark executor health, by task try</h1>
<p class="sub">{scope}: {len(shown)}, newest first.</p>
<nav><a class="{on_trouble}" href="?all=false">trouble only</a>
<a class="{on_all}" href="?all=true">all tries</a></nav>
<figure style="margin:12px 0 0">{plot}<figcaption class="muted">last {days} days, by the day a try
ended (UTC)</figcaption></figure>
<table><thead><tr>{HEADER}</tr></thead><tbody>{body}</tbody></table><script>{SCRIPT}</script></body></html>"""


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
