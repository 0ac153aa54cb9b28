"""Ratings as cached CSR blocks, the data layout of the talk's grid ALS (Johnson, 2014).

A side (users or items) is cut into blocks by id modulo the block count; a block holds the
confidences of its rows as a CSR matrix. ``build`` reads the ratings once, in Arrow batches:
every batch is cut into pieces by block key (both sides, and any other keying, in the same
pass); the pieces are moved with Spark's partitioner so that block k lands in partition k
(an identity partitioner: one shuffle, of compact binary pieces), merged into CSR blocks
there and cached. Iterations reuse the cached blocks and never shuffle the ratings again.
Rows inside a block are in ascending id order and columns ascending within a row, so a
block and everything computed from it are the same on every run and every recomputation.

Confidence follows Hu et al. and prepare's convention: c = 1 + alpha * rating, stored as the
CSR value (implicit's kernels read the stored value as c itself; no explicit zeros).

When the ratings are the rows of known parquet files (the train step's split, the search's
fit part), the read is pyarrow's, one task per row group, straight into the cut: Spark's row
to Arrow conversion of a DataFrame costs about 1 s per 1.6M ratings on this machine and was
most of the build (medium: 6.2 s of 8.1 s). Executors must see the files (the lake is a
shared file system). Blocks are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
from pyspark import RDD, StorageLevel
from pyspark.sql import DataFrame

from musicrec.model.prepare import ITEM_IDX, RATING, USER_IDX

COLUMNS = [USER_IDX, ITEM_IDX, RATING]

# A lost executor's blocks are recomputed from the ratings (deterministic, SPARK-28927);
# on disk too when memory is short, never dropped.
STORAGE = StorageLevel.MEMORY_AND_DISK
PIECES_SCHEMA = "layout string, key int, payload binary"


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


def to_bytes(rows: np.ndarray, cols: np.ndarray, conf: np.ndarray) -> bytes:
    n = np.int64(rows.size).tobytes()
    parts = (rows.astype(np.int32), cols.astype(np.int32), conf.astype(np.float32))
    return n + b"".join(p.tobytes() for p in parts)


def from_bytes(payload: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(np.frombuffer(payload, np.int64, 1)[0])
    rows = np.frombuffer(payload, np.int32, n, 8)
    cols = np.frombuffer(payload, np.int32, n, 8 + 4 * n)
    conf = np.frombuffer(payload, np.float32, n, 8 + 8 * n)
    return rows, cols, conf


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


def cut(keyings: list[Keying], alpha: float) -> Callable[[Iterator], Iterator]:
    """mapInArrow function: rating batches -> (layout, key, piece) rows, every key of every
    keying present once (an empty piece if need be), so every block exists."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        names: list[str] = []
        keys: list[int] = []
        payloads: list[bytes] = []
        for batch in batches:
            users = batch.column(USER_IDX).to_numpy(zero_copy_only=False).astype(np.int64)
            items = batch.column(ITEM_IDX).to_numpy(zero_copy_only=False).astype(np.int64)
            rating = batch.column(RATING).to_numpy(zero_copy_only=False)
            conf = (1.0 + alpha * rating.astype(np.float64)).astype(np.float32)
            for k in keyings:
                rows, cols = (users, items) if k.by == "user" else (items, users)
                key = k.key(rows, cols)
                stored_rows = rows if k.row_positions is None else k.row_positions.value[rows]
                stored_cols = cols if k.col_positions is None else k.col_positions.value[cols]
                order = np.argsort(key, kind="stable")
                bounds = np.searchsorted(key[order], np.arange(k.n_keys + 1))
                for b in range(k.n_keys):
                    sel = order[bounds[b] : bounds[b + 1]]
                    if sel.size:
                        names.append(k.name)
                        keys.append(b)
                        payloads.append(to_bytes(stored_rows[sel], stored_cols[sel], conf[sel]))
        for k in keyings:  # the markers: a key with no rating still gets its (empty) block
            empty = np.empty(0, np.int32)
            for b in range(k.n_keys):
                names.append(k.name)
                keys.append(b)
                payloads.append(to_bytes(empty, empty, np.empty(0, np.float32)))
        yield pa.RecordBatch.from_pydict(
            {"layout": names, "key": keys, "payload": payloads},
            schema=pa.schema(
                [("layout", pa.string()), ("key", pa.int32()), ("payload", pa.binary())]
            ),
        )

    return run


