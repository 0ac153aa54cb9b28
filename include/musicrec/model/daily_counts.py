"""Per-day stream counts: ``lake/daily_counts/<level>/event_date=D`` (user_id, item_id, streams).

Prepare sums the window's days instead of re-reading and re-aggregating every raw event of
the window. A day's aggregate is rebuilt exactly when what it was built from changed: each
day has a record (``_days/D.json``) of the accepted files it read (path, size, modification
time) and the skip threshold it counted with; a re-ingest, late data, a backfill or another
``min_ms_played`` changes that fingerprint, and only those days are rebuilt, all in one job.

Readers and the rebuild take turns through ``_readers.lock``: a prepare holds it exclusively
while it rebuilds, then shared while it reads, so no prepare reads a day being replaced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import constants as c
from musicrec.config import PrepareConfig
from musicrec.lake import io
from musicrec.model.prepare import ITEM_ID, STREAMS, item_column

log = logging.getLogger("musicrec.daily_counts")
DAYS = "_days"  # underscore: Spark readers of the table skip it
READERS_LOCK = "_readers.lock"
EVENTS = "events"  # accepted events of the day, skips included (the manifest's count)


def table_path(root: Path, level: str) -> Path:
    return root / c.DAILY_COUNTS / level


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def fingerprint(accepted: Path, day: date, cfg: PrepareConfig) -> str:
    """What a day's aggregate depends on: every accepted data file of that date, and the skip
    threshold. Ingest replaces a batch's files whole, so a changed day has changed files."""
    folder = accepted / f"{c.EVENT_DATE}={day.isoformat()}"
    files = []
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and not any(p.startswith(("_", ".")) for p in rel.parts):
                st = path.stat()
                files.append([str(rel), st.st_size, st.st_mtime_ns])
    payload = {"files": files, "min_ms_played": cfg.min_ms_played, "level": cfg.item_level}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _record_path(table: Path, day: date) -> Path:
    return table / DAYS / f"{day.isoformat()}.json"


def _record(table: Path, day: date) -> dict[str, Any] | None:
    path = _record_path(table, day)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Refresh:
    """What one refresh found: days rebuilt, days reused, and each day's counts."""

    rebuilt: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    days: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rebuilt": self.rebuilt, "reused": self.reused}


def aggregate(events: DataFrame, cfg: PrepareConfig) -> DataFrame:
    """(event_date, user_id, item_id, streams, events) of accepted events: ``streams`` counts
    plays of at least ``min_ms_played`` (a shorter one is a skip), ``events`` every play."""
    stream = F.col(c.MS_PLAYED) >= cfg.min_ms_played
    return events.groupBy(
        F.col(c.EVENT_DATE), F.col(c.USER_ID), F.col(item_column(cfg.item_level)).alias(ITEM_ID)
    ).agg(
        F.count(F.when(stream, F.lit(1))).alias(STREAMS),
        F.count(F.lit(1)).alias(EVENTS),
    )


def rebuild(
    spark: SparkSession, cfg: PrepareConfig, accepted: Path, table: Path, days: list[date]
) -> dict[str, dict[str, int]]:
    """Rebuild the aggregates of ``days`` from accepted events in one job; returns each day's
    events, streams and pairs. Days without streams lose their partition."""
    wanted = [d.isoformat() for d in days]
    per_day = {d: {"events": 0, "streams": 0, "pairs": 0} for d in wanted}
    if io.table_exists(accepted):
        events = spark.read.parquet(str(accepted)).where(
            F.col(c.EVENT_DATE).isin([F.lit(d).cast("date") for d in days])
        )
        counted = aggregate(events, cfg).cache()
        try:
            for row in (
                counted.groupBy(c.EVENT_DATE)
                .agg(
                    F.sum(EVENTS).alias("events"),
                    F.sum(STREAMS).alias("streams"),
                    F.count(F.when(F.col(STREAMS) > 0, F.lit(1))).alias("pairs"),
                )
                .collect()
            ):
                per_day[row[c.EVENT_DATE].isoformat()] = {
                    "events": int(row["events"]),
                    "streams": int(row["streams"]),
                    "pairs": int(row["pairs"]),
                }
            rows = counted.where(F.col(STREAMS) > 0).select(
                c.USER_ID, ITEM_ID, STREAMS, c.EVENT_DATE
            )
            # One task per day: each day one file, whatever the input's partitioning.
            io.write_partitions(rows.repartition(len(days), c.EVENT_DATE), table, [c.EVENT_DATE])
        finally:
            counted.unpersist()
    for d in wanted:
        if per_day[d]["pairs"] == 0:  # a dynamic overwrite with no rows keeps the old folder
            io.drop_partition(table, f"{c.EVENT_DATE}={d}")
    return per_day


def refresh(
    spark: SparkSession, cfg: PrepareConfig, accepted: Path, table: Path, days: list[date]
) -> Refresh:
    """Bring the aggregates of ``days`` up to date with accepted events (the caller holds the
    readers lock exclusively)."""
    done = Refresh()
    stale: dict[date, str] = {}
    for day in days:
        current = fingerprint(accepted, day, cfg)
        record = _record(table, day)
        if record is not None and record.get("fingerprint") == current:
            done.reused.append(day.isoformat())
            done.days[day.isoformat()] = record["counts"]
        else:
            stale[day] = current
    if stale:
        counts = rebuild(spark, cfg, accepted, table, sorted(stale))
        for day, current in sorted(stale.items()):
            # Recorded after the write commits: a crash in between leaves the day stale.
            io.write_json_atomic(
                _record_path(table, day),
                {"day": day.isoformat(), "fingerprint": current, "counts": counts[day.isoformat()]},
            )
            done.rebuilt.append(day.isoformat())
            done.days[day.isoformat()] = counts[day.isoformat()]
        log.info(
            "daily counts: rebuilt %d day(s) %s, reused %d",
            len(stale),
            ", ".join(d.isoformat() for d in sorted(stale)),
            len(done.reused),
        )
    return done


def read_days(spark: SparkSession, table: Path, first: date, last: date) -> DataFrame:
    """(user_id, item_id, streams, event_date) of the days in [first, last] that have any."""
    present = [
        str(table / f"{c.EVENT_DATE}={d.isoformat()}")
        for d in days_between(first, last)
        if (table / f"{c.EVENT_DATE}={d.isoformat()}").is_dir()
    ]
    schema = f"{c.USER_ID} string, {ITEM_ID} string, {STREAMS} long, {c.EVENT_DATE} date"
    if not present:
        return spark.createDataFrame([], schema)
    return spark.read.option("basePath", str(table)).schema(schema).parquet(*present)


def summed(counts: DataFrame, first: date, last: date) -> DataFrame:
    """(user_id, item_id, streams) over the days in [first, last]: the window's r."""
    days = counts.where(F.col(c.EVENT_DATE).between(F.lit(first), F.lit(last)))
    return days.groupBy(c.USER_ID, ITEM_ID).agg(F.sum(STREAMS).alias(STREAMS))


@contextmanager
def window(
    spark: SparkSession, cfg: PrepareConfig, accepted: Path, root: Path, first: date, last: date
) -> Iterator[tuple[DataFrame, Refresh]]:
    """The window's daily counts, refreshed, held readable (shared lock) while the caller
    uses them."""
    table = table_path(root, cfg.item_level)
    table.mkdir(parents=True, exist_ok=True)
    with open(table / READERS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            done = refresh(spark, cfg, accepted, table, days_between(first, last))
            fcntl.flock(handle, fcntl.LOCK_SH)  # rebuilt: others may read alongside
            yield read_days(spark, table, first, last), done
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
