"""One record per Airflow task try: what on-call reads first.

The operator appends a record when a try ends, whatever the ending (succeeded, failed and
about to be retried, failed for good, timed out): the DAG run, logical date, task, try, the
outcome and its exit-code class, the link to the try's log, and the executor-health summary of
its Spark application when one ran. A try whose application never ran a Spark task (spark-submit
refused, the job failed before its first action) is a record too, with no application or zero
tasks. Applications run outside Airflow (the demo, a job run by hand) have only their
executor-health summary; ``rows`` lists them as well. Pure Python: the api-server imports it.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from musicrec import constants as c
from musicrec.monitoring import executor_health

SUCCEEDED, RETRIED, FAILED = "succeeded", "retried", "failed"
# Exit code of spark_jobs -> what it means for on-call (constants holds the codes).
EXIT_CLASSES = {
    c.EXIT_OK: "ok",
    c.EXIT_RETRYABLE: "retryable",
    c.EXIT_BAD_ARGS: "bad input",
    c.EXIT_DATA_REJECTED: "rejected data",
    c.EXIT_POISON_TASK: "poison task",
}
TIMEOUT = "timeout"
HIDDEN = ("log",)  # the event log's server path: never shown to a browser


def exit_class(code: int | None, timed_out: bool = False) -> str:
    if timed_out:
        return TIMEOUT
    if code is None:
        return "retryable"  # no exit code: spark-submit died, or the worker lost it
    return EXIT_CLASSES.get(code, "retryable")


def outcome(failed: bool, will_retry: bool) -> str:
    if not failed:
        return SUCCEEDED
    return RETRIED if will_retry else FAILED


def record(
    *,
    dag_id: str,
    run_id: str,
    logical_date: str | None,
    task_id: str,
    try_number: int,
    result: str,
    code: int | None,
    klass: str,
    started_at: datetime,
    ended_at: datetime,
    log_url: str | None,
    health: dict[str, Any] | None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "logical_date": logical_date,
        "task_id": task_id,
        "try_number": try_number,
        "outcome": result,
        "exit_code": code,
        "exit_class": klass,
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat(),
        "duration_s": round((ended_at - started_at).total_seconds(), 1),
        "log_url": log_url,
        "error": (error or "").strip().splitlines()[0][:300] if error else None,
        "app_id": (health or {}).get("app_id"),
        "health": {k: v for k, v in (health or {}).items() if k not in HIDDEN} or None,
    }


def append(data_root: Path, row: dict[str, Any]) -> None:
    """One JSON line (a single small O_APPEND write: concurrent tries never interleave)."""
    path = Path(data_root) / c.TASK_TRIES_HISTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(json.dumps(row, default=str) + "\n")


def _read(path: Path, tail: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines()[-tail:]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-write: the others still count
    return rows


def rows(data_root: Path, tail: int = 5000) -> list[dict[str, Any]]:
    """Task tries and applications run outside Airflow, newest first.

    An application summary becomes a row of its own only when no try names it."""
    root = Path(data_root)
    tries = _read(root / c.TASK_TRIES_HISTORY, tail)
    claimed = {t.get("app_id") for t in tries if t.get("app_id")}
    outside = []
    for app in _read(root / c.EXECUTOR_HEALTH_HISTORY, tail):
        if app.get("app_id") in claimed:
            continue
        ended = app.get("end_ms") or app.get("start_ms")
        at = datetime.fromtimestamp(ended / 1000, UTC).isoformat() if ended else None
        outside.append(
            {
                "dag_id": None,
                "run_id": None,
                "logical_date": None,
                "task_id": app.get("app_name"),
                "try_number": None,
                "outcome": None,  # not an Airflow try: its health is all there is
                "exit_code": None,
                "exit_class": None,
                "ended_at": at,
                "duration_s": app.get("duration_s"),
                "log_url": None,
                "error": None,
                "app_id": app.get("app_id"),
                "health": {k: v for k, v in app.items() if k not in HIDDEN},
            }
        )
    every = tries + outside
    every.sort(key=lambda r: r.get("ended_at") or "", reverse=True)
    return every


def trouble(row: dict[str, Any]) -> list[str]:
    """Why a try needs on-call: it failed or will be retried, or its application was in
    trouble by ``executor_health.trouble`` (the alerts' definition)."""
    reasons = []
    if row.get("outcome") in (RETRIED, FAILED):
        reasons.append(f"{row['outcome']} ({row.get('exit_class')})")
    if row.get("health"):
        reasons.extend(executor_health.trouble(row["health"]))
    return reasons


def per_day(every: list[dict[str, Any]], days: int, today: date | None = None) -> list[dict]:
    """Executor losses, failed Spark tasks and failed Airflow tries for each of the last
    ``days`` days (by the day a try ended, UTC), oldest first, zeros included."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    lost: Counter[date] = Counter()
    failed_tasks: Counter[date] = Counter()
    failed_tries: Counter[date] = Counter()
    for row in every:
        if not row.get("ended_at"):
            continue
        day = datetime.fromisoformat(row["ended_at"]).date()
        if day < first or day > today:
            continue
        health = row.get("health") or {}
        lost[day] += len(executor_health.lost_executors(health))
        failed_tasks[day] += int(health.get("failed_tasks") or 0)
        failed_tries[day] += row.get("outcome") in (RETRIED, FAILED)
    return [
        {
            "day": (d := first + timedelta(days=i)).isoformat(),
            "executors_lost": lost[d],
            "failed_spark_tasks": failed_tasks[d],
            "failed_tries": failed_tries[d],
        }
        for i in range(days)
    ]


SERIES = (
    ("executors_lost", "executors lost", "#c0392b"),
    ("failed_spark_tasks", "failed Spark tasks", "#e67e22"),
    ("failed_tries", "failed or retried tries", "#2c6fbb"),
)


def plot_svg(days: list[dict], width: int = 720, height: int = 150) -> str:
    """Grouped bars per day as inline SVG (no scripts, no external assets)."""
    top = max([1] + [d[key] for d in days for key, _, _ in SERIES])
    left, bottom, legend = 28, 22, 16
    plot_h = height - bottom - legend
    slot = (width - left) / max(1, len(days))
    bar = max(1.0, slot / (len(SERIES) + 1))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="perday" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>per day: {', '.join(label for _, label, _ in SERIES)}</title>",
        f'<text x="{left - 4}" y="{legend + 8}" text-anchor="end">{top}</text>',
        f'<text x="{left - 4}" y="{legend + plot_h}" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{legend + plot_h}" x2="{width}" y2="{legend + plot_h}" '
        'stroke="#999"/>',
    ]
    for i, (_, label, colour) in enumerate(SERIES):
        x = left + i * 190
        parts.append(f'<rect x="{x}" y="2" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="11">{label}</text>')
    for i, d in enumerate(days):
        x0 = left + i * slot
        for j, (key, label, colour) in enumerate(SERIES):
            if not d[key]:
                continue
            h = plot_h * d[key] / top
            parts.append(
                f'<rect data-day="{d["day"]}" data-series="{key}" x="{x0 + j * bar:.1f}" '
                f'y="{legend + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{d["day"]}: {d[key]} {label}</title></rect>'
            )
        if i % 7 == 0 or i == len(days) - 1:
            anchor = "end" if i == len(days) - 1 and i else "start"
            at_x = x0 + slot if anchor == "end" else x0
            parts.append(
                f'<text x="{at_x:.1f}" y="{height - 6}" text-anchor="{anchor}">'
                f"{d['day'][5:]}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
