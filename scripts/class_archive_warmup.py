"""The workload ``build_class_archive.py`` records the JVM's classes from: a little of what the
jobs do (gzip JSON in, Parquet out and back, aggregations, joins, windows, caching, Arrow to
and from pandas, mapInPandas, RDDs with broadcasts), so their classes load from the archive.

    spark-submit ... scripts/class_archive_warmup.py <scratch dir>
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F


def main(scratch: Path) -> None:
    spark = SparkSession.builder.appName("musicrec-class-archive").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    landing = scratch / "landing" / "part.jsonl.gz"
    landing.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(landing, "wt") as out:
        for i in range(2000):
            out.write(json.dumps({"user": f"u{i % 50}", "item": i % 70, "ms": i * 7}) + "\n")
    events = spark.read.schema("user string, item int, ms long").json(str(landing))
    events = events.withColumn("day", (F.col("item") % 3).cast("string")).cache()
    events.write.mode("overwrite").partitionBy("day").parquet(str(scratch / "lake"))
    lake = spark.read.parquet(str(scratch / "lake"))
    counts = lake.groupBy("user", "item").agg(F.count(F.lit(1)).alias("n"), F.sum("ms"))
    best = counts.withColumn(
        "r", F.row_number().over(Window.partitionBy("user").orderBy(F.desc("n")))
    )
    users = counts.select("user").distinct().withColumn("idx", F.monotonically_increasing_id())
    joined = best.join(users, "user").join(F.broadcast(users.limit(10)), "user", "left_anti")
    joined.groupBy("r").agg(F.collect_list("item"), F.countDistinct("item")).collect()
    pdf = joined.toPandas()
    back = spark.createDataFrame(pdf.head(100))

    def double(batches):
        for frame in batches:
            yield frame.assign(n=frame["n"] * 2)

    back.mapInPandas(double, back.schema).write.mode("overwrite").parquet(str(scratch / "out"))
    table = spark.sparkContext.broadcast({i: i * i for i in range(70)})
    rdd = lake.rdd.map(lambda row: (row.item % 5, table.value[row.item]))
    rdd.reduceByKey(lambda a, b: a + b).partitionBy(4).cache().collect()
    table.destroy()
    spark.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
