"""Binarization, confidence weighting, minimum support and stable id dictionaries."""

from __future__ import annotations

import math

import pytest
from musicrec.config import PrepareConfig
from musicrec.model.prepare import extend_dictionary, min_support, stream_counts, with_rating
from pyspark.testing import assertDataFrameEqual

pytestmark = pytest.mark.unit
EVENTS = "user_id string, artist_id string, track_id string, ms_played long"


def test_only_streams_count(spark):
    events = spark.createDataFrame(
        [
            ("u1", "a1", "t1", 200_000),
            ("u1", "a1", "t2", 31_000),
            ("u1", "a1", "t1", 29_999),
            ("u2", "a2", "t3", 30_000),
            ("u2", "a2", "t3", 5_000),
        ],
        EVENTS,
    )
    expected = spark.createDataFrame(
        [("u1", "a1", 2), ("u2", "a2", 1)], "user_id string, item_id string, streams long"
    )
    assertDataFrameEqual(stream_counts(events, PrepareConfig()), expected)
    tracks = stream_counts(events, PrepareConfig(item_level="track"))
    assert sorted((r.item_id, r.streams) for r in tracks.collect()) == [
        ("t1", 1),
        ("t2", 1),
        ("t3", 1),
    ]


@pytest.mark.parametrize(
    ("scheme", "epsilon", "streams", "rating"),
    [
        ("log", 1.0, 1, math.log(2)),
        ("log", 1.0, 9, math.log(10)),
        ("log", 0.5, 3, math.log(7)),
        ("linear", 1.0, 4, 4.0),
    ],
)
def test_rating_is_t_of_r_without_alpha(spark, scheme, epsilon, streams, rating):
    counts = spark.createDataFrame(
        [("u", "i", streams)], "user_id string, item_id string, streams long"
    )
    got = with_rating(counts, PrepareConfig(scheme=scheme, epsilon=epsilon)).first().rating
    # MLlib applies c = 1 + alpha * rating: alpha must not already be inside the rating.
    assert got == pytest.approx(rating, rel=1e-6)


def test_min_support(spark):
    counts = spark.createDataFrame(
        [
            ("u1", "i1", 1),
            ("u1", "i2", 1),
            ("u2", "i1", 1),
            ("u2", "i2", 1),
            ("u3", "i1", 1),
            ("u3", "i3", 1),
        ],
        "user_id string, item_id string, streams long",
    )
    kept = min_support(counts, PrepareConfig(min_user_items=2, min_item_users=2))
    # i3 has one user: dropped; then u3 has one item left: dropped.
    assert sorted((r.user_id, r.item_id) for r in kept.collect()) == [
        ("u1", "i1"),
        ("u1", "i2"),
        ("u2", "i1"),
        ("u2", "i2"),
    ]
    assert kept.columns == counts.columns
    # The kept keys are broadcast to the counts even where the planner would not broadcast on
    # its own (as for a window's millions of sums): no sort-merge join shuffles the counts.
    threshold = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        again = min_support(counts, PrepareConfig(min_user_items=2, min_item_users=2))
        assert again.count() == 4
        plan = again._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", threshold)
    assert "BroadcastHashJoin" in plan and "LeftSemi" in plan
    assert "SortMergeJoin" not in plan


def test_dictionary_grows_and_never_renumbers(spark):
    first = extend_dictionary(
        None, spark.createDataFrame([("b",), ("a",), ("b",)], "k string"), "k", "idx"
    )
    assert sorted(first.collect()) == [("a", 0), ("b", 1)]
    second = extend_dictionary(
        first, spark.createDataFrame([("c",), ("a",), ("0",)], "k string"), "k", "idx"
    )
    assert sorted(map(tuple, second.collect())) == [("0", 2), ("a", 0), ("b", 1), ("c", 3)]
