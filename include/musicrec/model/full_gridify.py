"""The full-gridify layout (the talk's first attempt: 3.5 h where half gridify took 1.5 h).

Ratings sit in a grid of user-block x item-block cells, each cached in a partition of its
own. For the user half-iteration each cell receives only its own item block's factors (a
shuffle of factor blocks to the cells that need them, not a broadcast of everything) and
computes, for its users and only its own items, the partial normal equations

    A_u = sum_i (c_ui - 1) y_i y_i^T        b_u = sum_i c_ui y_i

(upper triangle of A). The partials are shuffled to their user block with an identity
partitioner, summed in a fixed order (deterministic), and each block is solved in one
batched solve of (Y^T Y + A_u + lambda I) x_u = b_u. The item side is the same with the
roles swapped. It is exact ALS (a Cholesky-class solve, like `implicit`'s
``least_squares``), and it moves (k(k+1)/2 + k) floats per (row, cell) over the wire every
half-iteration: the talk's "lots of intermediate data". Its use: an item side too large to
broadcast to every worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from musicrec.config import ALSConfig
from musicrec.model import blocks, grid

log = logging.getLogger(__name__)
LAYOUT = "full-gridify"
SOLVE_ROWS = 8192  # rows solved at once: bounds the (rows, k, k) float64 systems


def upper(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(k)


def outer_upper(vectors: np.ndarray) -> np.ndarray:
    """Each row's outer product y y^T, upper triangle only: (n, k(k+1)/2)."""
    i, j = upper(vectors.shape[1])
    return vectors[:, i] * vectors[:, j]


