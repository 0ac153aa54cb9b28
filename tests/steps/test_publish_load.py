"""Publish writes a version's Parquet with Spark while the serving store loads it: the load of
one kind overlaps the write of the next, and a failed write publishes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from musicrec.lake import swap
from musicrec.serving.store import SqliteStore
from musicrec.steps.publish import write_and_load
from pyspark.sql import functions as F

from tests.serving.test_store import write_version

pytestmark = pytest.mark.unit


def frames_of(spark, folder: Path, related_udf=None) -> dict:
    frames = {k: spark.read.parquet(str(folder / k)) for k in ("recommendations", "related_items")}
    if related_udf is not None:
        related = frames["related_items"]
        frames["related_items"] = related.withColumn("item_idx", related_udf(F.col("item_idx")))
    frames["items"] = spark.read.parquet(str(folder / "items"))
    return frames


def load_with(store: SqliteStore, version: str, target: Path):
    return lambda source, before_switch: store.publish(
        version, "m", target, source=source, before_switch=before_switch
    )


def test_the_load_of_one_kind_overlaps_the_write_of_the_next(spark, tmp_path):
    """The related items' write waits (in its Spark task) until the recommendations are being
    loaded into the store: a publish that loaded only after writing everything would fail."""
    store = SqliteStore(path=tmp_path / "serving.db")
    loading = tmp_path / "loading-recommendations"
    load = store.load

    def marking_load(cur, table, columns, path):
        if table.startswith("recommendations"):
            loading.touch()
        return load(cur, table, columns, path)

    store.load = marking_load  # type: ignore[method-assign]
    marker = str(loading)

    @F.udf("int")
    def after_the_load_started(item):  # no type hints: PySpark would read them as pandas types
        import time
        from pathlib import Path as P

        deadline = time.monotonic() + 120
        while not P(marker).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the recommendations were not loaded during this write")
            time.sleep(0.05)
        return item

    target = tmp_path / "versions" / "v1"
    frames = frames_of(spark, write_version(tmp_path, 1.0), after_the_load_started)
    result = write_and_load(spark, frames, target, load_with(store, "v1", target))
    assert store.current() == "v1"
    assert result["rows"] == {"recommendations": 30000, "related_items": 2, "items": 97}
    assert sorted(p.name for p in target.iterdir()) == ["items", "recommendations", "related_items"]


def test_a_failed_write_rolls_the_load_back_and_swaps_nothing(spark, tmp_path):
    store = SqliteStore(path=tmp_path / "serving.db")
    target = tmp_path / "versions" / "v2"
    first = tmp_path / "versions" / "v1"
    write_and_load(
        spark, frames_of(spark, write_version(tmp_path, 1.0)), first, load_with(store, "v1", first)
    )

    @F.udf("int")
    def broken(item):
        raise ValueError("a related item that cannot be written")

    frames = frames_of(spark, write_version(tmp_path, 2.0), broken)
    with pytest.raises(Exception, match="a related item that cannot be written"):
        write_and_load(spark, frames, target, load_with(store, "v2", target))
    assert store.current() == "v1"
    assert not target.exists()  # the staged Parquet is left for ``swap.recover``
    assert swap.recover(target) and not list(target.parent.glob(".v2*"))
