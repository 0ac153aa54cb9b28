"""Score externally trained factors (the `implicit` library's) with the product's own code.

    spark-submit benchmarks/score_factors.py <table> <as_of> <factors.npz | model dir> <checkpoints>

Same split, same metric code (``musicrec.evaluation.ranking.score_model``) as the product's
evaluate step. Prints one JSON line with the "all" and "new" summaries.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from musicrec.evaluation.ranking import score_model
from musicrec.lake import io
from musicrec.model import factors, scoring
from musicrec.runtime.session import build_session


def main() -> None:
    table, as_of, factors_file, checkpoints = sys.argv[1:5]

    spark = build_session("musicrec-bench-score", checkpoint_dir=checkpoints)
    train = io.read_split(spark, Path(table), as_of, "train").cache()
    holdout = io.read_split(spark, Path(table), as_of, "holdout").cache()
    if Path(factors_file).is_dir():  # a model of any layout, through the product's reader
        model = factors.load(spark, Path(factors_file))
        items, known = scoring.item_matrix(model.items)
        user_factors = model.users
    else:
        saved = np.load(factors_file)
        users, items = saved["users"].astype(np.float32), saved["items"].astype(np.float32)
        known = np.zeros(items.shape[0], dtype=bool)
        known[train.select("item_idx").distinct().toPandas()["item_idx"].to_numpy()] = True
        ids = np.arange(users.shape[0])
        user_factors = spark.createDataFrame(factors.factor_table(ids, users))
    result = score_model(spark, user_factors, items, known, train, holdout)
    print("SCORES " + json.dumps(result), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
