"""Build spark-submit command lines: one place, used by the demo, benchmarks and tests.

The DAG uses SparkSubmitOperator instead, with the same conf (``spark_conf``) and py-files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from musicrec.runtime.spark_conf import DEFAULT_MASTER, default_conf, step_launch_conf

ROOT = Path(__file__).resolve().parents[3]
PY_FILES = ROOT / "dist" / "musicrec.zip"
SOURCES = (ROOT / "include" / "musicrec", ROOT / "spark_jobs")  # what `make dist` zips


def stale_sources(archive: Path = PY_FILES, sources: Sequence[Path] = SOURCES) -> list[Path]:
    """Python sources changed since ``archive`` was built: the driver and the Python workers
    import the archive (``--py-files``), so a job would silently run the old code."""
    built = archive.stat().st_mtime
    return sorted(
        p for s in sources if s.is_dir() for p in s.rglob("*.py") if p.stat().st_mtime > built
    )


def spark_submit_bin() -> str:
    return str(Path(sys.executable).with_name("spark-submit"))


def command(
    job: str,
    args: Sequence[str],
    master: str = DEFAULT_MASTER,
    extra_conf: dict[str, str] | None = None,
) -> list[str]:
    """spark-submit of ``spark_jobs/<job>.py``, with what its driver needs at launch."""
    launch = step_launch_conf(master, job, args)
    return app_command(
        ROOT / "spark_jobs" / f"{job}.py", args, master, {**launch, **(extra_conf or {})}
    )


def app_command(
    application: Path,
    args: Sequence[str],
    master: str = DEFAULT_MASTER,
    extra_conf: dict[str, str] | None = None,
) -> list[str]:
    """spark-submit of any application with the jobs' master, conf and --py-files."""
    if not PY_FILES.exists():
        raise FileNotFoundError(f"{PY_FILES} is missing: run `make dist`")
    stale = stale_sources(PY_FILES, SOURCES)
    if stale:
        raise RuntimeError(
            f"{PY_FILES} is older than {stale[0]} ({len(stale)} changed files): the jobs "
            "would run the code it holds, not yours; run `make dist`"
        )
    conf = {**default_conf(master), "spark.pyspark.python": sys.executable, **(extra_conf or {})}
    cmd = [spark_submit_bin(), "--master", master, "--py-files", str(PY_FILES)]
    for key, value in sorted(conf.items()):
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, str(application), *args]


def environment() -> dict[str, str]:
    """spark-submit finds its Spark home through the Python it runs: make it this one."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
        "PYSPARK_PYTHON": sys.executable,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def run(job: str, args: Sequence[str], master: str = DEFAULT_MASTER, **kwargs) -> int:
    return subprocess.run(
        command(job, args, master), env=environment(), check=False, **kwargs
    ).returncode


def failure_text(stderr: str, limit: int = 80) -> str:
    """What explains a failed spark-submit: its stderr without Spark's INFO/WARN/DEBUG log
    lines (a traceback would otherwise be pushed out of any tail by the shutdown logs)."""
    levels = (" INFO ", " WARN ", " DEBUG ")
    kept = [line for line in stderr.splitlines() if not any(lv in line[:40] for lv in levels)]
    return "\n".join(kept[-limit:])
