"""Ratings as CSR blocks built once, the data layout of the talk's grid ALS (Johnson, 2014).

A side (users or items) is cut into blocks by a key of each rating (half gridify: its row
id modulo the block count; full gridify: its cell); a block holds the confidences of its
rows as a CSR matrix. A build task reads the ratings' parquet files with pyarrow, keeps the
ratings of its own key and builds the block. Iterations reuse the blocks and never move the
ratings. Two ways to keep them:

* ``build``: in Spark's cache, partition k holding block k (full gridify, whose cells feed
  a zip and a shuffle every half-iteration);
* ``stage``: on the executors' local disks, memory-mapped by the tasks, with an RDD of the
  keys cached so Spark runs block k's tasks where it was staged (half gridify, whose every
  task reads a whole block: through the JVM from Spark's cache, that read cost 2.8 s of a
  40 s large fit).

No shuffle: each block's task reads the whole split (three columns), so a side of n blocks
reads it n times, spread over the cores: with a block per core, each core reads the split
once per side whatever the cluster's size (``stage``: once for both sides). The previous
build shuffled the ratings (each row group cut into pieces per block, partitionBy, merge):
at the large size (17M ratings) 9.7 s and 16.5 s of task time, most of it pickling pieces
through Spark, against 2.7-3.5 s and 5.4 s here (HISTORY). Executors must see the files
(the lake is a shared file system; a lost block is rebuilt from them).

Rows inside a block are in ascending id order and columns ascending within a row, so a
block and everything computed from it are the same on every run and every recomputation.
Confidence follows Hu et al. and prepare's convention: c = 1 + alpha * rating, stored as the
CSR value (implicit's kernels read the stored value as c itself; no explicit zeros).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pyspark import RDD, AccumulatorParam, SparkContext, StorageLevel

from musicrec.model.prepare import ITEM_IDX, RATING, USER_IDX

log = logging.getLogger(__name__)

COLUMNS = [USER_IDX, ITEM_IDX, RATING]

# ``build``'s blocks are read from Spark's cache into a Python task every half-iteration: kept
# as the pickled bytes themselves (_DESER), not re-serialized by Kryo and lz4
# (spark.rdd.compress), a read costs 25% less (70 MB blocks, when half gridify's were cached:
# 0.24 -> 0.18 s in the task). On disk too when memory is short, never dropped; a lost
# executor's blocks are rebuilt. ``stage``'s cached keys use it too.
STORAGE = StorageLevel.MEMORY_AND_DISK_DESER


class Block(NamedTuple):
    """Confidences of some rows: ``rows`` are their ids or positions (ascending);
    ``indptr``, ``indices`` (columns) and ``data`` (c) are the CSR arrays, row i = rows[i]."""

    rows: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    def csr(self, n_cols: int) -> Any:
        """The block as a scipy CSR matrix (no copy)."""
        import scipy.sparse as sp

        return sp.csr_matrix(
            (self.data, self.indices, self.indptr), shape=(self.rows.size, n_cols), copy=False
        )


def identity(key: int) -> int:
    """The partitioner's function: block (or cell) k lives in partition k."""
    return key


def to_block(rows: np.ndarray, cols: np.ndarray, conf: np.ndarray) -> Block:
    """Triples -> CSR, rows ascending, columns ascending within a row: scipy's counting sort
    by row, then each row's columns sorted (8x faster than a lexsort of the triples: 0.4 s
    against 3.5 s for 8.6M). Every (row, column) pair must come once: a duplicate is an
    error, not a sum."""
    import scipy.sparse as sp

    if rows.size == 0:
        empty = np.empty(0, np.int32)
        return Block(empty, np.zeros(1, np.int32), empty, np.empty(0, np.float32))
    ids = np.flatnonzero(np.bincount(rows))
    position = np.empty(int(ids[-1]) + 1, np.int32)
    position[ids] = np.arange(ids.size, dtype=np.int32)
    matrix = sp.csr_matrix(
        (conf.astype(np.float32, copy=False), (position[rows], cols)),
        shape=(ids.size, int(cols.max()) + 1),
    )
    if matrix.nnz != rows.size:
        raise ValueError(
            f"{rows.size - matrix.nnz:,} duplicate (row, column) pairs in a block: ratings must "
            "hold each (user, item) pair once"
        )
    matrix.sort_indices()
    return Block(
        ids.astype(np.int32),
        matrix.indptr.astype(np.int32, copy=False),
        np.ascontiguousarray(matrix.indices, dtype=np.int32),
        np.ascontiguousarray(matrix.data, dtype=np.float32),
    )


@dataclass(frozen=True)
class Keying:
    """One way to cut the ratings: rows on side ``by`` ("user" or "item"), a key per rating
    from (row id, column id), and optionally ids mapped to positions (arrays indexed by id)
    before they are stored."""

    name: str
    by: str
    n_keys: int
    key: Callable[[np.ndarray, np.ndarray], np.ndarray]
    row_positions: Any = None  # a broadcast of an int32 array, or None: keep ids
    col_positions: Any = None


