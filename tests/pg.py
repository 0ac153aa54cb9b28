"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temporary folder.

initdb refuses to run as root, so as root the server runs as the ``postgres`` system user
(created by Debian's postgresql package, which .ci/run installs when missing).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from musicrec.runtime.cluster import free_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return candidates[-1]


@dataclass
class PgServer:
    folder: Path
    port: int
    as_user: list[str]

    def url(self, user: str = "postgres", password: str | None = None, db: str = "postgres") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                _bin("pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> PgServer:
    folder = Path(tempfile.mkdtemp(prefix="musicrec-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    subprocess.run(
        [
            *as_user,
            _bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    subprocess.run(
        [
            *as_user,
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(folder / "server.log"),
            "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    server = PgServer(folder, port, as_user)
    deadline = time.monotonic() + 30
    while (
        subprocess.run(
            [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode
        != 0
    ):
        if time.monotonic() > deadline:
            raise RuntimeError((folder / "server.log").read_text())
        time.sleep(0.2)
    return server
