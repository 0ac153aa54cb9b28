"""A Spark standalone cluster on one machine: master, workers and History Server, on 127.0.0.1.

Started from the pinned pyspark installation (``bin/spark-class ...deploy.master.Master``,
``...deploy.worker.Worker``, ``...deploy.history.HistoryServer``), so the cluster runs exactly the
Spark version the jobs were written for. Logs, pids and the cluster's address live under one
run folder; ``make cluster-up`` / ``make cluster-down`` and the cluster tests use this module.

No pyspark import here: only processes, files and the master's JSON status page.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STATE_FILE = "cluster.json"

# Worker JVM settings (not application settings: those are in spark_conf).
WORKER_CONF = {
    # SIGPWR makes a worker decommission gracefully: its executors migrate their shuffle and
    # cached blocks to the others before leaving (spark_conf's decommission settings).
    "spark.decommission.enabled": "true",
    # Remove finished applications' work folders (jars, stderr) after a day.
    "spark.worker.cleanup.enabled": "true",
    "spark.worker.cleanup.appDataTtl": "86400",
}


def spark_home() -> Path:
    """The pyspark installation of the running interpreter (bin/, sbin/, jars/)."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed in this interpreter")
    return Path(spec.origin).parent


HISTORY_SERVER = "org.apache.spark.deploy.history.HistoryServer"


def history_env(event_dir: Path, port: int) -> dict[str, str]:
    """The History Server's settings (spark-class reads SPARK_HISTORY_OPTS for its class)."""
    opts = (
        f"-Dspark.history.fs.logDirectory={Path(event_dir).resolve().as_uri()} "
        f"-Dspark.history.ui.port={port} "
        # A finished task's application is listed within seconds, for the on-call links.
        "-Dspark.history.fs.update.interval=5s"
    )
    return {"SPARK_HISTORY_OPTS": opts}


def start_history_server(event_dir: Path, port: int, log_file: Path) -> subprocess.Popen:
    """A History Server on ``event_dir`` as a child process (``make airflow`` stops it with
    the rest); wait for it with ``StandaloneCluster.wait_http(url + '/api/v1/applications')``."""
    Path(event_dir).mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": HOST,
        **history_env(event_dir, port),
    }
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), HISTORY_SERVER],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops it in order
        )


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


