"""Foundation: pinned versions agree, the session helper, presets, task retries."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from musicrec.runtime import spark_conf

from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line)
        if m:
            pins[re.sub(r"\[.*\]", "", m.group(1)).lower()] = m.group(2)
    return pins


def test_every_requirement_is_pinned_exactly():
    lines = [
        ln
        for ln in (ROOT / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines and all("==" in ln for ln in lines), lines


def test_installed_versions_match_pins():
    for name in (
        "apache-airflow",
        "apache-airflow-providers-apache-spark",
        "pyspark",
        "pyspark-client",
        "great-expectations",
        "pandas",
    ):
        assert version(name) == _pins()[name], name
    assert int(version("pandas").split(".")[0]) < 3


def test_python_and_jvm_spark_versions_agree(spark):
    import pyspark
    from musicrec.runtime.session import jvm_spark_version

    assert pyspark.__version__ == jvm_spark_version(spark) == spark.version
    assert pyspark.__version__ == version("pyspark-client") == _pins()["pyspark"]


def test_default_master_retries_tasks():
    # local[*] ignores spark.task.maxFailures; local[*,N] with N > 1 retries.
    m = re.fullmatch(r"local\[(\*|\d+),(\d+)\]", spark_conf.DEFAULT_MASTER)
    assert m and int(m.group(2)) > 1


def test_session_has_presets_and_checkpoint_dir(spark):
    conf = spark.sparkContext.getConf()
    assert spark_conf.is_embedded(spark.sparkContext.master)
    for key, value in spark_conf.default_conf(spark.sparkContext.master).items():
        if key in ("spark.sql.shuffle.partitions", "spark.driver.memory"):
            continue  # the test fixture lowers these on purpose
        if key == "spark.driver.extraJavaOptions":  # Spark adds its --add-opens in front
            assert conf.get(key).endswith(value), key
            continue
        assert conf.get(key) == value, key
    assert spark.sparkContext.getCheckpointDir()
    assert conf.get("spark.ui.showConsoleProgress") == "false"


def test_cluster_masters_exclude_failing_executors_local_does_not():
    assert (
        spark_conf.default_conf("spark://127.0.0.1:7077")["spark.excludeOnFailure.enabled"]
        == "true"
    )
    assert (
        spark_conf.default_conf("local-cluster[2,1,1024]")["spark.excludeOnFailure.enabled"]
        == "true"
    )
    assert spark_conf.default_conf("local[*,4]")["spark.excludeOnFailure.enabled"] == "false"


def test_cluster_applications_cap_their_cores_embedded_ones_do_not():
    assert spark_conf.default_conf("spark://127.0.0.1:7077")["spark.cores.max"] == "2"
    assert "spark.cores.max" not in spark_conf.default_conf("local[*,4]")


def test_a_poison_partition_is_told_apart_from_other_task_failures():
    from musicrec.runtime.jobs import poison_task

    lost = (
        "Lost task 3.3 in stage 0.0 (TID 9) (127.0.0.1 executor 4): ExecutorLostFailure "
        "(executor 4 exited caused by one of the running tasks) Reason: Command exited with "
        "code 137"
    )
    aborted = "Job aborted due to stage failure: Task 3 in stage 0.0 failed 4 times, most recent"
    found = poison_task(RuntimeError(f"{aborted} failure: {lost}"))
    assert found and "failed 4 times" in found and "ExecutorLostFailure (executor 4" in found
    excluded = "Aborting TaskSet 0.0 because task 3 (partition 3)\ncannot run anywhere due to "
    excluded += f"node and executor excludeOnFailure.\nMost recent failure:\n{lost}"
    assert poison_task(RuntimeError(excluded))
    assert poison_task(RuntimeError(f"{aborted} failure: java.lang.ArithmeticException")) is None
    assert poison_task(RuntimeError(lost)) is None  # lost once, retried: not an abort


def test_every_resilience_setting_has_a_reason():
    for table in (
        spark_conf.BASE,
        spark_conf.RESILIENCE,
        spark_conf.LOCAL_OVERRIDES,
        spark_conf.CLUSTER,
    ):
        for key, (value, why) in table.items():
            assert key.startswith("spark.") and value and len(why) > 15, key
    for key, (value, why) in spark_conf.ACCEPTED_PARQUET.items():
        assert key.startswith("parquet.") and value and len(why) > 15, key


def test_small_shuffle_is_read_by_one_task(spark):
    """AQE sizes post-shuffle partitions by bytes, not by cores (parallelismFirst=false): a
    shuffle of a few MB, a small day's, is read by one task instead of one per core."""
    from pyspark.sql import functions as F

    assert spark.conf.get("spark.sql.adaptive.coalescePartitions.parallelismFirst") == "false"
    rows = spark.range(400_000).select((F.col("id") * 7919 % 200_003).alias("k"), "id")
    sums = rows.groupBy("k").agg(F.sum("id").alias("s")).withColumn("p", F.spark_partition_id())
    got = sums.groupBy("p").count().collect()
    assert sum(r["count"] for r in got) == 200_003 and len(got) == 1, got


