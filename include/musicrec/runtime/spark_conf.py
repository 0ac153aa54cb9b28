"""The one place that holds Spark configuration presets, each setting with its reason.

Pure data (no pyspark import) so the DAG and tests can read it cheaply. ``spark.build_session``
applies BASE + RESILIENCE to every job; spark-submit gets the same values through
``as_submit_conf`` so a cluster run and an embedded run behave alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Embedded default master. Plain local[*] never retries a failed task (it ignores
# spark.task.maxFailures); local[*,4] retries like a cluster would (RELIABILITY.md).
DEFAULT_MASTER = "local[*,4]"
# Overrides the embedded default for sessions and for the local Airflow's spark_default.
MASTER_ENV = "MUSICREC_SPARK_MASTER"
# Tests: two cores, three attempts: a task failing on attempt 0 only must still succeed.
TEST_MASTER = "local[2,3]"

# Built by `make dist` (scripts/build_class_archive.py); a driver started without it (missing
# file: a clean checkout, another machine) runs as before.
CLASS_ARCHIVE = Path(__file__).resolve().parents[3] / "dist" / "spark-classes.jsa"

# name -> (value, why)
BASE: dict[str, tuple[str, str]] = {
    "spark.ui.showConsoleProgress": ("false", "progress bars garble task logs read by on-call"),
    "spark.sql.session.timeZone": ("UTC", "event dates and hour folders are UTC everywhere"),
    "spark.serializer": (
        "org.apache.spark.serializer.KryoSerializer",
        "Kryo is faster and smaller than Java serialization for ALS blocks (the talk)",
    ),
    "spark.sql.sources.partitionOverwriteMode": (
        "dynamic",
        "overwrite replaces only the partitions written; a failed write keeps old data",
    ),
    "spark.sql.shuffle.partitions": ("16", "small cluster: 200 default shuffle tasks are overhead"),
    "spark.sql.adaptive.enabled": ("true", "coalesces small shuffle partitions at run time"),
    "spark.sql.adaptive.coalescePartitions.parallelismFirst": (
        "false",
        "coalesce shuffles to the advisory 64 MB, not to one partition per core: a small day's "
        "stages run as a few tasks, not 16 tiny ones (prepare, evaluate, publish and validate "
        "8-14% faster on the demo, alternated); Python scoring is spread by a fixed repartition "
        "AQE never coalesces (model/scoring.py)",
    ),
    "spark.task.maxDirectResultSize": (
        "64m",
        "a grid ALS task's solved factors (6-25 MB a block) return with its status update, not "
        "through the block manager: Spark's share of a medium half-gridify fit 3.7 -> 3.0 s, "
        "alternated 4 of 4 (HISTORY); capped by spark.rpc.message.maxSize (128m)",
    ),
    "spark.broadcast.compress": (
        "false",
        "grid ALS broadcasts a side's factors every half-iteration: random floats lz4 barely "
        "shrinks, and compressing cost the driver time: Spark's share of a medium half-gridify "
        "fit 2.0-2.7 -> 1.8-2.5 s, alternated 6 of 6 (HISTORY)",
    ),
    "spark.sql.files.maxRecordsPerFile": ("0", "one file per task and partition, no splitting"),
    "spark.sql.files.maxPartitionBytes": (
        "32m",
        "gzip logs cannot be split: at 128m a day's 24 hourly files pack into 3 tasks, and on "
        "2 cores one core idles for a third of every pass; smaller packs balance the cores",
    ),
    "spark.sql.parquet.compression.codec": ("zstd", "smaller lake files at similar CPU cost"),
    "spark.sql.parquet.outputTimestampType": (
        "TIMESTAMP_MICROS",
        "Parquet's standard 8-byte timestamp: the INT96 default is deprecated, and its 12-byte "
        "values cost more to dictionary-encode (measured on the accepted write)",
    ),
    "spark.sql.inMemoryColumnarStorage.compressed": (
        "false",
        "jobs cache frames only to read them back in the same run: compressing cost 5 s of "
        "30 s per 1M lines (measured on a cached ingest interval); MEMORY_AND_DISK spills",
    ),
    "spark.sql.maxConcurrentOutputFileWriters": (
        "4",
        "partitioned writes keep one open file per partition (an interval spans a few event "
        "dates) instead of sorting every row by partition first; beyond 4 open files per "
        "task Spark sorts the rest, so memory stays bounded",
    ),
    "spark.sql.hive.filesourcePartitionFileCacheSize": (
        "0",
        "folders are swapped in place (dictionaries, models): never list files from a cache",
    ),
    "spark.driver.memory": ("4g", "local mode runs every executor inside the driver JVM"),
    "spark.ui.enabled": ("false", "the History Server shows finished apps; saves a port per job"),
    "spark.driver.extraJavaOptions": (
        f"-XX:SharedArchiveFile={CLASS_ARCHIVE}",
        "the driver maps Spark's classes from a class-data-sharing archive instead of loading "
        "and verifying them from the jars: 4-5 s less per spark-submit (measured)",
    ),
}

# Parquet writer options of the accepted events table: option -> (value, why).
# Parquet tries a dictionary for every column and falls back to plain values once it passes
# 1 MB; for columns nearly unique within a file that is hashing for nothing. Measured on 5M
# lines: the accepted write 3-4 s faster (of 13-16 s), files 4% larger (167 MB, not 160).
ACCEPTED_PARQUET: dict[str, tuple[str, str]] = {
    f"parquet.enable.dictionary#{column}": ("false", why)
    for column, why in {
        "event_id": "unique per event: never fits a dictionary",
        "event_ts": "nearly unique (microseconds): never fits a dictionary",
        "ms_played": "hundreds of thousands of distinct values a day",
        "user_id": "most users appear in every file: the dictionary gains little",
        "track_id": "most tracks appear in every file: the dictionary gains little",
    }.items()
}

RESILIENCE: dict[str, tuple[str, str]] = {
    "spark.task.maxFailures": ("4", "retry a task lost with its executor, but fail a poison task"),
    "spark.stage.maxConsecutiveAttempts": (
        "8",
        "a stage resubmitted after fetch failures from lost executors gets more chances",
    ),
    "spark.excludeOnFailure.enabled": (
        "true",
        "stop scheduling onto an executor or node that keeps failing tasks",
    ),
    "spark.excludeOnFailure.task.maxTaskAttemptsPerExecutor": (
        "1",
        "retry a failed task on a different executor first",
    ),
    "spark.excludeOnFailure.killExcludedExecutors": (
        "false",
        "exclusion alone suffices; killing would shrink a two-worker cluster to nothing",
    ),
    "spark.executor.memoryOverhead": ("512m", "off-heap headroom so executors are not OOM-killed"),
    "spark.network.timeout": ("300s", "long GC pauses in ALS must not look like a dead executor"),
    "spark.executor.heartbeatInterval": ("20s", "must stay well below spark.network.timeout"),
    "spark.shuffle.io.maxRetries": ("10", "ride out a briefly unreachable shuffle server"),
    "spark.shuffle.io.retryWait": ("10s", "space shuffle fetch retries out"),
    "spark.rdd.compress": ("true", "cached ALS blocks serialized to disk take less space"),
    "spark.cleaner.referenceTracking.cleanCheckpoints": (
        "true",
        "remove ALS checkpoint files once their lineage is no longer needed",
    ),
    "spark.decommission.enabled": ("true", "a worker told to leave migrates its blocks first"),
    "spark.storage.decommission.enabled": ("true", "migrate cached blocks on decommission"),
    "spark.storage.decommission.shuffleBlocks.enabled": (
        "true",
        "migrate shuffle files on decommission, so no fetch failures follow",
    ),
    "spark.storage.decommission.rddBlocks.enabled": ("true", "migrate cached RDD blocks too"),
    "spark.storage.decommission.replicationReattemptInterval": (
        "5s",
        "a decommissioned executor finishes migrating and leaves in seconds (default 30s)",
    ),
}


# Embedded local mode has exactly one executor (the driver): excluding it after one failure
# leaves a retried task nowhere to run, and the job aborts (measured: the fail-once test).
LOCAL_OVERRIDES: dict[str, tuple[str, str]] = {
    "spark.excludeOnFailure.enabled": ("false", "one executor in local mode: nothing to exclude"),
    "spark.python.daemon.module": (
        "musicrec.runtime.pydaemon",
        "Python workers skip re-reading pyspark's zips on every task (0.25 -> 0.10 s per "
        "Python task, runtime/pydaemon.py); workers run the driver's interpreter here",
    ),
}


# A cluster (standalone, local-cluster, YARN, Kubernetes): executors are separate JVMs.
CLUSTER: dict[str, tuple[str, str]] = {
    "spark.cores.max": (
        "2",
        "cap each application, so a backfill's runs and the daily run share the cluster",
    ),
    "spark.executor.cores": (
        "1",
        "several small executors: losing one loses a fraction of the work, not all of it",
    ),
    "spark.executor.memory": ("1g", "two executors per 3g worker, with room for overhead"),
    "spark.driver.memory": ("2g", "the driver schedules and collects; executors hold the data"),
}


# The dataset import (``musicrec-import``, an embedded session in the user's process) on top
# of the local presets: its target is a bounded process tree whatever the file size.
IMPORT: dict[str, tuple[str, str]] = {
    "spark.driver.memory": (
        "2g",
        "the import's budget is 4 GB for JVM and Python together: aggregations and the "
        "holdout sort spill to disk rather than grow the heap",
    ),
}


def is_embedded(master: str) -> bool:
    """local / local[N] / local[N,F]: one JVM, one executor (local-cluster has several)."""
    return master == "local" or master.startswith("local[")


def preset(*names: str) -> dict[str, str]:
    """Merge named presets into a plain ``{key: value}`` dict."""
    tables = {
        "base": BASE,
        "resilience": RESILIENCE,
        "local": LOCAL_OVERRIDES,
        "cluster": CLUSTER,
        "accepted_parquet": ACCEPTED_PARQUET,
        "import": IMPORT,
    }
    merged: dict[str, str] = {}
    for name in names:
        merged.update({key: value for key, (value, _why) in tables[name].items()})
    return merged


def default_conf(master: str) -> dict[str, str]:
    """Everything a job on ``master`` runs with."""
    if is_embedded(master):
        return preset("base", "resilience", "local")
    return preset("base", "resilience", "cluster")


# Read by the driver JVM as it starts: a session builder inside an already running driver
# (spark-submit's) comes too late for them, so whoever launches spark-submit passes them.
LAUNCH_KEYS = ("spark.driver.extraJavaOptions", "spark.driver.memory")


def launch_conf(master: str) -> dict[str, str]:
    """The part of ``default_conf`` spark-submit must be given on its command line."""
    return {k: v for k, v in default_conf(master).items() if k in LAUNCH_KEYS}


# A JVM compiling with C1 only, keeping the tiered default's code cache: C1 alone reserves
# 48 MB, which a long-lived JVM filled ("Out of space in CodeCache for adapters", then dead: a
# test worker's session JVM after hundreds of jobs). The tests run every JVM with it.
C1_ONLY = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"

# The driver JVM of a train step whose layout is a grid layout (half or full gridify): its
# JVM only schedules and moves bytes between Spark's cache and the Python workers that solve.
GRID_TRAINING_JIT: tuple[str, str] = (
    C1_ONLY,
    "C1 only: C2 compiled for 2-3 CPU-s of a medium half-gridify fit's 6-7 s, on the same two "
    "cores as the solving tasks; first fits 5.7/6.2/6.3 s against 6.7/6.6/7.7 (medium), "
    "40.6/40.1 against 42.4/48.8 (large), alternated (HISTORY); a search runs many fits in one "
    "JVM. MLlib's ALS runs in the JVM: it keeps C2",
)


def step_launch_conf(master: str, job: str, args: Sequence[str]) -> dict[str, str]:
    """``launch_conf`` for ``spark_jobs/<job>.py`` run with ``args``: a grid layout's train
    step also gets ``GRID_TRAINING_JIT``."""
    conf = launch_conf(master)
    if job == "train" and _layout(args) != "mllib":
        key = "spark.driver.extraJavaOptions"
        conf[key] = f"{conf.get(key, '')} {GRID_TRAINING_JIT[0]}".strip()
    return conf


def _layout(args: Sequence[str]) -> str:
    """The train step's ``--layout`` in ``args`` as its own argparse reads it (``--layout X``,
    ``--layout=X``, an abbreviation), else the configured default."""
    import argparse

    from musicrec.config import DEFAULT_LAYOUT

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--layout", default=DEFAULT_LAYOUT)
    return parser.parse_known_args([str(a) for a in args])[0].layout
