"""Run a job shell (``spark_jobs/<name>.py``) in this process, as its command line would.

The shells are scripts that spark-submit runs, not a package: they are loaded from their
file. In-process, ``session_for`` finds the tests' shared session, so a job costs no JVM.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cache
from types import ModuleType

from musicrec.runtime.jobs import run

from tests.conftest import ROOT


@cache
def shell(name: str) -> ModuleType:
    path = ROOT / "spark_jobs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"musicrec_job_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_job(name: str, argv: Sequence[str]) -> int:
    """The job's exit code: 0, or the code its failure maps to (``runtime.jobs.run``)."""
    return run(shell(name).main, list(argv))
