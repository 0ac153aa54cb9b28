"""Live processes from /proc, for tests that kill or look for Spark processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    ppid: int
    cmdline: str
    environ: bytes  # empty for zombies


def processes() -> Iterator[Proc]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        yield Proc(int(entry), ppid, cmdline.decode(errors="replace"), environ)


def with_token(token: str) -> list[Proc]:
    """Processes whose environment holds ``MUSICREC_PROBE=<token>`` (a spark-submit tree)."""
    marker = f"MUSICREC_PROBE={token}".encode()
    return [p for p in processes() if marker in p.environ]
