"""Environment for a local Airflow on the embedded Spark master, used by make and tests.

Defines the ``spark_default`` connection (``local[*,4]``, which retries failed tasks) through
``AIRFLOW_CONN_SPARK_DEFAULT`` so nothing has to be clicked, and the data root variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def environment(
    airflow_home: Path,
    data_root: Path,
    master: str = "local[*,4]",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = dict(os.environ)
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
