"""One daily DAG run through Airflow on a full window: wall time by task, Airflow overhead.

    python benchmarks/pipeline_bench.py --events-per-day 1000000 --window-days 28

Generates ``window_days`` days of logs; the first ``window_days - 1`` are ingested in 5-day
history intervals (spark-submit, not timed), then the DAG runs for the last day through
``dag.test()`` with the embedded master, exactly as ``make demo`` does. The Spark
applications' own durations are the lifetimes of their SparkSubmit JVMs, sampled from /proc
every 0.2 s; the Airflow overhead is the run's wall time minus their sum.

Before the DAG run, one untimed prepare builds the daily stream counts of the history days
(what the earlier daily runs would have left), so the DAG's prepare rebuilds only its own
day. After it, ``prepare_window_ratio``: prepare of the last day with a 28-day window over
prepare with a 7-day window, same data, same run, each rebuilding the newest day's counts as
a daily run does; three alternated pairs, the median pair's ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from musicrec.generator.cli import generate
from musicrec.generator.world import WorldSpec
from musicrec.generator.writer import FaultRates
from musicrec.runtime import submit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import airflow_local  # noqa: E402

FIRST = date(2026, 1, 1)


def spark_apps(stop: threading.Event, seen: dict[int, list], data: Path) -> None:
    """pid -> [job script, first seen, last seen] for every SparkSubmit JVM working on ``data``."""
    while not stop.is_set():
        now = time.monotonic()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"org.apache.spark.deploy.SparkSubmit" not in cmd or str(data).encode() not in cmd:
                continue
            job = next((x.decode() for x in cmd if x.endswith(b".py")), "?")
            record = seen.setdefault(int(entry), [Path(job).stem, now, now])
            record[2] = now
        time.sleep(0.2)


def spark_job(job: str, args: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(
        submit.command(job, args), env=submit.environment(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{job} {' '.join(args)} failed:\n{submit.failure_text(done.stderr)}")
    return time.monotonic() - started


# Pairs of (short, long) prepares, alternated: one pair gave 1.38x on one day and 1.66x on
# another (same code, HISTORY); the ratio reported is the median pair's.
WINDOW_PAIRS = 3


def prepare_window_ratio(
    data: Path, last: date, windows: tuple[int, int], pairs: int = WINDOW_PAIRS
) -> dict:
    """Seconds of prepare at each window (short first, alternated ``pairs`` times), each
    after forgetting the newest day's counts, and the median pair's long over short."""
    from musicrec.model import daily_counts

    record = daily_counts.table_path(data, "artist") / daily_counts.DAYS / f"{last}.json"
    short, long = sorted(windows)
    runs: dict[int, list[float]] = {short: [], long: []}
    for _ in range(pairs):
        for days in (short, long):
            record.unlink(missing_ok=True)
            args = ["--data-root", str(data), "--date", last.isoformat()]
            runs[days].append(spark_job("prepare", [*args, "--window-days", str(days)]))
    ratios = sorted(b / a for a, b in zip(runs[short], runs[long], strict=True))
    return {
        "prepare_window_s": {f"{d}d": round(statistics.median(s), 1) for d, s in runs.items()},
        "prepare_window_runs_s": {f"{d}d": [round(x, 1) for x in s] for d, s in runs.items()},
        "prepare_window_ratio": round(statistics.median(ratios), 2),
        "prepare_window_ratios": [round(r, 2) for r in ratios],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events-per-day", type=int, default=1_000_000)
    p.add_argument("--window-days", type=int, default=28)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="musicrec-pipeline-bench-"))
    data = work / "data"
    days = args.window_days
    last = FIRST + timedelta(days=days - 1)
    spec = WorldSpec(users=max(2000, args.events_per_day // 40), artists=20_000, genres=48, seed=9)
    try:
        started = time.monotonic()
        generate(
            data / "landing" / "listening_events",
            FIRST,
            days,
            args.events_per_day,
            spec,
            FaultRates(),
            processes=2,
        )
        generate_s = time.monotonic() - started
        started = time.monotonic()
        # History in 5-day intervals (5M lines were measured fine): one 27-day interval
        # (27M lines at 1M/day) ran the 4 GiB embedded driver out of memory (exit 52).
        day = FIRST
        while day < last:
            end = min(day + timedelta(days=5), last)
            history = ["--data-root", str(data), "--start", day.isoformat()]
            history += ["--end", end.isoformat()]
            spark_job("ingest", history)
            day = end
        history_s = time.monotonic() - started
        started = time.monotonic()
        before = last - timedelta(days=1)
        counts = ["--data-root", str(data), "--date", before.isoformat()]
        spark_job("prepare", [*counts, "--window-days", str(days - 1)])
        history_counts_s = time.monotonic() - started
        env = airflow_local.environment(work / "airflow_home", data)
        airflow_local.prepare_home(env)
        stop, apps = threading.Event(), {}
        watcher = threading.Thread(target=spark_apps, args=(stop, apps, data), daemon=True)
        watcher.start()
        conf = {"window_days": days}
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_dag.py"), last.isoformat()]
            + ["--conf", json.dumps(conf)],
            env=env,
            capture_output=True,
            text=True,
        )
        wall_s = time.monotonic() - started
        stop.set()
        watcher.join()
        runs = [json.loads(x[7:]) for x in out.stdout.splitlines() if x.startswith("DAGRUN ")]
        if not runs or runs[0]["state"] != "success":
            print(out.stdout[-3000:], out.stderr[-5000:], file=sys.stderr)
            raise SystemExit("the benchmark DAG run did not succeed")
        run = runs[0]
        app_s: dict[str, float] = {}
        for job, first, seen_last in apps.values():
            app_s[job] = app_s.get(job, 0.0) + (seen_last - first)
        manifest = json.loads(
            (data / "manifests" / "ingest" / f"{last:%Y%m%d}T00_24h.json").read_text()
        )
        result = {
            "events_per_day": manifest["counts"]["read"],
            "window_days": days,
            "wall_s": round(run["wall_s"], 1),
            "task_s": {k: round(v, 1) for k, v in run["durations"].items()},
            "spark_app_s": {k: round(v, 1) for k, v in app_s.items()},
            "airflow_overhead_s": round(run["wall_s"] - sum(app_s.values()), 1),
            "process_wall_s": round(wall_s, 1),
            "generate_s": round(generate_s, 1),
            "history_ingest_s": round(history_s, 1),
            "history_daily_counts_s": round(history_counts_s, 1),
            **prepare_window_ratio(data, last, (7, days)),
        }
        print("PIPELINE " + json.dumps(result), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
