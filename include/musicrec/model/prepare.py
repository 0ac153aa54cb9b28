"""Pure transforms of the prepare step: streams -> counts -> preference and confidence.

Hu, Koren & Volinsky (2008): preference p = 1 if r > 0; confidence grows with r. MLlib takes
``rating`` = t(r) and applies c = 1 + alpha * |rating| itself (see ``PrepareConfig``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from musicrec import constants as c
from musicrec.config import PrepareConfig

USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
ITEM_ID = "item_id"
STREAMS = "streams"
RATING = "rating"
INTERACTION_COLUMNS = [c.USER_ID, ITEM_ID, USER_IDX, ITEM_IDX, STREAMS, RATING]


def item_column(level: str) -> str:
    return c.ARTIST_ID if level == "artist" else c.TRACK_ID


def stream_counts(events: DataFrame, cfg: PrepareConfig) -> DataFrame:
    """r = streams per (user, item); a play under ``min_ms_played`` is a skip, not a stream."""
    streams = events.where(F.col(c.MS_PLAYED) >= cfg.min_ms_played)
    return streams.groupBy(F.col(c.USER_ID), F.col(item_column(cfg.item_level)).alias(ITEM_ID)).agg(
        F.count(F.lit(1)).alias(STREAMS)
    )


def with_rating(counts: DataFrame, cfg: PrepareConfig) -> DataFrame:
    """rating = t(r), without alpha: MLlib multiplies by alpha exactly once."""
    r = F.col(STREAMS).cast("double")
    if cfg.scheme == "log":
        rating = F.log1p(r / F.lit(cfg.epsilon))  # log(1 + r / epsilon), Hu et al. eq. 6
    else:
        rating = r  # linear: c = 1 + alpha * r
    return counts.withColumn(RATING, rating.cast("float"))


def min_support(
    counts: DataFrame, cfg: PrepareConfig, user: str = c.USER_ID, item: str = ITEM_ID
) -> DataFrame:
    """Keep users with >= min_user_items items and items with >= min_item_users users.

    One pass each way, items first (a rare item is noise for every user), then users.
    ``user``/``item``: the key columns (names, or integer ids once they are attached).
    The kept keys are broadcast (one column, at most every user or item): the counts are
    filtered where they lie instead of shuffled twice by key for sort-merge joins.
    """
    items = counts.groupBy(item).agg(F.count(F.lit(1)).alias("_n"))
    common = items.where(F.col("_n") >= cfg.min_item_users).select(item)
    kept = counts.join(F.broadcast(common), item, "left_semi")
    users = kept.groupBy(user).agg(F.count(F.lit(1)).alias("_n"))
    active = users.where(F.col("_n") >= cfg.min_user_items).select(user)
    return kept.join(F.broadcast(active), user, "left_semi")


def extend_dictionary(existing: DataFrame | None, ids: DataFrame, key: str, idx: str) -> DataFrame:
    """Append unseen ids with new integer indices after the current maximum; never renumber.

    New ids are numbered in sorted order, so the same input gives the same dictionary.
    """
    distinct = ids.select(F.col(key)).distinct()
    if existing is None:
        fresh, base = distinct, F.lit(-1)
    else:
        fresh = distinct.join(existing.select(key), key, "left_anti")
        top = existing.agg(F.max(idx).alias("_top")).first()
        base = F.lit(-1 if top is None or top["_top"] is None else int(top["_top"]))
    numbered = fresh.withColumn(idx, (base + F.row_number().over(Window.orderBy(key))).cast("int"))
    return numbered if existing is None else existing.select(key, idx).unionByName(numbered)


def attach_ids(counts: DataFrame, users: DataFrame, items: DataFrame) -> DataFrame:
    out = counts.join(users, c.USER_ID).join(items, ITEM_ID)
    return out.select(*INTERACTION_COLUMNS)
