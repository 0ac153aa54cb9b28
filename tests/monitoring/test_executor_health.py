"""Executor-health summaries parsed from real event logs, one with a killed executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from musicrec.monitoring import executor_health
from musicrec.runtime import submit

from tests import procs
from tests.conftest import ROOT

APP = ROOT / "tests" / "apps" / "slow_shuffle_job.py"


def executor_jvms(token: str) -> list[int]:
    return sorted(
        p.pid for p in procs.with_token(token) if "CoarseGrainedExecutorBackend" in p.cmdline
    )


def python_children(pid: int) -> list[int]:
    """PySpark worker daemons started by process ``pid`` (from any of its threads)."""
    return [p.pid for p in procs.processes() if p.ppid == pid and "pyspark.daemon" in p.cmdline]


def run_app(tmp_path: Path, master: str, kill_one: bool) -> tuple[dict, Path, list[int]]:
    token = uuid.uuid4().hex
    events = tmp_path / "events"
    events.mkdir()
    cmd = submit.app_command(
        APP,
        [],
        master=master,
        extra_conf={"spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri()},
    )
    env = {**submit.environment(), "MUSICREC_PROBE": token}
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "ck"), str(tmp_path / "out")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            busy = [pid for pid in executor_jvms(token) if python_children(pid)]
            if busy:  # a Python task runs on it right now (its worker daemon is up)
                time.sleep(0.5)
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.2)

    thread = threading.Thread(target=killer, daemon=True)
    if kill_one:
        thread.start()
    out, err = proc.communicate(timeout=600)
    if kill_one:
        thread.join()
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
    log = executor_health.find_log(events, result["app_id"])
    assert log is not None, list(events.iterdir())
    return result, log, killed


@pytest.mark.cluster
@pytest.mark.fault
@pytest.mark.timeout(600)
def test_summary_of_an_application_that_lost_an_executor(tmp_path):
    result, log, killed = run_app(tmp_path, "local-cluster[2,1,1024]", kill_one=True)
    assert killed and result["rows"] == 97  # the job survived the loss, with the full result
    summary = executor_health.summarize(log)
    lost = executor_health.lost_executors(summary)
    assert len(lost) == 1 and lost[0]["reason"], summary["executors_removed"]
    assert summary["executors_added"] >= 2  # a replacement may or may not come in time
    assert summary["failed_task_reasons"].get("ExecutorLostFailure", 0) >= 1, summary
    assert summary["retried_tasks"] >= summary["failed_task_reasons"]["ExecutorLostFailure"]
    assert summary["tasks"] >= 8 + summary["failed_tasks"]
    assert "LOST" in executor_health.headline(summary)


@pytest.mark.unit
@pytest.mark.timeout(300)
def test_summary_of_a_quiet_application(tmp_path):
    result, log, _ = run_app(tmp_path, "local[2,3]", kill_one=False)
    summary = executor_health.summarize(log)
    assert summary["app_id"] == result["app_id"] and summary["app_name"] == "musicrec-slow-shuffle"
    assert summary["executors_removed"] == [] and summary["failed_tasks"] == 0
    assert summary["tasks"] >= 8 and summary["duration_s"] > 2
    assert "LOST" not in executor_health.headline(summary)


def summary_with(removed: list[dict], **counts: int) -> dict:
    base = {
        "app_id": "app-1",
        "executors_added": 2,
        "executors_removed": removed,
        "failed_tasks": 0,
        "failed_task_reasons": {},
        "retried_tasks": 0,
        "fetch_failures": 0,
        "resubmitted_stages": 0,
        "failed_stages": [],
        "gc_time_s": 0.0,
        "spill_disk_mb": 0.0,
    }
    return base | counts


@pytest.mark.unit
@pytest.mark.parametrize(
    ("removed", "counts", "lost", "trouble"),
    [
        # The application ended: the driver let its executors go.
        ([{"executor_id": "1", "reason": "Executor killed by driver."}], {}, 0, []),
        # A worker told to leave: its executor handed its blocks over and left. A stage on
        # the leaving executor is re-run on one host, without any failure.
        (
            [
                {"executor_id": "1", "reason": "Executor decommission: worker decommissioned"},
                {"executor_id": "2", "reason": "Finished decommissioning"},
            ],
            {"resubmitted_stages": 1},
            0,
            [],
        ),
        # A loss: killed by the OOM killer, its running task failed with it.
        (
            [{"executor_id": "1", "reason": "Command exited with code 137"}],
            {"failed_tasks": 1, "failed_task_reasons": {"ExecutorLostFailure": 1}},
            1,
            [
                "1 executor(s) lost (1: Command exited with code 137)",
                "1 failed task(s) (ExecutorLostFailure 1)",
            ],
        ),
        # No executor lost, but a task failed once and a shuffle fetch failed.
        (
            [],
            {"failed_tasks": 1, "failed_task_reasons": {"TaskKilled": 1}, "fetch_failures": 2},
            0,
            ["1 failed task(s) (TaskKilled 1)", "2 fetch failure(s)"],
        ),
    ],
    ids=["normal-removal", "decommission", "loss", "failed-tasks"],
)
def test_one_definition_of_trouble(removed, counts, lost, trouble):
    summary = summary_with(removed, **counts)
    assert len(executor_health.lost_executors(summary)) == lost
    assert executor_health.trouble(summary) == trouble
    assert ("LOST" in executor_health.headline(summary)) == bool(lost)
