"""The ingestion job on generated files: exact reconciliation, idempotency, isolation."""

from __future__ import annotations

import gzip
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.config import IngestConfig, Interval
from musicrec.exceptions import MissingInputError
from musicrec.ingest import dedup
from musicrec.steps import ingest as step
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from tests.conftest import FAULT_DAY
from tests.jobs import run_job

pytestmark = pytest.mark.unit
DAY = FAULT_DAY.isoformat()
NEXT = (FAULT_DAY + timedelta(days=1)).isoformat()


def ingest(root: Path, start: str = DAY, end: str = NEXT, *extra: str) -> int:
    return run_job("ingest", ["--data-root", str(root), "--start", start, "--end", end, *extra])


def manifest(root: Path, batch: str) -> dict:
    return json.loads((root / c.MANIFESTS / "ingest" / f"{batch}.json").read_text())


def accepted(spark, root: Path):
    return spark.read.parquet(str(root / c.ACCEPTED_EVENTS))


def lake_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "lake").rglob("*") if p.is_file())


def test_every_line_reconciles_with_the_generators_truth(spark, fault_root):
    assert ingest(fault_root) == 0
    truth = json.loads((fault_root / c.LANDING_EVENTS / "_truth" / f"dt={DAY}.json").read_text())
    counts = manifest(fault_root, "20260101T00_24h")["counts"]
    assert counts["read"] == truth["lines"]
    assert counts["accepted"] == truth["accepted"]
    assert counts["duplicates"] == truth["duplicates"]
    assert counts["quarantined_by_reason"] == {r: truth[r] for r in c.QUARANTINE_REASONS}
    assert counts["read"] == counts["accepted"] + counts["quarantined"] + counts["duplicates"]
    # The tables hold what the manifest says, and quarantine keeps raw text, file and reason.
    table = accepted(spark, fault_root)
    assert table.count() == truth["accepted"]
    assert table.select("event_id").distinct().count() == truth["accepted"]
    quarantine = spark.read.parquet(str(fault_root / c.QUARANTINE_EVENTS))
    assert quarantine.count() == counts["quarantined"]
    assert quarantine.where(F.col("raw_line").isNull() | F.col("source_file").isNull()).count() == 0
    # Late events were accepted under the dates they happened on.
    assert set(manifest(fault_root, "20260101T00_24h")["outputs"]["accepted_partitions"]) > {DAY}


def test_accepted_files_skip_dictionaries_only_for_near_unique_columns(fault_root):
    import pyarrow.parquet as pq

    assert ingest(fault_root) == 0
    written = (fault_root / c.ACCEPTED_EVENTS).glob(f"{c.EVENT_DATE}=*/*/*.parquet")
    # The biggest file: in a file of a few late events no dictionary pays off.
    meta = pq.ParquetFile(max(written, key=lambda p: p.stat().st_size)).metadata
    chunk = meta.row_group(0)
    encodings = {
        chunk.column(i).path_in_schema: set(chunk.column(i).encodings)
        for i in range(chunk.num_columns)
    }
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    for column in ("event_id", "event_ts", "ms_played", "user_id", "track_id"):
        assert not encodings[column] & dictionary, column
    for column in ("artist_id", "platform", "reason_end", "source_file"):
        assert encodings[column] & dictionary, column
    # Timestamps as Parquet's standard INT64 microseconds, not the deprecated INT96.
    ts = meta.schema.column(list(encodings).index("event_ts"))
    assert ts.physical_type == "INT64" and "timeUnit=microseconds" in str(ts.logical_type)


def test_rerun_replaces_exactly_its_own_output(spark, fault_root):
    assert ingest(fault_root) == 0
    first = accepted(spark, fault_root).orderBy("event_id").collect()
    files = lake_files(fault_root)
    assert ingest(fault_root) == 0
    assertDataFrameEqual(accepted(spark, fault_root).orderBy("event_id").collect(), first)
    after = lake_files(fault_root)
    assert len(after) == len(files)
    assert not [f for f in after if "staging" in f or "_temporary" in f]
    assert manifest(fault_root, "20260101T00_24h")["counts"]["duplicates"] > 0


