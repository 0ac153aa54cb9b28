"""A small job slow enough to lose an executor in the middle: for fault-injection tests.

    spark-submit tests/apps/slow_shuffle_job.py <checkpoint dir> <output dir> [tasks] [seconds]

Eight (or ``tasks``) map tasks of two (or ``seconds``) seconds each, then a shuffle and an
aggregation; writes the result as Parquet and prints ``RESULT <json>``. Deterministic output
whatever the failures.
"""

import json
import sys
import time

from musicrec.runtime.session import build_session

TASKS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0


def slow(rows):
    time.sleep(SECONDS)
    yield from rows


if __name__ == "__main__":
    spark = build_session("musicrec-slow-shuffle", checkpoint_dir=sys.argv[1])
    data = spark.sparkContext.parallelize(range(80_000), TASKS).mapPartitions(slow)
    frame = data.map(lambda x: (x % 97, x)).toDF(["key", "value"])
    totals = frame.groupBy("key").sum("value").orderBy("key")
    totals.write.mode("overwrite").parquet(sys.argv[2])
    rows = spark.read.parquet(sys.argv[2]).count()
    print("RESULT " + json.dumps({"rows": rows, "app_id": spark.sparkContext.applicationId}))
    spark.stop()
