"""Executor health of one Spark application, from its event log: what on-call needs first.

Spark 4 writes event logs as JSON lines, optionally compressed (zstd by default when
``spark.eventLog.compress`` is on) and optionally rolled into ``eventlog_v2_<app>/events_N_*``
files. ``summarize`` reads any of these shapes and returns executors added and removed (with
Spark's removal reason), failed and retried tasks by reason, fetch failures, resubmitted and
failed stages, GC time, peak execution memory and spill. Pure Python: no Spark needed, so the
Airflow side and the on-call view can call it.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CODECS = (".zstd", ".zst", ".lz4", ".snappy", ".lzf")


def _open_text(path: Path) -> Iterator[str]:
    if path.suffix in (".zstd", ".zst"):
        import zstandard

        with path.open("rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            yield from io.TextIOWrapper(reader, encoding="utf-8")
        return
    if path.suffix in _CODECS:
        raise ValueError(f"{path.name}: only zstd or uncompressed event logs are supported")
    with path.open(encoding="utf-8") as text:
        yield from text


def event_files(log: Path) -> list[Path]:
    """The file(s) of one application's log: a single file, or a rolling folder in order."""
    if log.is_dir():
        parts = [p for p in log.iterdir() if p.name.startswith("events_")]
        return sorted(parts, key=lambda p: int(p.name.split("_")[1]))
    return [log]


def events(log: Path) -> Iterator[dict[str, Any]]:
    for part in event_files(log):
        for line in _open_text(part):
            if line.strip():
                yield json.loads(line)


def find_log(event_dir: Path, app_id: str) -> Path | None:
    """The finished (or in-progress) log of ``app_id`` in an event log folder."""
    for candidate in sorted(event_dir.glob(f"*{app_id}*")):
        return candidate
    return None


def summarize(log: Path) -> dict[str, Any]:
    app: dict[str, Any] = {}
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    failed_reasons: Counter[str] = Counter()
    tasks = failed = killed = retried = fetch_failures = 0
    stage_attempts: dict[int, int] = {}
    failed_stages: list[dict[str, Any]] = []
    gc_ms = spill_memory = spill_disk = peak_memory = 0
    lost_on: Counter[str] = Counter()
    for event in events(log):
        kind = event.get("Event")
        if kind == "SparkListenerApplicationStart":
            app = {
                "app_id": event.get("App ID"),
                "app_name": event.get("App Name"),
                "start_ms": event.get("Timestamp"),
            }
        elif kind == "SparkListenerApplicationEnd":
            app["end_ms"] = event.get("Timestamp")
        elif kind == "SparkListenerExecutorAdded":
            info = event.get("Executor Info", {})
            added.append(
                {
                    "executor_id": event.get("Executor ID"),
                    "host": info.get("Host"),
                    "cores": info.get("Total Cores"),
                    "time_ms": event.get("Timestamp"),
                }
            )
        elif kind == "SparkListenerExecutorRemoved":
            removed.append(
                {
                    "executor_id": event.get("Executor ID"),
                    "reason": event.get("Removed Reason"),
                    "time_ms": event.get("Timestamp"),
                }
            )
        elif kind == "SparkListenerStageSubmitted":
            info = event.get("Stage Info", {})
            stage = int(info.get("Stage ID", -1))
            attempt = int(info.get("Stage Attempt ID", 0))
            stage_attempts[stage] = max(stage_attempts.get(stage, 0), attempt)
        elif kind == "SparkListenerStageCompleted":
            info = event.get("Stage Info", {})
            if info.get("Failure Reason"):
                failed_stages.append(
                    {
                        "stage_id": info.get("Stage ID"),
                        "attempt": info.get("Stage Attempt ID"),
                        "reason": str(info["Failure Reason"]).splitlines()[0][:300],
                    }
                )
        elif kind == "SparkListenerTaskEnd":
            tasks += 1
            info = event.get("Task Info", {})
            reason = event.get("Task End Reason", {}).get("Reason", "Success")
            if int(info.get("Attempt", 0)) > 0:
                retried += 1
            if info.get("Killed"):
                killed += 1
            if reason != "Success" and info.get("Failed", reason != "Success"):
                failed += 1
                failed_reasons[reason] += 1
                if reason == "ExecutorLostFailure":
                    lost_on[str(event["Task End Reason"].get("Executor ID"))] += 1
            if reason == "FetchFailed":
                fetch_failures += 1
            metrics = event.get("Task Metrics") or {}
            gc_ms += int(metrics.get("JVM GC Time", 0))
            spill_memory += int(metrics.get("Memory Bytes Spilled", 0))
            spill_disk += int(metrics.get("Disk Bytes Spilled", 0))
            peak_memory = max(peak_memory, int(metrics.get("Peak Execution Memory", 0)))
    duration = None
    if app.get("start_ms") and app.get("end_ms"):
        duration = round((app["end_ms"] - app["start_ms"]) / 1000, 1)
    return {
        **app,
        "log": str(log),
        "duration_s": duration,
        "executors_added": len(added),
        "executors_removed": removed,
        "tasks": tasks,
        "failed_tasks": failed,
        "failed_task_reasons": dict(failed_reasons),
        "tasks_lost_with_executor": dict(lost_on),
        "killed_tasks": killed,
        "retried_tasks": retried,
        "fetch_failures": fetch_failures,
        "resubmitted_stages": sum(1 for a in stage_attempts.values() if a > 0),
        "failed_stages": failed_stages,
        "gc_time_s": round(gc_ms / 1000, 1),
        "peak_execution_memory_mb": round(peak_memory / 2**20, 1),
        "spill_memory_mb": round(spill_memory / 2**20, 1),
        "spill_disk_mb": round(spill_disk / 2**20, 1),
    }