def test_ingesting_one_day_leaves_other_days_untouched(spark, fault_root):
    assert ingest(fault_root) == 0
    day1 = {p: p.stat().st_mtime_ns for p in (fault_root / "lake").rglob("*20260101T00_24h*/*")}
    assert ingest(fault_root, NEXT, "2026-01-03") == 0
    assert ingest(fault_root, NEXT, "2026-01-03") == 0
    assert {p: p.stat().st_mtime_ns for p in day1} == day1
    batches = {r.batch for r in accepted(spark, fault_root).select("batch").distinct().collect()}
    assert batches == {"20260101T00_24h", "20260102T00_24h"}


@pytest.mark.parametrize(
    ("module", "name"), [(step, "stage_rows"), (dedup, "without_copies")], ids=["stage", "dedup"]
)
def test_a_write_failing_half_way_keeps_the_previous_output(
    spark, fault_root, monkeypatch, module, name
):
    """A task fails while the interval is staged, or while duplicate copies are removed."""
    assert ingest(fault_root) == 0
    before = accepted(spark, fault_root).orderBy("event_id").collect()
    original = getattr(module, name)

    def poisoned(*args):
        from pyspark.sql.functions import udf

        @udf("string")
        def explode_late(value):
            if value is not None and value.startswith("7"):
                raise RuntimeError("disk full (injected)")
            return value

        return original(*args).withColumn("event_id", explode_late("event_id"))

    monkeypatch.setattr(module, name, poisoned)
    assert ingest(fault_root) == c.EXIT_RETRYABLE
    assertDataFrameEqual(accepted(spark, fault_root).orderBy("event_id").collect(), before)
    monkeypatch.undo()
    assert ingest(fault_root) == 0  # and a retry cleans up after the failed attempt
    assert not [f for f in lake_files(fault_root) if "staging" in f]
    assertDataFrameEqual(accepted(spark, fault_root).orderBy("event_id").collect(), before)


def _event_id(line: bytes) -> str | None:
    try:
        return json.loads(line).get("event_id")
    except (ValueError, AttributeError):
        return None


def test_a_rerun_with_nothing_left_to_quarantine_drops_its_old_quarantine(spark, fault_root):
    start, end, batch = f"{DAY}T07:00", f"{DAY}T08:00", "20260101T07_1h"
    assert ingest(fault_root, start, end) == 0
    assert manifest(fault_root, batch)["counts"]["quarantined"] > 0
    table = accepted(spark, fault_root).where(F.col(c.BATCH) == batch)
    kept = {r.event_id for r in table.select("event_id").collect()}
    # The shipper re-delivers the hour with its bad lines fixed (dropped).
    for path in (fault_root / c.LANDING_EVENTS / f"dt={DAY}" / "hour=07").glob("*.jsonl.gz"):
        lines = gzip.decompress(path.read_bytes()).split(b"\n")
        path.write_bytes(gzip.compress(b"\n".join(x for x in lines if _event_id(x) in kept)))
    assert ingest(fault_root, start, end) == 0
    after = manifest(fault_root, batch)
    folder = fault_root / c.QUARANTINE_EVENTS / f"{c.BATCH}={batch}"
    assert after["counts"]["quarantined"] == 0
    assert after["outputs"]["removed_stale_partitions"] == [str(folder)]
    assert not folder.exists()
    assert after["counts"]["accepted"] == len(kept)


def _hours(root: Path, hours: list[int], parallel: int = 1) -> None:
    intervals = [(f"{DAY}T{h:02d}:00", f"{DAY}T{h + 1:02d}:00") for h in hours]
    with ThreadPoolExecutor(parallel) as pool:
        codes = list(pool.map(lambda se: ingest(root, *se), intervals))
    assert codes == [0] * len(hours)


def test_hour_order_and_concurrency_do_not_change_the_result(spark, tmp_path, fault_root):
    roots = [tmp_path / name for name in ("in_order", "reversed", "concurrent")]
    for root in roots:
        shutil.copytree(fault_root / "landing", root / "landing")
    hours = [7, 8, 9]
    _hours(roots[0], hours)
    _hours(roots[1], hours[::-1])
    _hours(roots[2], hours, parallel=2)
    reference = accepted(spark, roots[0])
    assert reference.count() > 0
    for root in roots[1:]:
        assertDataFrameEqual(accepted(spark, root), reference)
    dups = [manifest(roots[0], f"20260101T{h:02d}_1h")["counts"]["duplicates"] for h in hours]
    assert sum(dups) > 0


