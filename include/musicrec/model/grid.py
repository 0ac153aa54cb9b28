"""What the two grid layouts share: factors on the driver, their checkpoints, the memory they
cost in Python workers, and what a fit reports.

Factors live on the driver as numpy between half-iterations (X: users, Y: items, indexed by
id). Every ``checkpoint_interval`` iterations they are written atomically beside the run;
a retried train task with the same input and parameters resumes from the last checkpoint
instead of iteration 0 (the log says which).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec.config import ALSConfig
from musicrec.lake import io
from musicrec.model.prepare import ITEM_IDX, RATING, USER_IDX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """The training data as the grid layouts see it."""

    n_users: int  # max user id + 1: rows of X
    n_items: int
    pairs: int
    fingerprint: str  # of the ratings: a checkpoint is only resumed on the same data


@contextmanager
def rating_files(ratings: DataFrame, files: list[str] | None) -> Iterator[list[str]]:
    """The parquet files the blocks are read from: ``files``, whose rows are the ratings (the
    train step's split, the search's fit part), or else the ratings written out first, beside
    the session's checkpoints, and removed after the fit. Written input is also what ALS
    needs to be deterministic (SPARK-28927)."""
    if files is not None:
        yield files
        return
    checkpoints = ratings.sparkSession.sparkContext.getCheckpointDir()
    if checkpoints is None:
        raise RuntimeError("the grid layouts write their input beside the checkpoints: none set")
    folder = Path(urlparse(checkpoints).path) / f"grid-ratings-{uuid.uuid4().hex}"
    ratings.select(USER_IDX, ITEM_IDX, RATING).write.parquet(str(folder))
    try:
        yield [str(f) for f in io.parquet_files(folder)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def shape_of(
    ratings: DataFrame, files: list[str] | None = None, counted: int | None = None
) -> Shape:
    """The ratings' shape, by one aggregation over them; with ``files`` (parquet files whose
    rows are exactly the ratings) from the files' footers instead (``footer_shape``), checked
    against the ratings' count: ``counted`` if the caller has it (a Spark job saved, 0.5 s at
    the large size), else counted here."""
    if files is not None:
        shape = footer_shape(files)
        if shape is not None:
            if counted is None:
                counted = ratings.count()  # a parquet count reads footers, or a cache
            if counted != shape.pairs:
                raise ValueError(
                    f"the files given hold {shape.pairs:,} ratings where the ratings have "
                    f"{counted:,}: the files given are not the ratings' rows"
                )
            return shape
    row = ratings.agg(
        F.max(USER_IDX).alias("u"),
        F.max(ITEM_IDX).alias("i"),
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col(USER_IDX).cast("long")).alias("su"),
        F.sum(F.col(ITEM_IDX).cast("long")).alias("si"),
        F.sum(F.col(RATING).cast("double")).alias("sr"),
    ).first()
    assert row is not None
    text = f"{row['u']}|{row['i']}|{row['n']}|{row['su']}|{row['si']}|{row['sr']:.9e}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Shape(int(row["u"]) + 1, int(row["i"]) + 1, int(row["n"]), digest)


def footer_shape(files: list[str]) -> Shape | None:
    """Shape from the parquet footers, no data read: row counts, and the id columns' max from
    each row group's statistics (None if a row group has none). The fingerprint hashes the
    files' names, sizes and every row group's statistics: a rewrite of the data (Spark writes
    new part-file names) or any changed row group gives a new fingerprint."""
    import pyarrow.parquet as pq

    n_users = n_items = pairs = 0
    digest = hashlib.sha256()
    for path in files:
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(j).name for j in range(meta.num_columns)]
        digest.update(f"{os.path.basename(path)}|{os.path.getsize(path)}".encode())
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if not group.num_rows:
                continue
            stats = {}
            for column in (USER_IDX, ITEM_IDX, RATING):
                st = group.column(names.index(column)).statistics
                if st is None or not st.has_min_max or st.null_count:
                    return None
                stats[column] = (st.min, st.max)
            pairs += group.num_rows
            n_users = max(n_users, int(stats[USER_IDX][1]) + 1)
            n_items = max(n_items, int(stats[ITEM_IDX][1]) + 1)
            digest.update(f"|{group.num_rows}|{stats}".encode())
    return Shape(n_users, n_items, pairs, digest.hexdigest()[:16])


def initial_factors(shape: Shape, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform [0, 0.01) factors, users then items from one seeded generator: the same
    start as the `implicit` library's, so the two can be compared factor by factor."""
    rng = np.random.default_rng(seed)
    users = rng.random((shape.n_users, rank), dtype=np.float32) * np.float32(0.01)
    items = rng.random((shape.n_items, rank), dtype=np.float32) * np.float32(0.01)
    return users, items