def _fail_on_first_attempt(rows):
    from pyspark import TaskContext

    if TaskContext.get().attemptNumber() == 0:
        raise RuntimeError("transient failure injected on attempt 0")
    yield sum(1 for _ in rows)


def test_task_failing_once_is_retried(spark):
    counts = spark.sparkContext.parallelize(range(100), 4).mapPartitions(_fail_on_first_attempt)
    assert sum(counts.collect()) == 100


PLAIN_LOCAL_PROBE = """
import sys
from pyspark import TaskContext
from musicrec.runtime.session import build_session
def fail_once(rows):
    if TaskContext.get().attemptNumber() == 0:
        raise RuntimeError("transient")
    yield 1
spark = build_session("probe", master=sys.argv[1], checkpoint_dir=sys.argv[2])
try:
    spark.sparkContext.parallelize(range(4), 2).mapPartitions(fail_once).collect()
    print("SUCCEEDED")
except Exception:
    print("FAILED")
"""


def test_plain_local_master_would_not_retry(tmp_path):
    """The reason for local[*,N]: the same fail-once task kills a plain local[2] job."""
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_LOCAL_PROBE, "local[2]", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "FAILED" in out.stdout, out.stdout + out.stderr[-2000:]


def test_make_test_stops_at_once_naming_what_is_missing(tmp_path):
    """`make test` checks the machine before it installs or runs anything."""
    import shutil
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "java", "sed", "head", "id", "ls", "grep"):  # no docker-compose
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    out = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "scripts" / "check_prereqs.sh"), "--tests"]
        + [sys.executable],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1, out
    assert "MISSING: docker-compose" in out.stderr
    assert "sudo apt-get install -y --no-install-recommends docker-compose" in out.stderr
    full = subprocess.run(
        [str(ROOT / "scripts" / "check_prereqs.sh"), "--tests"], capture_output=True, text=True
    )
    assert full.returncode == 0, full.stderr  # this machine has everything


@pytest.mark.parametrize(
    ("job", "args", "c1_only"),
    [
        ("train", ["--as-of", "2026-01-14"], True),  # the default layout: half gridify
        ("train", ["--layout", "full-gridify"], True),
        ("train", ["--layout=half-gridify"], True),
        ("train", ["--layout", "mllib"], False),
        ("train", ["--lay", "mllib", "--rank", "8"], False),  # argparse's abbreviation
        ("evaluate", ["--layout", "half-gridify"], False),
    ],
)
def test_only_a_grid_layout_train_step_compiles_with_c1_only(job, args, c1_only):
    from musicrec.runtime import submit

    option = spark_conf.GRID_TRAINING_JIT[0]
    conf = spark_conf.step_launch_conf("local[2]", job, args)
    archive = spark_conf.BASE["spark.driver.extraJavaOptions"][0]
    expected = f"{archive} {option}" if c1_only else archive
    assert conf["spark.driver.extraJavaOptions"] == expected
    assert conf["spark.driver.memory"] == spark_conf.launch_conf("local[2]")["spark.driver.memory"]
    command = submit.command(job, args, "local[2]")
    assert f"spark.driver.extraJavaOptions={expected}" in command