def test_redelivery_on_the_next_day_is_a_duplicate_in_any_order(spark, tmp_path, fault_root):
    landing = fault_root / c.LANDING_EVENTS
    last_hour = landing / f"dt={DAY}" / "hour=23" / "part-00000.jsonl.gz"
    line = next(
        x
        for x in gzip.decompress(last_hour.read_bytes()).split(b"\n")
        if x.startswith(b'{"event_id"') and b"client_version" not in x
    )
    json.loads(line)
    redelivered = landing / f"dt={NEXT}" / "hour=00" / "part-99999.jsonl.gz"
    redelivered.write_bytes(gzip.compress(line + b"\n"))
    other = tmp_path / "reverse"
    shutil.copytree(fault_root / "landing", other / "landing")
    assert ingest(fault_root) == 0 and ingest(fault_root, NEXT, "2026-01-03") == 0
    assert ingest(other, NEXT, "2026-01-03") == 0 and ingest(other) == 0
    assertDataFrameEqual(accepted(spark, other), accepted(spark, fault_root))
    event_id = json.loads(line)["event_id"]
    assert accepted(spark, fault_root).where(F.col("event_id") == event_id).count() == 1


def test_missing_hour_fails_or_warns_by_policy(spark, fault_root):
    shutil.rmtree(fault_root / c.LANDING_EVENTS / f"dt={DAY}" / "hour=05")
    cfg = IngestConfig(fault_root, Interval.parse(DAY, NEXT))
    with pytest.raises(MissingInputError, match="2026-01-01T05"):
        step.run(spark, cfg, "test")
    assert ingest(fault_root) == c.EXIT_RETRYABLE
    assert ingest(fault_root, DAY, NEXT, "--missing-hours", "warn") == 0
    assert manifest(fault_root, "20260101T00_24h")["inputs"]["missing_hours"] == [
        "2026-01-01T05:00:00+00:00"
    ]


def test_bad_arguments_are_not_retryable(fault_root):
    assert ingest(fault_root, NEXT, DAY) == c.EXIT_BAD_ARGS


def test_other_batches_are_the_folders_of_the_window_dates_only(tmp_path):
    from datetime import date

    from musicrec.lake import io

    table = tmp_path / "accepted"
    for folder in (
        "event_date=2026-01-01/batch=a",
        "event_date=2026-01-01/batch=mine",
        "event_date=2026-01-02/batch=b",
        "event_date=2026-01-04/batch=c",  # outside the window
        "event_date=2026-01-02/.spark-staging-1",  # not a partition folder
    ):
        (table / folder).mkdir(parents=True)
    found = io.other_batches(table, date(2026, 1, 1), date(2026, 1, 3), "mine")
    assert [str(p.relative_to(table)) for p in found] == [
        "event_date=2026-01-01/batch=a",
        "event_date=2026-01-02/batch=b",
    ]
    assert io.other_batches(tmp_path / "absent", date(2026, 1, 1), date(2026, 1, 3), "x") == []


def test_a_staged_interval_is_invisible_to_readers_of_the_table(spark, fault_root):
    """What an ingest stages (here: a copy of the whole table) is not part of the table."""
    from musicrec.lake import io
    from musicrec.schemas import ACCEPTED_SCHEMA

    assert ingest(fault_root) == 0
    table = fault_root / c.ACCEPTED_EVENTS
    rows = accepted(spark, fault_root).count()
    folder, removed = io.staging_for(table, "20260102T00_24h")
    assert removed == []
    staged = spark.read.schema(ACCEPTED_SCHEMA).parquet(str(table))
    io.write_staged(staged, folder, [c.EVENT_DATE, c.BATCH], {})
    assert io.staged_partitions(folder)
    assert accepted(spark, fault_root).count() == rows
    assert io.staging_for(table, "20260102T00_24h") == (folder, [str(folder)])
    assert not folder.exists()