def modulo(n: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Row blocks: the row id modulo the block count."""
    return lambda rows, cols: rows % n


def read_block(files: list[str], keying: Keying, alpha: float, key: int) -> Block:
    """Block ``key`` of ``keying``: the files' ratings whose key it is."""
    return read_blocks(files, [keying], alpha, key)[0]


def read_blocks(files: list[str], keyings: list[Keying], alpha: float, key: int) -> list[Block]:
    """Block ``key`` of each keying, from one read of the files, row group by row group (one
    row group's columns in memory at a time, beside the blocks' own ratings)."""
    import pyarrow.parquet as pq

    parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in keyings]
    for path in files:
        source = pq.ParquetFile(path)
        for group in range(source.num_row_groups):
            table = source.read_row_group(group, columns=COLUMNS, use_threads=False)
            users = table.column(USER_IDX).to_numpy()
            items = table.column(ITEM_IDX).to_numpy()
            rating = table.column(RATING).to_numpy()
            for keying, kept in zip(keyings, parts, strict=True):
                rows, cols = (users, items) if keying.by == "user" else (items, users)
                mine = np.flatnonzero(keying.key(rows, cols) == key)
                kept.append((rows[mine], cols[mine], rating[mine]))
    return [_to_block(keying, kept, alpha) for keying, kept in zip(keyings, parts, strict=True)]


def _to_block(keying: Keying, parts: list, alpha: float) -> Block:
    rows, cols, rating = (
        np.concatenate([p[i] for p in parts]) if parts else np.empty(0, np.int32) for i in range(3)
    )
    conf = (1.0 + alpha * rating.astype(np.float64)).astype(np.float32)
    if keying.row_positions is not None:
        rows = keying.row_positions.value[rows]
    if keying.col_positions is not None:
        cols = keying.col_positions.value[cols]
    return to_block(rows, cols, conf)


@dataclass
class Built:
    """Per keying: the cached RDD of (key, Block), key k in partition k, every block's
    rows (ids or positions) on the driver, and the ratings the blocks hold."""

    rdds: dict[str, RDD]
    rows: dict[str, dict[int, np.ndarray]]
    pairs: dict[str, int]  # ratings held, per keying
    staged: Staged | None = None  # ``stage``: the RDDs hold keys, the blocks are on disk


