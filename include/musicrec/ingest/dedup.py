"""Duplicates among an interval's valid rows: the first delivery of an event id wins.

Pure transforms over staged rows (``lake.io.read_staged``: each row with its file and row
index). Ids are nearly always unique, so copies are found by a hash aggregate on 64-bit
hashes first, and only the rows whose hash repeats are ranked by the exact id.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from musicrec import constants as c
from musicrec.schemas import ACCEPTED_COLUMNS

ID_HASH = "_h"
DUP_DATE = "_date"  # the event date of a duplicate copy
# A staged row's identity: its file and row index (line order within a source file and date).
FILE = c.STAGED_FILE
ROW = c.STAGED_ROW


def _id_copies(valid: DataFrame, seen_ids: DataFrame | None) -> DataFrame:
    """Every valid copy of an event id here (``_here`` 1), plus ids seen before (``_here`` 0),
    with the 64-bit hash of the id (``_h``)."""
    copies = valid.select(
        F.col(c.EVENT_ID).alias("_id"),
        F.lit(1).alias("_here"),
        F.col(c.SOURCE_FILE),
        F.col(c.EVENT_DATE).alias(DUP_DATE),
        F.col(FILE),
        F.col(ROW),
        F.xxhash64(F.col(c.EVENT_ID)).alias(ID_HASH),
    )
    if seen_ids is not None:
        earlier = seen_ids.select(
            F.col(c.EVENT_ID).alias("_id"),
            F.lit(0).alias("_here"),
            F.lit(None).cast("string").alias(c.SOURCE_FILE),
            F.lit(None).cast("date").alias(DUP_DATE),
            F.lit(None).cast("string").alias(FILE),
            F.lit(None).cast("long").alias(ROW),
            F.xxhash64(F.col(c.EVENT_ID)).alias(ID_HASH),
        )
        copies = copies.unionByName(earlier)
    return copies


def repeated_hashes(valid: DataFrame, seen_ids: DataFrame | None) -> DataFrame:
    """Hashes (``_h``) of event ids with more than one valid copy here or seen before.

    Ids are nearly always unique: counting copies per 64-bit hash is a hash aggregate on a
    long (no sort, no strings shuffled). A hash collision merely adds a hash here; the exact
    ids are compared in ``duplicate_copies``.
    """
    hashed = _id_copies(valid, seen_ids)
    return hashed.groupBy(ID_HASH).count().where(F.col("count") > 1).select(ID_HASH)


def duplicate_copies(
    valid: DataFrame, seen_ids: DataFrame | None, repeated: DataFrame | None = None
) -> DataFrame:
    """Staged rows (``_file``, ``_row``) and event dates (``_date``) of valid copies that
    repeat an event id: a narrow frame.

    ``valid`` are staged valid rows with their identity (``io.read_staged``). The first
    delivery wins: the earliest source file; within a file, the earliest event date, then
    line order. ``seen_ids`` (column ``event_id``) are ids already delivered before this
    interval (landing lookback) or accepted by another batch: every copy here is then a
    duplicate. Quarantined lines never compete. Only the copies whose hash repeats
    (``repeated``, from ``repeated_hashes`` unless given) are ranked, by the exact id.
    """
    if repeated is None:
        repeated = repeated_hashes(valid, seen_ids)
    # Broadcast: the repeated hashes are few (a whole hour redelivered is 1/24 of a day), and
    # without the hint the planner, not knowing that, shuffles and sorts every valid id.
    contested = _id_copies(valid, seen_ids).join(F.broadcast(repeated), ID_HASH)
    first = Window.partitionBy("_id").orderBy("_here", c.SOURCE_FILE, DUP_DATE, FILE, ROW)
    ranked = contested.withColumn("_n", F.row_number().over(first))
    return ranked.where((F.col("_n") > 1) & (F.col("_here") == 1)).select(FILE, ROW, DUP_DATE)


def without_copies(valid: DataFrame, copies: DataFrame) -> DataFrame:
    """Staged valid rows minus the duplicate copies, as accepted table rows."""
    kept = valid.join(copies.select(FILE, ROW), [FILE, ROW], "left_anti")
    return kept.select(*ACCEPTED_COLUMNS)