def test_a_grid_training_driver_runs_with_c1_only(tmp_path):
    """The options reach the driver JVM spark-submit starts (its runtime arguments), with
    the tests' own JIT setting (conftest) taken out of the environment."""
    from musicrec.runtime import submit

    app = tmp_path / "jvm_args.py"
    app.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory\n"
        "print('JVM ARGS', list(bean.getRuntimeMXBean().getInputArguments()))\n"
    )
    env = {k: v for k, v in submit.environment().items() if k != "JDK_JAVA_OPTIONS"}
    found = {}
    for layout in ("half-gridify", "mllib"):
        launch = spark_conf.step_launch_conf("local[1]", "train", ["--layout", layout])
        cmd = submit.app_command(app, [], "local[1]", launch)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        found[layout] = next(x for x in out.stdout.splitlines() if x.startswith("JVM ARGS"))
    for option in spark_conf.GRID_TRAINING_JIT[0].split():
        assert f"'{option}'" in found["half-gridify"]
        assert f"'{option}'" not in found["mllib"]
    assert "-XX:SharedArchiveFile=" in found["mllib"]


def test_spark_submit_maps_the_class_archive_make_dist_built(tmp_path):
    """`make dist` recorded Spark's classes on this JDK; a driver started with the presets
    loads them from the archive (the JVM's class+load log names the source)."""
    from musicrec.runtime import submit

    assert spark_conf.CLASS_ARCHIVE.is_file(), "make dist did not build the class archive"
    log = tmp_path / "classes.log"
    options = spark_conf.BASE["spark.driver.extraJavaOptions"][0]
    # -Xshare:on: the JVM refuses to start rather than silently not mapping the archive.
    extra = {"spark.driver.extraJavaOptions": f"{options} -Xshare:on -Xlog:class+load:file={log}"}
    cmd = submit.app_command(ROOT / "tests" / "apps" / "exit_with.py", ["0"], extra_conf=extra)
    out = subprocess.run(cmd, env=submit.environment(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = log.read_text()
    assert "org.apache.spark.deploy.SparkSubmit source: shared objects file (top)" in loaded


def test_a_job_is_not_submitted_with_py_files_older_than_the_sources(tmp_path, monkeypatch):
    """The driver and Python workers import `dist/musicrec.zip`: code edited since `make dist`
    is refused with the fix named, not silently run in its old version."""
    import os

    from musicrec.runtime import submit

    assert submit.stale_sources() == []  # `make test` built the archive from these sources
    archive, sources = tmp_path / "musicrec.zip", tmp_path / "src"
    (sources / "pkg").mkdir(parents=True)
    archive.write_bytes(b"zip")
    (sources / "pkg" / "old.py").write_text("")
    os.utime(sources / "pkg" / "old.py", (1, 1))
    assert submit.stale_sources(archive, [sources]) == []
    (sources / "pkg" / "new.py").write_text("")
    os.utime(archive, (1, 2))
    assert submit.stale_sources(archive, [sources]) == [sources / "pkg" / "new.py"]
    monkeypatch.setattr(submit, "PY_FILES", archive)
    monkeypatch.setattr(submit, "SOURCES", (sources,))
    with pytest.raises(RuntimeError, match=r"older than .*new\.py \(1 changed files\).*make dist"):
        submit.app_command(ROOT / "tests" / "apps" / "exit_with.py", ["0"])
