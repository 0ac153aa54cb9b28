"""`make airflow`: a real local Airflow for the pipeline, until Ctrl-C.

Starts the api-server, scheduler, dag-processor and triggerer (LocalExecutor, SQLite metadata
database in ``.airflow/``), waits until they are healthy, and prints the URL and the login.
The ``spark_default`` connection points at the embedded master (``local[*,4]``); the data root
is ``data/`` unless ``--data-root`` says otherwise. A Spark History Server on
``<data root>/spark-events`` starts with them (port 18080, or a free one), so the tasks' and the
on-call view's History Server links work with the embedded master too, unless
``MUSICREC_HISTORY_SERVER_URL`` names one already running.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import airflow_local as al
from musicrec.runtime import cluster


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--home", type=Path, default=al.ROOT / ".airflow")
    p.add_argument("--data-root", type=Path, default=al.ROOT / "data")
    p.add_argument("--history-port", type=int, default=18080)
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
    history = None
    if not os.environ.get("MUSICREC_HISTORY_SERVER_URL"):
        history, env["MUSICREC_HISTORY_SERVER_URL"] = start_history(
            args.data_root.resolve() / "spark-events", args.history_port, home
        )
    procs = {"history-server": history} if history is not None else {}
    procs.update(al.start_services(env))
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
  History   {env["MUSICREC_HISTORY_SERVER_URL"]}  (Spark event logs of every task)
  on-call   Browse > Executor health  (one row per task try)
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
        al.stop_services(env, procs)  # the History Server too: its own process group


def start_history(event_dir: Path, port: int, home: Path) -> tuple[subprocess.Popen | None, str]:
    """A History Server on the tasks' event logs at ``port``; if one already answers there
    (``make cluster-up``'s, on the same folder), that one; if something else holds the port,
    a free port."""
    url = f"http://{cluster.HOST}:{port}"
    if not cluster.port_free(port):
        try:
            cluster.StandaloneCluster.wait_http(url + "/api/v1/applications", 3.0, "")
            return None, url
        except TimeoutError:
            port = cluster.free_port()
            url = f"http://{cluster.HOST}:{port}"
    process = cluster.start_history_server(
        event_dir, port, home / "logs" / "services" / "history-server.log"
    )
    cluster.StandaloneCluster.wait_http(url + "/api/v1/applications", 90.0, "the History Server")
    return process, url


if __name__ == "__main__":
    raise SystemExit(main())
