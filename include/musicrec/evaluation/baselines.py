"""The baseline every model must beat: the most popular items of the training window."""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from musicrec.model.prepare import ITEM_IDX


def popularity_vector(train: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A rank-1 "model": each item's vector is the number of users who streamed it; with every
    user vector 1, it ranks items by popularity for everyone. Returns it and the known mask."""
    pop = train.groupBy(ITEM_IDX).agg(F.count(F.lit(1)).alias("n")).toPandas()
    n = int(pop[ITEM_IDX].max()) + 1
    vec = np.zeros((n, 1), dtype=np.float32)
    vec[pop[ITEM_IDX].to_numpy(), 0] = pop["n"].to_numpy()
    return vec, vec[:, 0] > 0


def popularity_users(user_factors: DataFrame) -> DataFrame:
    """Every user of the model with the vector [1.0]."""
    return user_factors.select("id", F.array(F.lit(1.0).cast("float")).alias("features"))