# What polling a server's HTTP port meets while it is not up: nothing listening (OSError), or
# something else answering there, or a reply cut short (a half-started UI, a py4j gateway).
NOT_ANSWERING: tuple[type[Exception], ...] = (OSError, http.client.HTTPException)

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range, for a server started a moment later.

    Not ``bind(0)``: that port comes from the ephemeral range, from which every other
    ``bind(0)`` (a driver's py4j gateway, a block manager) draws too, so between this call and
    the server's bind another process could take it, and the caller would talk to a stranger
    (a test once polled a py4j gateway for Spark's REST API). Below the range only explicit
    binds compete; ports are picked at random and never handed out twice by one process.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    candidates = range(max(1024, low - 12000), low)
    if len(candidates) < 1000:  # an unusual range leaves no room below: the kernel's choice
        with socket.socket() as s:
            s.bind((HOST, 0))
            return int(s.getsockname()[1])
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.choice(candidates)
        if port not in _handed_out and port_free(port):
            _handed_out.add(port)
            return port
    raise OSError(f"no free port in {candidates.start}-{candidates.stop - 1} after 200 tries")


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


@dataclass
class StandaloneCluster:
    """One master, ``workers`` workers and a History Server reading ``event_dir``."""

    run_dir: Path
    workers: int = 2
    worker_cores: int = 2
    worker_memory: str = "3g"
    master_port: int = 7077
    master_ui_port: int = 8081
    history_port: int = 18080
    event_dir: Path | None = None
    pids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir).resolve()
        self.event_dir = Path(self.event_dir or self.run_dir / "spark-events").resolve()

    # -- addresses -------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_ui(self) -> str:
        return f"http://{HOST}:{self.master_ui_port}"

    @property
    def history_url(self) -> str:
        return f"http://{HOST}:{self.history_port}"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    # -- state -----------------------------------------------------------------------------
    def save(self) -> None:
        state = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        state["master_url"] = self.master_url
        state["history_url"] = self.history_url
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> StandaloneCluster:
        state = json.loads((Path(run_dir) / STATE_FILE).read_text())
        known = {k: state[k] for k in cls.__dataclass_fields__ if k in state}
        known["run_dir"] = Path(known["run_dir"])
        known["event_dir"] = Path(known["event_dir"])
        return cls(**known)

    # -- processes -------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        home = spark_home()
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_LOG_DIR": str(self.logs),
            "SPARK_PID_DIR": str(self.run_dir / "pids"),
            "SPARK_NO_DAEMONIZE": "",
            "PYSPARK_PYTHON": sys.executable,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        }

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        with open(self.logs / f"{name}.log", "ab") as out:
            process = subprocess.Popen(
                cmd,
                env={**self._env(), **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the shell that ran `make cluster-up`
            )
        self.pids[name] = process.pid
        return process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        """Start everything and wait until every worker has registered with the master."""
        if self.running():
            raise RuntimeError(f"a cluster is already running from {self.run_dir}")
        for folder in ("logs", "pids", "work"):
            (self.run_dir / folder).mkdir(parents=True, exist_ok=True)
        assert self.event_dir is not None
        self.event_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                HOST,
                "--port",
                str(self.master_port),
                "--webui-port",
                str(self.master_ui_port),
            ],
        )
        self.save()
        self.wait_for(lambda s: s is not None, timeout_s, "the master to answer")
        for index in range(self.workers):
            self.start_worker(index)
        self.wait_for(
            lambda s: s is not None and len(alive_workers(s)) >= self.workers,
            timeout_s,
            f"{self.workers} workers to register",
        )
        self._start_history_server()
        self.save()

    def start_worker(self, index: int) -> int:
        opts = " ".join(f"-D{k}={v}" for k, v in WORKER_CONF.items())
        work = self.run_dir / "work" / f"worker-{index}"
        work.mkdir(parents=True, exist_ok=True)
        pid = self._spawn(
            f"worker-{index}",
            [
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                HOST,
                "--cores",
                str(self.worker_cores),
                "--memory",
                self.worker_memory,
                "--work-dir",
                str(work),
                "--webui-port",
                "0",
                self.master_url,
            ],
            {"SPARK_WORKER_OPTS": opts, "SPARK_LOCAL_DIRS": str(work / "local")},
        )
        self.save()
        return pid

    def _start_history_server(self) -> None:
        assert self.event_dir is not None
        self._spawn(
            "history-server", [HISTORY_SERVER], history_env(self.event_dir, self.history_port)
        )
        self.save()
        self.wait_http(self.history_url + "/api/v1/applications", 60.0, "the History Server")

    def stop(self, grace_s: float = 15.0) -> list[str]:
        """SIGTERM every process (workers first), SIGKILL what is left; returns what stopped."""
        stopped = []
        order = sorted(self.pids, key=lambda n: (n == "master", n == "history-server", n))
        for name in order:
            pid = self.pids[name]
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(alive(p) for p in self.pids.values()):
            time.sleep(0.2)
        for pid in self.pids.values():
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.pids = {}
        self.save()
        return stopped

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> None:
        """Signal one process (``worker-1``...) and, for SIGKILL, wait until it is gone, so a
        restart right after never mistakes the dying JVM for a live one."""
        pid = self.pids[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if sig != signal.SIGKILL:
            return
        deadline = time.monotonic() + timeout_s
        while alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} (pid {pid}) survived SIGKILL for {timeout_s} s")
            time.sleep(0.1)

    def running(self) -> bool:
        return any(alive(pid) for pid in self.pids.values())

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any] | None:
        """The master's JSON status page (workers, running applications), or None if down."""
        try:
            with urllib.request.urlopen(self.master_ui + "/json/", timeout=5) as response:
                return dict(json.load(response))
        except NOT_ANSWERING + (ValueError,):  # down, or still starting (no JSON yet)
            return None

    def wait_for(self, ready: Any, timeout_s: float, what: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if ready(status):
                return status
            dead = [n for n, p in self.pids.items() if not alive(p)]
            if "master" in dead:
                raise RuntimeError(f"the master died: see {self.logs / 'master.log'}")
            time.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {what}: see {self.logs}")

    @staticmethod
    def wait_http(url: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except NOT_ANSWERING:
                time.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {what} at {url}")


def alive_workers(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in status.get("workers", []) if w.get("state") == "ALIVE"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--run-dir", type=Path, default=Path("run/spark-cluster"))
    p.add_argument("--event-dir", type=Path, default=None, help="default: <run dir>/spark-events")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-cores", type=int, default=2)
    p.add_argument("--worker-memory", default="3g")
    p.add_argument("--master-port", type=int, default=7077)
    p.add_argument("--master-ui-port", type=int, default=8081)
    p.add_argument("--history-port", type=int, default=18080)
    args = p.parse_args(argv)
    state = args.run_dir / STATE_FILE
    if args.action == "up":
        if state.exists() and StandaloneCluster.load(args.run_dir).running():
            print(f"already running: {json.loads(state.read_text())['master_url']}")
            return 0
        cluster = StandaloneCluster(
            args.run_dir,
            workers=args.workers,
            worker_cores=args.worker_cores,
            worker_memory=args.worker_memory,
            master_port=args.master_port,
            master_ui_port=args.master_ui_port,
            history_port=args.history_port,
            event_dir=args.event_dir,
        )
        cluster.start()
        print(f"Spark master     {cluster.master_url}  (UI {cluster.master_ui})")
        print(f"History Server   {cluster.history_url}  (event logs {cluster.event_dir})")
        print(f"workers          {cluster.workers} x {cluster.worker_cores} cores")
        print(f"logs and pids    {cluster.run_dir}")
        return 0
    if not state.exists():
        print(f"no cluster state in {args.run_dir}")
        return 0 if args.action == "down" else 1
    cluster = StandaloneCluster.load(args.run_dir)
    if args.action == "down":
        stopped = cluster.stop()
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return 0
    status = cluster.status()
    if status is None:
        print("master is not answering")
        return 1
    workers = alive_workers(status)
    print(
        f"{cluster.master_url}: {len(workers)} alive workers, {status.get('coresused')}/"
        f"{status.get('cores')} cores used, {len(status.get('activeapps', []))} running apps"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
