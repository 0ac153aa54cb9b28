"""The one function that builds Spark sessions for jobs and tests."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from musicrec.runtime.spark_conf import DEFAULT_MASTER, MASTER_ENV, default_conf

log = logging.getLogger(__name__)


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the Python driver with a gateway to its JVM already running;
    # the master then comes from spark-submit and must not be overridden here.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _submitted_conf() -> dict[str, str]:
    """What spark-submit was given (--master, --conf, spark-defaults.conf)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def build_session(
    app_name: str,
    *,
    checkpoint_dir: str | Path,
    master: str | None = None,
    event_log_dir: str | Path | None = None,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Build (or reuse) a session with the project presets and a checkpoint directory set.

    ``master`` wins if given; else under spark-submit its master is kept; else
    ``$MUSICREC_SPARK_MASTER`` or the embedded default ``local[*,4]`` (which retries tasks).
    Under spark-submit, settings it was given win over the presets.
    Event logging is on when ``event_log_dir`` is given.
    """
    builder = SparkSession.builder.appName(app_name)
    submitted = _submitted_conf() if _launched_by_spark_submit() else {}
    if master is None and not submitted:
        master = os.environ.get(MASTER_ENV, DEFAULT_MASTER)
    if master is not None:
        builder = builder.master(master)
        # Python workers run the same interpreter (and so the same pinned libraries).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = default_conf(master or submitted.get("spark.master", DEFAULT_MASTER))
    # Presets are defaults: a value given to spark-submit (--conf) wins, e.g. spark.ui.enabled.
    settings = {k: v for k, v in settings.items() if k not in submitted}
    if event_log_dir is not None:
        Path(event_log_dir).mkdir(parents=True, exist_ok=True)
        settings["spark.eventLog.enabled"] = "true"
        settings["spark.eventLog.dir"] = Path(event_log_dir).resolve().as_uri()
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("MUSICREC_SPARK_LOG_LEVEL", "WARN"))
    checkpoint = Path(checkpoint_dir).resolve()
    checkpoint.mkdir(parents=True, exist_ok=True)
    # ALS checkpointInterval is a no-op without this; long lineages then overflow the stack.
    spark.sparkContext.setCheckpointDir(checkpoint.as_uri())
    log.info(
        "spark session %s on %s (spark %s)", app_name, spark.sparkContext.master, spark.version
    )
    return spark


def jvm_spark_version(spark: SparkSession) -> str:
    """The version reported by the JVM side (the jars), not by the Python package."""
    return str(spark.sparkContext._jsc.version())
