"""Reference timing: Spark MLlib ALS with its default settings on the product's train split.

    spark-submit benchmarks/mllib_default.py <table> <as_of> <rank> <iterations> <checkpoints>

Only rank, iterations and implicitPrefs are set (the product's values); blocks (10),
storage levels, checkpoint interval and the rest are MLlib's defaults. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from musicrec.lake import io
from musicrec.runtime.session import build_session
from pyspark.ml.recommendation import ALS


def main() -> None:
    table, as_of, rank, iterations, checkpoints = sys.argv[1:6]
    spark = build_session("musicrec-bench-mllib-default", checkpoint_dir=checkpoints)
    train = io.read_split(spark, Path(table), as_of, "train").cache()
    train.count()
    started = time.monotonic()
    model = ALS(
        rank=int(rank),
        maxIter=int(iterations),
        implicitPrefs=True,
        userCol="user_idx",
        itemCol="item_idx",
        ratingCol="rating",
    ).fit(train)
    model.userFactors.count()
    print("MLLIB " + json.dumps({"seconds": time.monotonic() - started}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
