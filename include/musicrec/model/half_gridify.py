"""The half-gridify layout (the talk's winner: 1.5 h where full gridify took 3.5 h).

Ratings are cut into user blocks, built once into CSR blocks and cached, never shuffled
again; a second copy cut into item blocks serves the item half-iteration. Each
half-iteration sends the other side's factors to every block once (a broadcast, destroyed
after the half-iteration) and every block solves its own rows locally with the `implicit`
library's CPU kernel: conjugate gradient (``least_squares_cg``, warm-started from the
block's current factors, which reach it as a broadcast of that block alone) or Cholesky
(``least_squares``). The solved rows go back to the driver, where the factors live.

The kernels' conventions (read from their source): the stored value is the confidence c
itself; the regulariser is a plain lambda for every row (MLlib scales it by the row's
count, so hyperparameters do not carry over); factors are float32, C-contiguous and
writable; OpenMP threads = the task's cores, BLAS at one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark import RDD
from pyspark.sql import DataFrame, SparkSession

from musicrec.config import ALSConfig
from musicrec.exceptions import ConfigError
from musicrec.model import blocks, grid

log = logging.getLogger(__name__)
LAYOUT = "half-gridify"


def solve_blocks(
    other: Any, own: dict[int, Any], n_other: int, reg: float, solver: str, threads: int, cg: int
):
    """The task: each block's rows solved against the other side's factors (broadcast)."""

    def run(
        partition: Iterator[tuple[int, blocks.Block]],
    ) -> Iterator[tuple[int, np.ndarray, float]]:
        from implicit.cpu._als import least_squares, least_squares_cg
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            for key, block in partition:
                factors = np.array(own[key].value, dtype=np.float32, order="C")  # writable
                confidence = block.csr(n_other)
                solving = time.perf_counter()
                if solver == "cg":
                    least_squares_cg(
                        confidence, factors, other.value, reg, num_threads=threads, cg_steps=cg
                    )
                else:
                    least_squares(confidence, factors, other.value, reg, num_threads=threads)
                yield key, factors, time.perf_counter() - solving

    return run


@dataclass
class Kernel:
    """Time inside the kernel, from the tasks: per half-iteration, its longest task's and
    the sum over its tasks. With one block per task slot (the default) the longest tasks'
    sum is the kernel's share of the fit; the rest of a half-iteration is Spark's (task
    launch, broadcasts, result transfer) and the driver's."""

    longest: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)

    def report(self) -> dict[str, float]:
        return {
            "kernel_seconds": round(sum(self.longest), 2),
            "kernel_task_seconds": round(sum(self.total), 2),
        }


def half_step(
    spark: SparkSession,
    side: RDD,
    rows: dict[int, np.ndarray],
    own: np.ndarray,
    other: np.ndarray,
    cfg: ALSConfig,
    threads: int,
    kernel: Kernel,
) -> None:
    """Solve one side (``own``, updated in place) given the other; the tasks' kernel
    times go to ``kernel``."""
    sc = spark.sparkContext
    other_bc = sc.broadcast(other)
    own_bc = {key: sc.broadcast(own[ids]) for key, ids in rows.items()}
    task = solve_blocks(
        other_bc, own_bc, other.shape[0], cfg.regularization, cfg.solver, threads, cfg.cg_steps
    )
    try:
        seconds = []
        for key, solved, solve_s in side.mapPartitions(task, preservesPartitioning=True).collect():
            own[rows[key]] = solved
            seconds.append(solve_s)
        kernel.longest.append(max(seconds, default=0.0))
        kernel.total.append(sum(seconds))
    finally:
        for bc in (other_bc, *own_bc.values()):
            bc.destroy()


def broadcast_bytes(shape: grid.Shape, rank: int, largest_block: dict[str, int]) -> int:
    """What one Python worker holds at once: the other side whole, plus its own block."""
    users = (shape.n_items + largest_block["user"]) * rank * 4
    items = (shape.n_users + largest_block["item"]) * rank * 4
    return max(users, items)