def unrated_to_zero(factors: np.ndarray, rated: np.ndarray) -> None:
    """Rows of ids without a rating (dictionary ids absent from this split) become 0 once
    their side is solved, as in `implicit`: they must not weigh in the other side's Y^T Y."""
    mask = np.ones(factors.shape[0], dtype=bool)
    mask[rated] = False
    factors[mask] = 0


def threads_per_task(spark: SparkSession) -> int:
    """OpenMP threads of one block's solve: the cores Spark gives each task. (One setting
    read, not ``getConf()``: that copies the whole conf over py4j, 30 ms a call.)"""
    return int(spark.sparkContext._conf.get("spark.task.cpus", "1"))


def concurrent_tasks(spark: SparkSession) -> int:
    """Python workers running at once on one executor (local mode: on the machine)."""
    cores = spark.sparkContext._conf.get("spark.executor.cores")
    if cores is None or spark.sparkContext.master.startswith("local"):
        cores = str(spark.sparkContext.defaultParallelism)
    return max(1, int(cores) // threads_per_task(spark))


def default_blocks(spark: SparkSession, cfg: ALSConfig) -> int:
    return cfg.num_blocks or max(
        2, spark.sparkContext.defaultParallelism // threads_per_task(spark)
    )


def shuffle_written(spark: SparkSession) -> int:
    """Bytes of shuffle written so far by the application, from Spark's task metrics (its
    status store, fed by the listener bus; drained first so the figure is complete)."""
    sc = spark.sparkContext._jsc.sc()
    sc.listenerBus().waitUntilEmpty(10_000)
    executors = sc.statusStore().executorList(False)
    return sum(int(executors.apply(i).totalShuffleWrite()) for i in range(executors.size()))


# --- factor checkpoints -----------------------------------------------------------------------


@dataclass
class Checkpoints:
    """Factor checkpoints of one training run, in ``folder`` (beside the model runs)."""

    folder: Path
    key: dict[str, Any]  # layout, parameters, blocks, data fingerprint: what must match
    interval: int
    written: list[int] = field(default_factory=list)

    @property
    def _file(self) -> Path:
        return self.folder / "factors.npz"

    @property
    def _meta(self) -> Path:
        return self.folder / "checkpoint.json"

    def due(self, iteration: int, last: int) -> bool:
        """After ``iteration`` (1-based) of ``last``: every interval, but not at the end (the
        model itself is written then)."""
        return iteration % self.interval == 0 and iteration < last

    def save(self, iteration: int, users: np.ndarray, items: np.ndarray) -> None:
        """Write the factors after ``iteration`` atomically (a crash mid-write keeps the
        previous checkpoint)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".factors.", suffix=".npz", dir=self.folder)
        with os.fdopen(fd, "wb") as out:
            np.savez(out, users=users, items=items)
        os.replace(tmp, self._file)
        meta = {"iteration": iteration, "key": self.key, "saved_at": time.time()}
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", dir=self.folder)
        with os.fdopen(fd, "w") as out:
            json.dump(meta, out)
        os.replace(tmp, self._meta)
        self.written.append(iteration)
        log.info("factor checkpoint after iteration %d: %s", iteration, self._file)

    def load(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The last checkpoint of this same run (same key), else None."""
        if not (self._meta.exists() and self._file.exists()):
            return None
        meta = json.loads(self._meta.read_text())
        if meta.get("key") != self.key:
            log.info("factor checkpoint in %s is of another run: starting afresh", self.folder)
            return None
        with np.load(self._file) as saved:
            users, items = saved["users"].copy(), saved["items"].copy()
        return int(meta["iteration"]), users, items

    def clear(self) -> None:
        for path in (self._file, self._meta):
            path.unlink(missing_ok=True)


def checkpoint_key(layout: str, cfg: ALSConfig, blocks: dict[str, int], shape: Shape) -> dict:
    params = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_interval"}
    return {"layout": layout, "params": params, "blocks": blocks, "data": shape.fingerprint}


# --- what a fit returns -----------------------------------------------------------------------


@dataclass
class Fitted:
    """Factors on the driver and how the fit went."""

    users: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray  # ids trained (with at least one rating)
    item_ids: np.ndarray
    seconds: float
    details: dict[str, Any]


def mib(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def _import_kernels(_: Any) -> list[str]:
    import implicit.cpu._als  # noqa: F401
    import pandas  # noqa: F401 - what PySpark's Arrow serializers import in a worker
    import pyarrow.parquet  # noqa: F401 - the blocks are read with it
    import pyspark.sql.pandas.serializers  # noqa: F401
    import scipy.sparse  # noqa: F401
    import threadpoolctl  # noqa: F401

    return [str(os.getpid())]


def start_workers(spark: SparkSession) -> float:
    """Start every Python worker the fit will use and import its libraries there (numpy,
    scipy, implicit, pandas, Arrow): interpreter start-up that belongs to the application,
    not to ALS, as the `implicit` library's own import precedes its fit."""
    started = time.monotonic()
    slots = spark.sparkContext.defaultParallelism
    spark.sparkContext.parallelize(range(slots), slots).mapPartitions(_import_kernels).collect()
    return time.monotonic() - started


@dataclass
class Alternation:
    """What ``alternate`` did: the factors and the figures every grid layout reports."""

    users: np.ndarray
    items: np.ndarray
    resumed_from: int | None
    shuffle_mb_per_iter: float


def alternate(
    spark: SparkSession,
    layout: str,
    cfg: ALSConfig,
    shape: Shape,
    blocks: dict[str, int],
    solve: dict[str, Callable[[np.ndarray, np.ndarray], None]],
    rated: dict[str, np.ndarray],
    checkpoints: Checkpoints | None,
    initial: tuple[np.ndarray, np.ndarray] | None,
) -> Alternation:
    """The alternation both grid layouts run: start (or resume from the last checkpoint),
    then per iteration solve users given items and items given users, in place
    (``solve[side](own, other)``), checkpointing every ``checkpoint_interval``."""
    users, items = initial if initial is not None else initial_factors(shape, cfg.rank, cfg.seed)
    first = 0
    if checkpoints is not None:
        checkpoints.key = checkpoint_key(layout, cfg, blocks, shape)
        resumed = checkpoints.load()
        if resumed is not None:
            first, users, items = resumed
            log.info("resuming from the factor checkpoint after iteration %d", first)
    written = shuffle_written(spark)
    for iteration in range(first, cfg.max_iter):
        solve["user"](users, items)
        unrated_to_zero(users, rated["user"])
        solve["item"](items, users)
        unrated_to_zero(items, rated["item"])
        if checkpoints is not None and checkpoints.due(iteration + 1, cfg.max_iter):
            checkpoints.save(iteration + 1, users, items)
    per_iter = (shuffle_written(spark) - written) / max(cfg.max_iter - first, 1)
    return Alternation(users, items, first or None, mib(per_iter))
