"""What a published version holds: top-N unseen items per user, related items, item names.

A user's (an item's) list is one row of two arrays, item indices and scores, best first; the
items table maps an index to its id and name once (the serving store's views join them).

Transforms over frames the publish step reads: the model's factors, the interactions of its
date (what each user already streamed), the id dictionaries and the accepted events (names).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import constants as c
from musicrec.model import factors, scoring
from musicrec.model.prepare import ITEM_ID, ITEM_IDX, USER_IDX


def item_names(
    events: DataFrame | None, items: DataFrame, level: str, names: DataFrame | None = None
) -> DataFrame:
    """``items`` with ``item_name``: the name last seen in the events, else the one in
    ``names`` (``lake/item_names/<level>``, written by the dataset import), else null."""
    out = items
    if events is not None:
        key = c.ARTIST_ID if level == "artist" else c.TRACK_ID
        label = c.ARTIST_NAME if level == "artist" else c.TRACK_NAME
        named = (
            events.where(F.col(label).isNotNull())
            .groupBy(F.col(key).alias(ITEM_ID))
            .agg(F.max_by(label, c.EVENT_TS).alias("_from_events"))
        )
        out = out.join(named, ITEM_ID, "left")
    else:
        out = out.withColumn("_from_events", F.lit(None).cast("string"))
    if names is not None:
        out = out.join(
            names.select(ITEM_ID, F.col("item_name").alias("_from_import")), ITEM_ID, "left"
        )
    else:
        out = out.withColumn("_from_import", F.lit(None).cast("string"))
    return out.withColumn("item_name", F.coalesce("_from_events", "_from_import")).drop(
        "_from_events", "_from_import"
    )


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): dot products become cosines."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0).astype(np.float32)


def recommendations(
    spark: SparkSession,
    user_factors: DataFrame,
    seen_pairs: DataFrame,
    items: np.ndarray,
    known: np.ndarray,
    users_dict: DataFrame,
    top_n: int,
) -> DataFrame:
    """(user_id, item_idx, score): per user the best ``top_n`` items it has not streamed, best
    first, as two arrays (ids and names are in the items table, once)."""
    seen = seen_pairs.groupBy(USER_IDX).agg(F.collect_set(ITEM_IDX).alias("seen"))
    users = user_factors.select(F.col("id").alias(USER_IDX), "features").join(
        seen, USER_IDX, "left"
    )
    recs = scoring.recommend(spark, users, items, known, top_n, exclude_seen=True)
    return recs.join(users_dict, USER_IDX).select(c.USER_ID, ITEM_IDX, "score")


def related_items(
    spark: SparkSession, items: np.ndarray, known: np.ndarray, top_n: int
) -> DataFrame:
    """(item_idx, related_item_idx, similarity): per item its ``top_n`` nearest items by
    cosine similarity of item factors, the item itself excluded, nearest first, as arrays."""
    unit = unit_rows(items)
    ids = np.flatnonzero(known).astype(np.int32)
    # Built as Arrow, not Python tuples: 160k rows of 32 floats at the large size.
    rows = factors.factor_table(ids, unit).rename_columns([USER_IDX, "features"])
    own = pa.ListArray.from_arrays(pa.array(np.arange(ids.size + 1, dtype=np.int32)), ids)
    item_rows = spark.createDataFrame(rows.append_column("seen", own))
    related = scoring.recommend(spark, item_rows, unit, known, top_n, exclude_seen=True)
    return related.select(
        F.col(USER_IDX).alias(ITEM_IDX),
        F.col(ITEM_IDX).alias("related_item_idx"),
        F.col("score").alias("similarity"),
    )
