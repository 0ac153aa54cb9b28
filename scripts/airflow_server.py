"""`make airflow`: a real local Airflow for the pipeline, until Ctrl-C.

Starts the api-server, scheduler, dag-processor and triggerer (LocalExecutor, SQLite metadata
database in ``.airflow/``), waits until they are healthy, and prints the URL and the login.
The ``spark_default`` connection points at the embedded master (``local[*,4]``); the data root
is ``data/`` unless ``--data-root`` says otherwise.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import time
from pathlib import Path

import airflow_local as al


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--home", type=Path, default=al.ROOT / ".airflow")
    p.add_argument("--data-root", type=Path, default=al.ROOT / "data")
    args = p.parse_args()
    home = args.home.resolve()
    password_file = home / "admin_password"
    home.mkdir(parents=True, exist_ok=True)
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    env = al.service_environment(
        al.environment(home, args.data_root.resolve()), args.port, password
    )
    # Schedules start only when someone unpauses the DAG: no surprise run of "yesterday".
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
    print(f"preparing {home} (metadata database, 'spark' pool) ...", flush=True)
    al.prepare_home(env)
    procs = al.start_services(env)
    api = al.Api(env["AIRFLOW__API__BASE_URL"], password)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        api.wait_healthy(procs)
        print(
            f"""
Airflow is up: {env["AIRFLOW__API__BASE_URL"]}
  login     {al.USER} / {password}   (SimpleAuthManager: a local, development login)
  DAG       musicrec_pipeline (data root {args.data_root})
  logs      {home}/logs  (services: {home}/logs/services)
  paused    the DAG starts paused: unpause it in the UI for its daily schedule and backfills
  backfill  make backfill FROM=2026-01-02 TO=2026-01-04   (or: the DAG page, Trigger > Backfill)
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            dead = [name for name, proc in procs.items() if proc.poll() is not None]
            if dead:
                print(f"service(s) exited: {dead}; see {home}/logs/services", file=sys.stderr)
                return 1
            time.sleep(1)
        return 0
    finally:
        print("stopping Airflow ...", flush=True)
        al.stop_services(env, procs)


if __name__ == "__main__":
    raise SystemExit(main())