def check_budget(spark: SparkSession, shape: grid.Shape, cfg: ALSConfig, n_blocks: int) -> dict:
    """Refuse up front, not mid-run, when the broadcasts would not fit the budget."""
    per_worker = broadcast_bytes(
        shape,
        cfg.rank,
        {"user": -(-shape.n_users // n_blocks), "item": -(-shape.n_items // n_blocks)},
    )
    workers = grid.concurrent_tasks(spark)
    total = per_worker * workers
    budget = cfg.broadcast_budget_mb * 2**20
    figures = {
        "broadcast_mb_per_worker": grid.mib(per_worker),
        "concurrent_workers": workers,
        "broadcast_mb_per_executor": grid.mib(total),
        "budget_mb": cfg.broadcast_budget_mb,
    }
    log.info(
        "half-gridify broadcasts: %.1f MB per Python worker x %d concurrent = %.1f MB "
        "(budget %d MB)",
        figures["broadcast_mb_per_worker"],
        workers,
        figures["broadcast_mb_per_executor"],
        cfg.broadcast_budget_mb,
    )
    if total > budget:
        raise ConfigError(
            f"half-gridify would broadcast {grid.mib(per_worker):,.0f} MB of factors to each of "
            f"{workers} concurrent Python workers ({grid.mib(total):,.0f} MB), over the budget "
            f"of {cfg.broadcast_budget_mb:,} MB (--broadcast-budget-mb). Layouts that fit: "
            "full-gridify (each cell gets only its own items' factors) and mllib. Or raise the "
            "budget if the executors have the memory."
        )
    return figures


def fit(
    spark: SparkSession,
    ratings: DataFrame,
    cfg: ALSConfig,
    checkpoints: grid.Checkpoints | None = None,
    initial: tuple[np.ndarray, np.ndarray] | None = None,
    files: list[str] | None = None,
) -> grid.Fitted:
    """ALS on ``ratings`` (user_idx, item_idx, rating; read from written files: ``files``,
    if given, are those files, read by pyarrow to build the blocks)."""
    started = time.monotonic()
    written_before = grid.shuffle_written(spark)
    shape = grid.shape_of(ratings, files)
    n_blocks = grid.default_blocks(spark, cfg)
    budget = check_budget(spark, shape, cfg, n_blocks)
    threads = grid.threads_per_task(spark)
    keyings = [blocks.Keying(by, by, n_blocks, blocks.modulo(n_blocks)) for by in ("user", "item")]
    built = blocks.build(ratings, keyings, cfg.alpha, files)
    blocks.check_pairs(built, shape.pairs)
    sides, rows = built.rdds, built.rows
    built_s = time.monotonic() - started
    user_ids = np.sort(np.concatenate(list(rows["user"].values())))
    item_ids = np.sort(np.concatenate(list(rows["item"].values())))
    written_built = grid.shuffle_written(spark)

    kernel = Kernel()

    def solver(side: str) -> Any:
        return lambda own, other: half_step(
            spark, sides[side], rows[side], own, other, cfg, threads, kernel
        )

    alternating = time.monotonic()
    done = grid.alternate(
        spark,
        LAYOUT,
        cfg,
        shape,
        {"user": n_blocks, "item": n_blocks},
        {"user": solver("user"), "item": solver("item")},
        {"user": user_ids, "item": item_ids},
        checkpoints,
        initial,
    )
    alternate_s = time.monotonic() - alternating
    for side in sides.values():
        side.unpersist()
    return grid.Fitted(
        done.users,
        done.items,
        user_ids,
        item_ids,
        time.monotonic() - started,
        {
            "layout": LAYOUT,
            "blocks": {"user": n_blocks, "item": n_blocks},
            "solver": cfg.solver,
            "cg_steps": cfg.cg_steps if cfg.solver == "cg" else None,
            "threads_per_task": threads,
            "resumed_from_iteration": done.resumed_from,
            "build_seconds": round(built_s, 2),
            "alternate_seconds": round(alternate_s, 2),
            **kernel.report(),
            "shuffle_write_mb_build": grid.mib(written_built - written_before),
            "shuffle_write_mb_per_iter": done.shuffle_mb_per_iter,
            **budget,
        },
    )
