"""Task-try records for on-call: outcome classes, trouble, the per-day counts and plot."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from musicrec import constants as c
from musicrec.monitoring import tries

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "timed_out", "expected"),
    [
        (0, False, "ok"),
        (1, False, "retryable"),
        (None, False, "retryable"),
        (c.EXIT_BAD_ARGS, False, "bad input"),
        (c.EXIT_DATA_REJECTED, False, "rejected data"),
        (c.EXIT_POISON_TASK, False, "poison task"),
        (137, False, "retryable"),
        (None, True, "timeout"),
    ],
)
def test_exit_classes(code, timed_out, expected):
    assert tries.exit_class(code, timed_out) == expected


def test_outcome_and_trouble():
    assert tries.outcome(False, False) == "succeeded"
    assert tries.outcome(True, True) == "retried" and tries.outcome(True, False) == "failed"
    clean = {"outcome": "succeeded", "health": {"tasks": 3, "failed_tasks": 0}}
    assert tries.trouble(clean) == []
    lost = clean | {
        "health": {"executors_removed": [{"executor_id": "4", "reason": "Worker lost"}]}
    }
    assert tries.trouble(lost) == ["1 executor(s) lost (4: Worker lost)"]
    never_ran = {"outcome": "failed", "exit_class": "bad input", "health": None}
    assert tries.trouble(never_ran) == ["failed (bad input)"]


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def row(day: str, result: str, health: dict | None = None) -> dict:
    return tries.record(
        dag_id="d",
        run_id="r",
        logical_date=None,
        task_id="t",
        try_number=1,
        result=result,
        code=None,
        klass="retryable",
        started_at=at(day, 11),
        ended_at=at(day),
        log_url=None,
        health=health,
        error="boom\nsecond line",
    )


def test_record_hides_server_paths_and_keeps_the_first_error_line():
    r = row("2026-11-02", "failed", {"app_id": "a", "log": "/srv/events/a", "tasks": 0})
    assert r["health"] == {"app_id": "a", "tasks": 0} and r["app_id"] == "a"
    assert r["error"] == "boom" and r["duration_s"] == 3600.0


def test_per_day_counts_losses_failed_tasks_and_failed_tries_with_zero_days():
    lost = {
        "failed_tasks": 2,
        "executors_removed": [
            {"executor_id": "1", "reason": "Command exited with code 137"},
            {"executor_id": "2", "reason": "Executor killed by driver."},  # planned
        ],
    }
    rows = [
        row("2026-11-02", "succeeded", lost),
        row("2026-11-02", "retried"),
        row("2026-11-04", "failed"),
        row("2026-10-01", "failed"),  # outside the window
    ]
    days = tries.per_day(rows, 4, today=date(2026, 11, 4))
    assert [d["day"] for d in days] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    assert [(d["executors_lost"], d["failed_spark_tasks"], d["failed_tries"]) for d in days] == [
        (0, 0, 0),
        (1, 2, 1),
        (0, 0, 0),
        (0, 0, 1),
    ]
    svg = tries.plot_svg(days)
    assert svg.count("data-series=") == 4  # one bar per non-zero count, none for zeros
    assert 'data-day="2026-11-02" data-series="executors_lost"' in svg
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org", "")


def test_rows_merge_tries_with_applications_no_try_names(tmp_path):
    tries.append(tmp_path, row("2026-11-02", "succeeded", {"app_id": "app-1", "tasks": 4}))
    history = tmp_path / c.EXECUTOR_HEALTH_HISTORY
    end = int(datetime(2026, 11, 3, tzinfo=UTC).timestamp() * 1000)
    history.write_text(
        '{"app_id": "app-1", "tasks": 4}\n'
        f'{{"app_id": "local-2", "app_name": "musicrec-ingest", "end_ms": {end}, "log": "/x"}}\n'
        '{"app_id": "cut'  # a crash mid-write: the line is skipped, the rest still count
    )
    got = tries.rows(tmp_path)
    assert [(r["app_id"], r["dag_id"]) for r in got] == [("local-2", None), ("app-1", "d")]
    assert "log" not in got[0]["health"] and got[0]["ended_at"].startswith("2026-11-03")
