"""The Spark operator maps a real spark-submit's exit code to retry or fail-fast."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from musicrec import constants as c
from musicrec.orchestration.operators import spark_task

from tests.conftest import ROOT

pytestmark = pytest.mark.airflow
APP = ROOT / "tests" / "apps" / "exit_with.py"


@pytest.fixture
def connection(monkeypatch):
    from musicrec.runtime import submit

    monkeypatch.setenv("PATH", submit.environment()["PATH"])  # spark-submit of this venv
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_DEFAULT",
        json.dumps({"conn_type": "spark", "host": "local[1]", "extra": {"deploy-mode": "client"}}),
    )


def submit(code: int):
    task = spark_task(
        f"exit_{code}", str(APP), [str(code)], str(ROOT / "dist" / "musicrec.zip"), retries=2
    )
    task.execute({})
    return task


@pytest.mark.parametrize("code", c.NON_RETRYABLE_EXIT_CODES)
def test_non_retryable_exit_codes_fail_fast_with_the_last_lines(connection, code):
    with pytest.raises(AirflowFailException, match="NOT RETRYABLE") as failure:
        submit(code)
    assert f"exit code {code}" in str(failure.value)
    assert f"exiting with {code} on purpose" in str(failure.value)


def test_other_failures_are_left_to_airflow_retries(connection):
    with pytest.raises(AirflowException) as failure:
        submit(c.EXIT_RETRYABLE)
    assert not isinstance(failure.value, AirflowFailException)
    assert "exit code 1" in str(failure.value)


def test_a_missing_connection_is_refused_instead_of_defaulting_to_yarn(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_DEFAULT", raising=False)
    with pytest.raises(AirflowFailException, match="not defined"):
        submit(0)


def test_driver_jvm_options_and_heap_are_on_the_spark_submit_command_line(connection):
    """The driver's session builder starts after its JVM: the class archive and the heap
    size must be given to spark-submit itself, for the connection's master."""
    from musicrec.runtime import spark_conf

    task = submit(0)
    command = task._hook._build_spark_submit_command(str(APP))
    for key, value in spark_conf.launch_conf("local[1]").items():
        assert f"{key}={value}" in command
    assert "spark.driver.memory=4g" in command


def test_a_grid_layout_train_task_runs_its_driver_with_c1_only(connection, tmp_path):
    """The train task of a grid layout (the default) gets the JIT setting on top of the
    launch conf; a train task of MLlib's layout (ALS inside the JVM) does not."""
    from musicrec.runtime import spark_conf

    train = tmp_path / "train.py"  # the operator names the job after the application file
    train.write_text(APP.read_text())
    commands = {}
    for name, args in (("default", ["0"]), ("mllib", ["0", "--layout", "mllib"])):
        task = spark_task(f"train_{name}", str(train), args, str(ROOT / "dist" / "musicrec.zip"))
        task.execute({})
        commands[name] = " ".join(task._hook._build_spark_submit_command(str(train)))
    option = spark_conf.GRID_TRAINING_JIT[0]
    archive = spark_conf.BASE["spark.driver.extraJavaOptions"][0]
    assert f"spark.driver.extraJavaOptions={archive} {option}" in commands["default"]
    assert f"spark.driver.extraJavaOptions={archive}" in commands["mllib"]
    assert option not in commands["mllib"]