# Removals that are not a loss: the driver released the executor (the application ended, or
# it scaled down), or a worker was decommissioned on purpose and its executor handed its
# blocks over before leaving ("Executor decommission: ...", then "Finished decommissioning").
PLANNED_REMOVALS = (
    "Executor killed by driver",
    "Executor decommission",
    "Finished decommissioning",
)


def is_planned(removal: dict[str, Any]) -> bool:
    return str(removal.get("reason") or "").startswith(PLANNED_REMOVALS)


def lost_executors(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Executors that were lost: every removal that was not planned."""
    return [r for r in summary.get("executors_removed", []) if not is_planned(r)]


def trouble(summary: dict[str, Any]) -> list[str]:
    """Why an application needs on-call's attention; empty if it ran clean.

    The one definition of trouble: the alert a succeeded task sends and the on-call view's
    "trouble only" filter both use it. Trouble is a lost executor, a failed task (even one a
    retry then fixed), a fetch failure or a failed stage. A planned removal (decommission,
    shutdown) is not, nor is a stage re-run after a decommission without failures.
    """
    reasons = []
    lost = lost_executors(summary)
    if lost:
        listed = "; ".join(
            f"{r.get('executor_id')}: {r.get('reason') or 'no reason'}" for r in lost
        )
        reasons.append(f"{len(lost)} executor(s) lost ({listed})")
    if summary.get("failed_tasks"):
        by_reason = ", ".join(
            f"{k} {v}" for k, v in sorted((summary.get("failed_task_reasons") or {}).items())
        )
        reasons.append(f"{summary['failed_tasks']} failed task(s) ({by_reason})")
    if summary.get("fetch_failures"):
        reasons.append(f"{summary['fetch_failures']} fetch failure(s)")
    if summary.get("failed_stages"):
        reasons.append(f"{len(summary['failed_stages'])} failed stage attempt(s)")
    return reasons


def headline(summary: dict[str, Any]) -> str:
    """One line for the end of a task log."""
    lost = lost_executors(summary)
    return (
        f"executor health {summary.get('app_id')}: added={summary['executors_added']} "
        f"lost={len(lost)} failed_tasks={summary['failed_tasks']} "
        f"retried_tasks={summary['retried_tasks']} fetch_failures={summary['fetch_failures']} "
        f"resubmitted_stages={summary['resubmitted_stages']} gc={summary['gc_time_s']}s "
        f"spill_disk={summary['spill_disk_mb']}MB"
        + (f" LOST: {[(r['executor_id'], r['reason']) for r in lost]}" if lost else "")
    )
