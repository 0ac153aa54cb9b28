"""Run the DAG with dag.test() for each date, in order; print task states as JSON lines.

dag.test() does not raise when a task fails, so the states are read from the returned run.
Usage: python scripts/run_dag.py 2026-01-10 [2026-01-11 ...] [--conf '{"rank": 16}']
       [--dag-id ID] [--mark-success REGEX]
Each date D is the day processed, the data interval [D, D+1). ``--mark-success`` marks the
matching tasks successful without running them (e.g. run only ingest).
Environment: as set by scripts/airflow_local.py (AIRFLOW_HOME, connection, variables).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dates", nargs="+")
    p.add_argument("--conf", default="{}")
    p.add_argument("--dag-id", default="musicrec_pipeline")
    p.add_argument("--mark-success", default=None, help="regex of task ids not to run")
    args = p.parse_args()
    from airflow.dag_processing.dagbag import DagBag  # after the environment is set

    bag = DagBag()
    if bag.import_errors:
        print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
        return 2
    dag = bag.get_dag(args.dag_id)
    worst = 0
    for day in args.dates:
        started = time.monotonic()
        # A manual run's data interval ends at its logical date: D+1 processes [D, D+1).
        logical = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
        run = dag.test(
            logical_date=logical,
            run_conf=json.loads(args.conf),
            mark_success_pattern=args.mark_success,
        )
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
        durations = {ti.task_id: ti.duration for ti in run.get_task_instances()}
        print(
            "DAGRUN "
            + json.dumps(
                {
                    "date": day,
                    "state": str(run.state),
                    "tasks": states,
                    "tries": tries,
                    "durations": durations,
                    "wall_s": round(time.monotonic() - started, 1),
                }
            ),
            flush=True,
        )
        if str(run.state) != "success":
            worst = 1
    return worst


if __name__ == "__main__":
    sys.exit(main())
