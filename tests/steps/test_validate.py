"""The Great Expectations suite: passes on good days, names the expectation on bad ones."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.config import Interval, ValidationConfig
from musicrec.exceptions import DataRejectedError
from musicrec.ingest.suite import volume_bounds
from musicrec.steps import validate as step
from pyspark.sql import functions as F

from tests.conftest import make_data_root
from tests.jobs import run_job

pytestmark = pytest.mark.unit


def _args(root: Path, day: str, *extra: str) -> list[str]:
    end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    return ["--data-root", str(root), "--start", day, "--end", end, *extra]


def test_clean_days_pass_with_data_docs(clean_root):
    for day in ("2026-02-01", "2026-02-02"):
        assert run_job("ingest", _args(clean_root, day)) == 0
        assert run_job("validate", _args(clean_root, day)) == 0
    result = json.loads((clean_root / "manifests/validate/20260202T00_24h.json").read_text())
    assert result["success"] and result["expectations_evaluated"] >= 20
    assert result["volume_history"] and result["bounds"]["max_rows"] is not None
    assert (clean_root / "reports/data_docs/20260202T00_24h/index.html").exists()


def test_too_many_quarantined_rows_fail_naming_the_expectation(fault_root, capsys):
    assert run_job("ingest", _args(fault_root, "2026-01-01")) == 0
    assert run_job("validate", _args(fault_root, "2026-01-01")) == c.EXIT_DATA_REJECTED
    log = capsys.readouterr().err  # what the task log shows
    assert "DATA REJECTED" in log
    assert "expect_column_values_to_be_between(column=quarantine_ratio" in log
    # A looser threshold lets the same day through.
    assert (
        run_job("validate", _args(fault_root, "2026-01-01", "--quarantine-max-ratio", "0.05")) == 0
    )


def test_the_lateness_given_to_ingest_is_the_window_validation_checks(spark, fault_root):
    """Set once, on ingest: validation reads the window from the ingest manifest."""
    args = _args(fault_root, "2026-01-01")
    assert run_job("ingest", [*args, "--allowed-lateness-hours", "720"]) == 0
    events = spark.read.parquet(str(fault_root / c.ACCEPTED_EVENTS))
    oldest = events.where(F.col("batch") == "20260101T00_24h").agg(F.min("event_ts")).first()[0]
    # Stale events (10 to 60 days old) are accepted now: a 48-hour window would reject them.
    assert oldest.replace(tzinfo=UTC) < datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=9)
    assert run_job("validate", [*args, "--quarantine-max-ratio", "0.5"]) == 0
    result = json.loads((fault_root / "manifests/validate/20260101T00_24h.json").read_text())
    assert result["bounds"]["event_ts"][0].startswith("2025-12-02T00:00")
    assert result["success"]


@pytest.fixture(scope="module")
def two_clean_days(tmp_path_factory, clean_landing) -> Path:
    root = make_data_root(tmp_path_factory.mktemp("two_days"), clean_landing)
    for day in ("2026-02-01", "2026-02-02"):
        assert run_job("ingest", _args(root, day)) == 0
    return root


@pytest.mark.parametrize(
    ("defect", "expectation"),
    [
        (lambda df: df.unionByName(df.limit(3)), "expect_column_values_to_be_unique"),
        (
            lambda df: df.withColumn(
                "user_id", F.when(F.col("ms_played") > 100000, None).otherwise(F.col("user_id"))
            ),
            "expect_column_values_to_not_be_null",
        ),
        (
            lambda df: df.withColumn("ms_played", -F.col("ms_played")),
            "expect_column_values_to_be_between(column=ms_played",
        ),
        (
            lambda df: df.withColumn("event_ts", F.col("event_ts") - F.expr("INTERVAL 30 DAYS")),
            "expect_column_values_to_be_between(column=event_ts",
        ),
        (lambda df: df.drop("track_id"), "expect_column_to_exist(column=track_id"),
        (
            lambda df: df.withColumn("ms_played", F.col("ms_played").cast("string")),
            "expect_column_values_to_be_of_type(column=ms_played",
        ),
        (lambda df: df.limit(100), "expect_table_row_count_to_be_between"),
    ],
    ids=["duplicate-ids", "null-ids", "ms-range", "event-time", "missing-column", "type", "volume"],
)
def test_each_defect_fails_its_expectation(spark, two_clean_days, tmp_path, defect, expectation):
    clean_root = two_clean_days
    good = spark.read.parquet(str(clean_root / c.ACCEPTED_EVENTS))
    bad_table = tmp_path / "bad_accepted"
    defect(good.where(F.col("batch") == "20260202T00_24h")).write.partitionBy(
        "event_date", "batch"
    ).parquet(str(bad_table))
    interval = Interval.parse("2026-02-02", "2026-02-03")
    manifest = step.run(spark, clean_root, interval, ValidationConfig(), bad_table, "test")
    with pytest.raises(DataRejectedError) as err:
        step.enforce(manifest)
    assert expectation in err.value.summary
    assert "Data Docs: file://" in err.value.summary


@pytest.mark.parametrize(
    ("history", "low", "high"),
    [([], 1, None), ([100, 300], 100, 300), ([10], 5, 15)],
)
def test_volume_band_from_trailing_mean(history, low, high):
    assert volume_bounds(history, ValidationConfig(volume_band=0.5)) == (low, high)