def partial_sums(cell: blocks.Block, n_rows: int, factors: np.ndarray) -> tuple[Any, Any]:
    """A cell's contribution for every row of its block: (sum (c-1) y y^T as upper
    triangles, sum c y), rows in the block's order (``n_rows`` of them), as float32."""
    confidence = cell.csr(factors.shape[0])
    reduced = confidence.copy()
    reduced.data = reduced.data - np.float32(1.0)
    a = np.zeros((n_rows, factors.shape[1] * (factors.shape[1] + 1) // 2), dtype=np.float32)
    b = np.zeros((n_rows, factors.shape[1]), dtype=np.float32)
    a[cell.rows] = reduced @ outer_upper(factors)
    b[cell.rows] = confidence @ factors
    return a, b


def solve(a_upper: np.ndarray, b: np.ndarray, gram: np.ndarray, reg: float) -> np.ndarray:
    """x with (gram + A + reg I) x = b for every row; A from its upper triangles."""
    k = b.shape[1]
    i, j = upper(k)
    out = np.empty(b.shape, dtype=np.float32)
    base = gram.astype(np.float64) + reg * np.eye(k)
    for lo in range(0, b.shape[0], SOLVE_ROWS):
        hi = min(lo + SOLVE_ROWS, b.shape[0])
        systems = np.broadcast_to(base, (hi - lo, k, k)).copy()
        systems[:, i, j] += a_upper[lo:hi]
        systems[:, j, i] = systems[:, i, j]
        out[lo:hi] = np.linalg.solve(systems, b[lo:hi, :, None].astype(np.float64))[:, :, 0]
    return out


class Grid:
    """The cached cells of one fit and their two orientations' bookkeeping."""

    def __init__(
        self,
        spark: SparkSession,
        ratings: DataFrame,
        cfg: ALSConfig,
        blocks_: int,
        files: list[str],
    ):
        self.spark, self.n = spark, blocks_
        sc = spark.sparkContext
        ids = {
            "user": np.sort(np.array(ratings.select("user_idx").distinct().toPandas()["user_idx"])),
            "item": np.sort(np.array(ratings.select("item_idx").distinct().toPandas()["item_idx"])),
        }
        # Each side's block members in id order, and every id's position in its block.
        self.members = {s: [v[v % blocks_ == k] for k in range(blocks_)] for s, v in ids.items()}
        self.ids = ids
        position = {}
        for s, v in ids.items():
            pos = np.zeros(int(v.max()) + 1, dtype=np.int32)
            for members in self.members[s]:
                pos[members] = np.arange(members.size, dtype=np.int32)
            position[s] = sc.broadcast(pos)
        self._positions = position
        n = blocks_

        def cell(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            return (rows % n) * n + cols % n

        keyings = [
            blocks.Keying(by, by, n * n, cell, position[by], position[other])
            for by, other in (("user", "item"), ("item", "user"))
        ]
        # Cell (rb, cb) of orientation ``by``: rows = positions in row block rb, columns =
        # positions in column block cb; key rb * n + cb, in partition rb * n + cb.
        self.built = blocks.build(sc, files, keyings, cfg.alpha)
        self.cells = self.built.rdds

    def half_step(self, by: str, own: np.ndarray, other: np.ndarray, reg: float) -> None:
        """Solve side ``by`` (``own``, in place) given the other side's factors."""
        sc, n = self.spark.sparkContext, self.n
        other_side = "item" if by == "user" else "user"
        pieces = [(cb, other[m]) for cb, m in enumerate(self.members[other_side])]
        # Each column block's factors go to the n cells of that column block only.
        to_cells = (
            sc.parallelize(pieces, n)
            .flatMap(lambda kv: [(rb * n + kv[0], kv[1]) for rb in range(n)])
            .partitionBy(n * n, blocks.identity)
        )
        sizes = [m.size for m in self.members[by]]

        def contribute(pair: Any) -> Iterator[tuple[int, tuple[int, Any, Any]]]:
            (key, cell), (_, factors) = pair
            rb, cb = divmod(key, n)
            a, b = partial_sums(cell, sizes[rb], factors)
            yield rb, (cb, a, b)

        gram = other.T.astype(np.float64) @ other.astype(np.float64)

        def solve_block(kv: Any) -> tuple[int, np.ndarray]:
            rb, partials = kv
            partials = sorted(partials, key=lambda p: p[0])  # a fixed order: deterministic
            a = partials[0][1].copy()
            b = partials[0][2].copy()
            for _, pa, pb in partials[1:]:
                a += pa
                b += pb
            return rb, solve(a, b, gram, reg)

        cells = self.cells[by]
        summed = (
            cells.zip(to_cells).flatMap(contribute).groupByKey(n, blocks.identity).map(solve_block)
        )
        for rb, solved in summed.collect():
            own[self.members[by][rb]] = solved

    def unpersist(self) -> None:
        for cells in self.cells.values():
            cells.unpersist()
        for bc in self._positions.values():
            bc.destroy()


def fit(
    spark: SparkSession,
    ratings: DataFrame,
    cfg: ALSConfig,
    checkpoints: grid.Checkpoints | None = None,
    initial: tuple[np.ndarray, np.ndarray] | None = None,
    files: list[str] | None = None,
    pairs: int | None = None,
) -> grid.Fitted:
    """ALS on ``ratings``; ``files`` as for half gridify."""
    started = time.monotonic()
    written_before = grid.shuffle_written(spark)
    with grid.rating_files(ratings, files) as names:
        shape = grid.shape_of(ratings, files, pairs)  # by content when the files are our own
        n = grid.default_blocks(spark, cfg)
        cells = Grid(spark, ratings, cfg, n, names)  # built once, inside the timing
        try:
            blocks.check_pairs(cells.built, shape.pairs)
            built_s = time.monotonic() - started
            written_built = grid.shuffle_written(spark)
            reg = cfg.regularization
            done = grid.alternate(
                spark,
                LAYOUT,
                cfg,
                shape,
                {"user": n, "item": n},
                {
                    "user": lambda own, other: cells.half_step("user", own, other, reg),
                    "item": lambda own, other: cells.half_step("item", own, other, reg),
                },
                cells.ids,
                checkpoints,
                initial,
            )
        finally:
            cells.unpersist()
    return grid.Fitted(
        done.users,
        done.items,
        cells.ids["user"],
        cells.ids["item"],
        time.monotonic() - started,
        {
            "layout": LAYOUT,
            "blocks": {"user": n, "item": n, "cells": n * n},
            "solver": "batched solve of the normal equations",
            "resumed_from_iteration": done.resumed_from,
            "build_seconds": round(built_s, 2),
            "shuffle_write_mb_build": grid.mib(written_built - written_before),
            "shuffle_write_mb_per_iter": done.shuffle_mb_per_iter,
        },
    )
