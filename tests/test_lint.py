"""The lint guard: ruff refuses module-level pyspark and Great Expectations imports in what
the scheduler parses, and nowhere else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit
RUFF = Path(sys.executable).with_name("ruff")
HEAVY = "import pyspark\nfrom great_expectations import expectations\n"
LAZY = "def f():\n    import pyspark\n\n    return pyspark\n"


def codes(path: str, source: str) -> list[str]:
    out = subprocess.run(
        [str(RUFF), "check", "--select", "TID253", "--output-format", "concise"]
        + ["--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return [line.split()[1] for line in out.stdout.splitlines() if ": " in line and ".py:" in line]


@pytest.mark.parametrize(
    "path",
    [
        "dags/probe.py",
        "plugins/probe.py",
        "include/musicrec/orchestration/probe.py",
        "include/musicrec/monitoring/probe.py",
        "include/musicrec/config.py",
        "include/musicrec/settings.py",
    ],
)
def test_scheduler_side_modules_refuse_heavy_imports_at_module_level(path):
    assert codes(path, HEAVY) == ["TID253", "TID253"]
    assert codes(path, LAZY) == []  # inside a function, at run time, they are fine


def test_spark_side_modules_may_import_them():
    assert codes("include/musicrec/model/probe.py", HEAVY) == []
