"""The model files every ALS layout writes, and the one reader evaluate and publish use.

A model run folder ``models/runs/<model-id>/`` holds::

    factors/users/   Parquet (id int, features array<float>): one row per user trained
    factors/items/   the same for items
    metadata.json    parameters, layout, data, timings

Models saved by earlier versions as an MLlib ``ALSModel`` (``als/userFactors`` and
``als/itemFactors``, the same two columns) are read as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from musicrec.exceptions import MissingInputError

USERS = "factors/users"
ITEMS = "factors/items"
METADATA = "metadata.json"
_LEGACY = {"users": "als/userFactors", "items": "als/itemFactors"}
SCHEMA = "id int, features array<float>"


@dataclass(frozen=True)
class FactorModel:
    """A trained model: user and item factors as frames of (id, features)."""

    path: Path
    users: DataFrame
    items: DataFrame

    @property
    def model_id(self) -> str:
        return self.path.name

    def metadata(self) -> dict[str, Any]:
        meta = self.path / METADATA
        return json.loads(meta.read_text()) if meta.exists() else {}


def exists(model_dir: Path) -> bool:
    return (model_dir / USERS).is_dir() or (model_dir / _LEGACY["users"]).is_dir()


def load(spark: SparkSession, model_dir: Path) -> FactorModel:
    """Read a model of any layout."""
    for users, items in ((USERS, ITEMS), (_LEGACY["users"], _LEGACY["items"])):
        if (model_dir / users).is_dir() and (model_dir / items).is_dir():
            read = spark.read.schema(SCHEMA).parquet
            return FactorModel(
                model_dir, read(str(model_dir / users)), read(str(model_dir / items))
            )
    raise MissingInputError(f"no model at {model_dir}")


def write_frames(folder: Path, users: DataFrame, items: DataFrame) -> None:
    """Write factors held by Spark (the MLlib layout) into a model folder being staged."""
    users.select("id", "features").write.parquet(str(folder / USERS))
    items.select("id", "features").write.parquet(str(folder / ITEMS))


def factor_table(ids: np.ndarray, matrix: np.ndarray) -> pa.Table:
    """(id, features) rows of ``matrix[ids]`` as an Arrow table, without a Python loop."""
    rows = np.ascontiguousarray(matrix[ids], dtype=np.float32)
    rank = rows.shape[1] if rows.ndim == 2 else 0
    offsets = np.arange(0, (len(ids) + 1) * rank, rank, dtype=np.int32)
    features = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rows.reshape(-1)))
    return pa.table({"id": pa.array(ids.astype(np.int32)), "features": features})


def write_arrays(
    folder: Path, users: tuple[np.ndarray, np.ndarray], items: tuple[np.ndarray, np.ndarray]
) -> None:
    """Write factors held by the driver as numpy (the grid layouts): each side is
    ``(ids, matrix)`` with ``matrix`` indexed by id."""
    for part, (ids, matrix) in ((USERS, users), (ITEMS, items)):
        (folder / part).mkdir(parents=True, exist_ok=True)
        pq.write_table(factor_table(ids, matrix), folder / part / "part-00000.parquet")


def write_metadata(folder: Path, metadata: dict[str, Any]) -> None:
    (folder / METADATA).write_text(json.dumps(metadata, indent=2, default=str))
