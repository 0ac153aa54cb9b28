"""Environment for a local Airflow on the embedded Spark master, used by make and tests.

Defines the ``spark_default`` connection (``local[*,4]``, which retries failed tasks, or
``$MUSICREC_SPARK_MASTER``) through
``AIRFLOW_CONN_SPARK_DEFAULT`` so nothing has to be clicked, and the data root variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from musicrec.runtime.spark_conf import DEFAULT_MASTER, MASTER_ENV

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def environment(
    airflow_home: Path,
    data_root: Path,
    master: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """``master``: the ``spark_default`` connection's master; default ``$MUSICREC_SPARK_MASTER``
    (``make ... SPARK_MASTER=spark://127.0.0.1:7077`` after ``make cluster-up``) or the
    embedded ``local[*,4]``. Nothing else changes between embedded and cluster runs."""
    env = dict(os.environ)
    master = master or env.get(MASTER_ENV) or DEFAULT_MASTER
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
                {"conn_type": "spark", "host": master, "extra": {"deploy-mode": "client"}}
            ),
            "AIRFLOW_VAR_MUSICREC_DATA_ROOT": str(data_root),
            "MUSICREC_ALERTS_FILE": str(data_root / "alerts" / "alerts.jsonl"),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYTHONPATH": str(ROOT / "include"),
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    env.update(extra or {})
    return env


def prepare_home(env: dict[str, str], spark_slots: int = 2) -> None:
    """Create the metadata database and the ``spark`` pool (limits concurrent Spark apps)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [airflow, "pools", "set", "spark", str(spark_slots), "Concurrent Spark applications"],
        env=env,
        check=True,
        capture_output=True,
    )


SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"


def service_environment(env: dict[str, str], port: int, password: str) -> dict[str, str]:
    """A real local Airflow: LocalExecutor on SQLite, the API on 127.0.0.1:``port``.

    SimpleAuthManager is Airflow's development auth manager: fine on a laptop, never in a
    deployment (docker-compose.yaml uses the FAB auth manager). Its one user is ``admin``.
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        import secrets

        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({USER: password}))
    passwords.chmod(0o600)
    base = f"http://127.0.0.1:{port}"
    out = dict(env)
    out.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base,
            # Components sign and check each other's tokens with one shared secret.
            "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        }
    )
    return out


def start_services(
    env: dict[str, str], only: tuple[str, ...] = SERVICES
) -> dict[str, subprocess.Popen]:
    """Start api-server, scheduler, dag-processor and triggerer (or ``only`` some); logs and
    pids in the home."""
    home = Path(env["AIRFLOW_HOME"])
    logs, run = home / "logs" / "services", home / "run"
    logs.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    for name in only:
        args = [str(BIN / "airflow"), name]
        if name == "api-server":
            args += ["--host", env["AIRFLOW__API__HOST"], "--port", env["AIRFLOW__API__PORT"]]
        with open(logs / f"{name}.log", "ab") as log:
            procs[name] = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (run / f"{name}.pid").write_text(str(procs[name].pid))
    return procs


def stop_services(env: dict[str, str], procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each service's process group (gunicorn/uvicorn workers, task runners too)."""
    import signal
    import time

    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for name in procs:
        (Path(env["AIRFLOW_HOME"]) / "run" / f"{name}.pid").unlink(missing_ok=True)


class Api:
    """A small client of Airflow's REST API (``/api/v2``) authenticated as the local admin."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.password = password
        self.token: str | None = None

    def _call(self, method: str, path: str, body: dict | None = None, attempts: int = 8) -> dict:
        """One request; 503 is retried with backoff.

        On the embedded SQLite metadata database Airflow answers 503 "Database is locked" when
        the scheduler holds the write lock (seen creating a backfill on a busy machine); the
        request changed nothing and can be sent again.
        """
        import time
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(attempts):
            req = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
            req.add_header("Content-Type", "application/json")
            if self.token:
                req.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as e:
                if e.code != 503 or attempt == attempts - 1:
                    raise
                print(f"{method} {path}: 503 ({e.read()[:200]!r}), retrying", file=sys.stderr)
                time.sleep(min(2**attempt, 15))
        raise AssertionError("unreachable")

    def login(self) -> None:
        answer = self._call("POST", "/auth/token", {"username": USER, "password": self.password})
        self.token = answer["access_token"]

    def get(self, path: str) -> dict:
        return self._call("GET", path)

    def post(self, path: str, body: dict) -> dict:
        return self._call("POST", path, body)

    def patch(self, path: str, body: dict) -> dict:
        return self._call("PATCH", path, body)

    def delete(self, path: str) -> dict:
        return self._call("DELETE", path)

    def wait_up(self, procs: dict[str, subprocess.Popen], timeout_s: float = 180) -> None:
        """Until the API answers (the api-server alone: no scheduler to be healthy)."""
        import time
        import urllib.error

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs.values()):
                raise RuntimeError("the api-server exited (see logs/services)")
            try:
                self.get("/api/v2/monitor/health")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        raise TimeoutError(f"the api-server did not answer in {timeout_s:.0f} s")

    def wait_healthy(self, procs: dict[str, subprocess.Popen], timeout_s: float = 180) -> None:
        """Until the API answers and reports a healthy scheduler and dag-processor."""
        import time
        import urllib.error

        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            dead = [name for name, p in procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"Airflow service(s) exited: {dead} (see logs/services)")
            try:
                health = self.get("/api/v2/monitor/health")
                last = health
                if all(
                    health.get(part, {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "dag_processor")
                ):
                    return
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last = exc
            time.sleep(2)
        raise TimeoutError(f"Airflow did not become healthy in {timeout_s:.0f} s: {last}")


if __name__ == "__main__":
    # `python scripts/airflow_local.py <airflow args>`: the airflow CLI against the local home
    # that `make airflow` runs (e.g. `backfill create --dag-id musicrec_pipeline ...`).
    home = Path(os.environ.get("MUSICREC_AIRFLOW_HOME", ROOT / ".airflow"))
    data = Path(os.environ.get("MUSICREC_DATA_ROOT", ROOT / "data"))
    cli_env = environment(home.resolve(), data.resolve())
    os.execve(str(BIN / "airflow"), [str(BIN / "airflow"), *sys.argv[1:]], cli_env)
