"""The ALS layouts behind one contract: ``fit(spark, ratings, cfg, checkpoints) -> Trained``.

* ``mllib``: Spark MLlib's ALS (the reference, and where the others refuse);
* ``half-gridify``: user and item blocks cached, the other side broadcast, `implicit`'s CG
  (or Cholesky) kernel per block;
* ``full-gridify``: a grid of cached cells, partial normal equations shuffled and summed.

Every layout's model is written the same way (``model.factors``) and read by one reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from musicrec.config import ALSConfig
from musicrec.model import factors, full_gridify, grid, half_gridify, mllib, scoring

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A fitted model of any layout: its factors as frames, and how to write them."""

    layout: str
    seconds: float
    users: DataFrame  # (id, features)
    items: DataFrame
    details: dict[str, Any] = field(default_factory=dict)
    write: Callable[[Path], None] = lambda folder: None
    _item_vectors: tuple[np.ndarray, np.ndarray] | None = None

    def item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense item matrix indexed by id, and which ids the model knows."""
        if self._item_vectors is None:
            self._item_vectors = scoring.item_matrix(self.items)
        return self._item_vectors


def _from_grid(spark: SparkSession, fitted: grid.Fitted) -> Trained:
    users_table = factors.factor_table(fitted.user_ids, fitted.users)
    items_table = factors.factor_table(fitted.item_ids, fitted.items)
    known = np.zeros(fitted.items.shape[0], dtype=bool)
    known[fitted.item_ids] = True
    vectors = np.where(known[:, None], fitted.items, 0).astype(np.float32)
    return Trained(
        layout=fitted.details["layout"],
        seconds=fitted.seconds,
        users=spark.createDataFrame(users_table),
        items=spark.createDataFrame(items_table),
        details=fitted.details,
        write=lambda folder: factors.write_arrays(
            folder, (fitted.user_ids, fitted.users), (fitted.item_ids, fitted.items)
        ),
        _item_vectors=(vectors, known),
    )


def fit(
    spark: SparkSession,
    ratings: DataFrame,
    cfg: ALSConfig,
    checkpoints: grid.Checkpoints | None = None,
    files: list[Path] | None = None,
    pairs: int | None = None,
) -> Trained:
    """Train ``cfg.layout`` on ``ratings`` (user_idx, item_idx, rating), read from written
    files (deterministic input, SPARK-28927). ``files``: those parquet files, which the grid
    layouts read directly (pyarrow) to build their blocks; ``pairs``: the ratings' count, if
    the caller has it."""
    if cfg.layout == "mllib":
        before = grid.shuffle_written(spark)
        users, items, seconds = mllib.fit(spark, ratings, cfg)
        details = {
            "layout": "mllib",
            "blocks": mllib.num_blocks(spark, cfg),
            "storage": [mllib.INTERMEDIATE_STORAGE, mllib.FINAL_STORAGE],
            # Includes building MLlib's in/out blocks (its first shuffle).
            "shuffle_write_mb_per_iter": grid.mib(
                (grid.shuffle_written(spark) - before) / cfg.max_iter
            ),
        }
        return Trained(
            "mllib",
            seconds,
            users,
            items,
            details,
            write=lambda folder: factors.write_frames(folder, users, items),
        )
    module = half_gridify if cfg.layout == "half-gridify" else full_gridify
    names = None if files is None else [str(f) for f in files]
    return _from_grid(spark, module.fit(spark, ratings, cfg, checkpoints, files=names, pairs=pairs))