def row_groups(files: list[str]) -> list[tuple[str, int]]:
    """(file, row group) of every non-empty row group of ``files``: the read's units."""
    import pyarrow.parquet as pq

    units = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        units += [(path, g) for g in range(meta.num_row_groups) if meta.row_group(g).num_rows]
    return units


def read_and_cut(keyings: list[Keying], alpha: float) -> Callable[[Iterator], Iterator]:
    """mapPartitions function: (file, row group) units -> (layout, key, piece) tuples."""

    def run(units: Iterator[tuple[str, int]]) -> Iterator[tuple[str, int, bytes]]:
        import pyarrow.parquet as pq

        def batches() -> Iterator[pa.RecordBatch]:
            for path, group in units:
                yield from pq.ParquetFile(path).read_row_group(group, columns=COLUMNS).to_batches()

        for out in cut(keyings, alpha)(batches()):
            yield from zip(*(out.column(i).to_pylist() for i in range(3)), strict=True)

    return run


def merge(pieces: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, Block]]:
    """A partition's pieces (all of one key) -> that key's block."""
    by_key: dict[int, list] = {}
    for key, payload in pieces:
        by_key.setdefault(key, []).append(from_bytes(payload))
    for key, parts in sorted(by_key.items()):
        rows, cols, conf = (np.concatenate([p[i] for p in parts]) for i in range(3))
        yield key, to_block(rows, cols, conf)


@dataclass
class Built:
    """Per keying: the cached RDD of (key, Block), key k in partition k, every block's
    rows (ids or positions) on the driver, and the ratings the blocks hold."""

    rdds: dict[str, RDD]
    rows: dict[str, dict[int, np.ndarray]]
    pairs: dict[str, int]  # ratings held, per keying


def build(
    ratings: DataFrame, keyings: list[Keying], alpha: float, files: list[str] | None = None
) -> Built:
    """The blocks of every keying, from one read of ``ratings`` (user_idx, item_idx,
    rating), materialized by one job that also brings back their rows. ``files``: parquet
    files whose rows are exactly ``ratings``, read by pyarrow instead of through Spark SQL."""
    sc = ratings.sparkSession.sparkContext
    if files is not None:
        units = row_groups(files)
        pieces = sc.parallelize(units, max(1, len(units))).mapPartitions(
            read_and_cut(keyings, alpha)
        )
    else:
        cols = ratings.select(*COLUMNS)
        pieces = cols.mapInArrow(cut(keyings, alpha), PIECES_SCHEMA).rdd.map(
            lambda r: (r["layout"], r["key"], r["payload"])
        )
    pieces = pieces.persist(STORAGE)  # read once for every keying
    out = {}
    for k in keyings:
        mine = pieces.filter(lambda p, name=k.name: p[0] == name).map(lambda p: (p[1], p[2]))
        blocks = mine.partitionBy(k.n_keys, identity).mapPartitions(
            merge, preservesPartitioning=True
        )
        out[k.name] = blocks.persist(STORAGE)
    rows: dict[str, dict[int, np.ndarray]] = {k.name: {} for k in keyings}
    pairs = {k.name: 0 for k in keyings}
    heads = [
        rdd.map(lambda kv, n=name: (n, kv[0], kv[1].rows, kv[1].nnz)) for name, rdd in out.items()
    ]
    for name, key, ids, n_pairs in sc.union(heads).collect():
        rows[name][key] = ids
        pairs[name] += n_pairs
    pieces.unpersist()
    return Built(out, rows, pairs)


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


def nnz(blocks: RDD) -> int:
    return int(blocks.map(lambda kv: kv[1].nnz).sum())