class Heads(AccumulatorParam):
    """What each block's task reports to the driver as it builds: {(keying, key): (rows,
    pairs)}. A block built twice (a retried or recomputed task) reports the same value."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, value1: dict, value2: dict) -> dict:  # Spark names it
        value1.update(value2)
        return value1


def built_block(files: list[str], keying: Keying, alpha: float, key: int, heads: Any):
    """The task of block ``key``: the block, its rows and size reported to ``heads``."""
    block = read_block(files, keying, alpha, key)
    heads.add({(keying.name, key): (block.rows, block.nnz)})
    return key, block


def build(sc: SparkContext, files: list[str], keyings: list[Keying], alpha: float) -> Built:
    """The blocks of every keying from the ratings' parquet ``files`` (user_idx, item_idx,
    rating), materialized by one job whose tasks report their rows as they build. The job
    counts the cached partitions in the JVM (``_jrdd``): a Python action would read every
    block back into a second Python task (at the large size 4 x 70 MB, 0.8 s of the build)."""
    heads = sc.accumulator({}, Heads())
    out = {}
    for k in keyings:
        keys = sc.parallelize(range(k.n_keys), k.n_keys)  # key k alone in partition k
        blocks = keys.map(lambda key, k=k: built_block(files, k, alpha, key, heads))
        out[k.name] = blocks.persist(STORAGE)
    sc.union(list(out.values()))._jrdd.count()
    return _built(keyings, out, heads.value)


def _built(
    keyings: list[Keying], rdds: dict[str, RDD], heads: dict, staged: Staged | None = None
) -> Built:
    rows: dict[str, dict[int, np.ndarray]] = {k.name: {} for k in keyings}
    pairs = {k.name: 0 for k in keyings}
    for (name, key), (ids, n_pairs) in sorted(heads.items()):
        rows[name][key] = ids
        pairs[name] += n_pairs
    missing = [(k.name, key) for k in keyings for key in range(k.n_keys) if key not in rows[k.name]]
    if missing:
        raise RuntimeError(f"blocks built without reporting their rows: {missing}")
    return Built(rdds, rows, pairs, staged)


def check_pairs(built: Built, expected: int) -> None:
    """Every keying holds every rating once (``expected``: the shape's count, from Spark or
    from the files' footers): a build that lost or doubled rows is an error, never a silent
    loss."""
    for name, n_pairs in built.pairs.items():
        if n_pairs != expected:
            raise ValueError(
                f"the {name} blocks hold {n_pairs:,} ratings where the ratings have "
                f"{expected:,}: the files given are not the ratings' rows"
            )


# --- Staged blocks: on the executors' local disks, memory-mapped by the tasks ----------------

STAGED_DIR = "musicrec-blocks"


def local_root() -> Path:
    """This executor's folder of staged blocks: under the first of Spark's local directories
    for the executor, which Spark gives its Python workers (``SPARK_LOCAL_DIRS``, where
    PySpark itself spills) and deletes when the executor stops."""
    dirs = os.environ.get("SPARK_LOCAL_DIRS")
    if not dirs:
        raise RuntimeError("staged blocks live in a Spark task's local directory: none is set")
    return Path(dirs.split(",")[0]) / STAGED_DIR


@dataclass(frozen=True)
class Staged:
    """The blocks one ``stage`` wrote (``token``): block k of keying ``name`` in
    ``<local root>/<token>/<name>-<k>/``, one ``.npy`` file per CSR array. A task memory-maps
    them: the bytes come from the page cache, shared by the executor's Python workers, with no
    copy through the JVM. A block missing on the executor that runs its task (a lost executor,
    a task placed on another one) is rebuilt there from the ratings' files, as Spark rebuilds a
    lost cached partition from its lineage."""

    token: str
    files: tuple[str, ...]
    keyings: tuple[Keying, ...]
    alpha: float

    def folder(self, name: str, key: int) -> Path:
        return local_root() / self.token / f"{name}-{key}"

    def write(self, name: str, key: int, block: Block) -> None:
        """Atomically: a folder is complete or absent (a duplicate task's copy is dropped)."""
        target = self.folder(name, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        for field_name in Block._fields:
            np.save(tmp / f"{field_name}.npy", getattr(block, field_name))
        try:
            os.rename(tmp, target)
        except OSError:  # already there: written by another attempt, from the same files
            shutil.rmtree(tmp, ignore_errors=True)

    def load(self, name: str, key: int) -> tuple[Block, bool]:
        """Block ``key`` of keying ``name``, memory-mapped (copy-on-write: the kernels want
        writable arrays; nothing writes them), and whether it had to be rebuilt."""
        folder = self.folder(name, key)
        try:
            return Block(
                *(np.load(folder / f"{f}.npy", mmap_mode="c") for f in Block._fields)
            ), False
        except FileNotFoundError:
            keying = next(k for k in self.keyings if k.name == name)
            block = read_block(list(self.files), keying, self.alpha, key)
            self.write(name, key, block)
            return block, True

    def remove(self) -> None:
        shutil.rmtree(local_root() / self.token, ignore_errors=True)


def stage(sc: SparkContext, files: list[str], keyings: list[Keying], alpha: float) -> Built:
    """The blocks of keyings sharing one key count, written to the executors' local disks by
    one job: task k reads the files once and writes block k of every keying, reporting their
    rows. The RDD, cached, holds only the keys: Spark keeps running block k's tasks where it
    was staged (data locality) and a lost partition re-runs its build task.

    Why not blocks in Spark's cache, as ``build`` keeps them: PySpark sends a cached partition
    from the JVM through a socket into the Python task every time a task reads it, and the
    half-iterations read every block 2 x iterations times (large: 70 MB a block, 2.8 s of a
    40 s fit and 2.3 s of JVM CPU on the cores the kernels use, measured)."""
    n_keys = {k.n_keys for k in keyings}
    if len(n_keys) != 1:
        raise ValueError(f"staged keyings must share one key count, got {sorted(n_keys)}")
    (n,) = n_keys
    staged = Staged(uuid.uuid4().hex, tuple(files), tuple(keyings), alpha)
    heads = sc.accumulator({}, Heads())

    def build_key(key: int) -> int:
        for keying, block in zip(keyings, read_blocks(files, keyings, alpha, key), strict=True):
            staged.write(keying.name, key, block)
            heads.add({(keying.name, key): (block.rows, block.nnz)})
        return key

    handles = sc.parallelize(range(n), n).map(build_key).persist(STORAGE)
    handles._jrdd.count()
    return _built(keyings, {k.name: handles for k in keyings}, heads.value, staged)


def release(built: Built) -> None:
    """Drop what a build keeps: the cached RDDs and, for staged blocks, their files (a job
    over the cached keys, so it runs where they were staged; whatever it misses, say on an
    executor lost meanwhile, Spark deletes with the executor's local directories)."""
    staged = built.staged
    if staged is not None:
        handles = next(iter(built.rdds.values()))
        try:
            handles.foreachPartition(lambda _: staged.remove())
        except Exception as exc:  # cleanup must not hide the fit's own outcome
            log.warning("staged blocks %s not removed (%s): left to Spark", staged.token, exc)
    for rdd in built.rdds.values():  # staged: one RDD under each name; twice is harmless
        rdd.unpersist()
