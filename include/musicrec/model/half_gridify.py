"""The half-gridify layout (the talk's winner: 1.5 h where full gridify took 3.5 h).

Ratings are cut into user blocks, built once into CSR blocks and kept, never shuffled
again; a second copy cut into item blocks serves the item half-iteration. The blocks are
staged on the executors' local disks (``blocks.stage``: one job, an RDD of their keys cached
so block k's tasks run where it is) and memory-mapped by the tasks, not read from Spark's
cache through the JVM every half-iteration. Each
half-iteration sends the other side's factors to every block once (a broadcast) and every
block solves its own rows locally with the `implicit` library's CPU kernel: conjugate
gradient (``least_squares_cg``, warm-started from the block's current factors) or Cholesky
(``least_squares``). The solved rows go back to the driver, where the factors live.

One broadcast per half-iteration: the side the previous half-iteration solved. A block's
starting factors come from its own side's broadcast, made by the previous half-iteration
as its "other side" and still current (this side has not changed since); Python workers
reuse broadcasts across tasks, so they already hold it. Once this side is solved that
broadcast is stale and destroyed. A worker thus holds both sides' factors at once.

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
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession

from musicrec.config import ALSConfig
from musicrec.exceptions import ConfigError
from musicrec.model import blocks, grid

log = logging.getLogger(__name__)
LAYOUT = "half-gridify"
OTHER = {"user": "item", "item": "user"}


def solve_blocks(
    staged: blocks.Staged,
    side: str,
    other: Any,
    own: Any,
    n_other: int,
    reg: float,
    solver: str,
    threads: int,
    cg: int,
):
    """The task: each staged block's rows solved against the other side's factors, starting
    from their current values (``other``, ``own``: broadcasts of each side's whole matrix)."""

    def run(partition: Iterator[int]) -> Iterator[tuple[int, np.ndarray, float, bool]]:
        from implicit.cpu._als import least_squares, least_squares_cg
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            for key in partition:
                block, rebuilt = staged.load(side, key)
                factors = own.value[block.rows]  # a copy: C-contiguous, writable
                confidence = block.csr(n_other)
                solving = time.perf_counter()
                if solver == "cg":
                    least_squares_cg(
                        confidence, factors, other.value, reg, num_threads=threads, cg_steps=cg
                    )
                else:
                    least_squares(confidence, factors, other.value, reg, num_threads=threads)
                yield key, factors, time.perf_counter() - solving, rebuilt

    return run


@dataclass
class Kernel:
    """Time inside the kernel, from the tasks: per half-iteration, its longest task's and
    the sum over its tasks. With one block per task slot (the default) the longest tasks'
    sum is the kernel's share of the fit; the rest of a half-iteration is Spark's (task
    launch, broadcasts, result transfer) and the driver's."""

    longest: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    rebuilt: int = 0  # staged blocks a task found missing and rebuilt from the files

    def report(self) -> dict[str, float]:
        return {
            "kernel_seconds": round(sum(self.longest), 2),
            "kernel_task_seconds": round(sum(self.total), 2),
            "blocks_rebuilt": self.rebuilt,
        }


class Shared:
    """The current broadcast of each side's factors, made when first needed and destroyed as
    soon as that side is solved (stale)."""

    def __init__(self, spark: SparkSession):
        self.sc = spark.sparkContext
        self.current: dict[str, Broadcast] = {}

    def of(self, side: str, factors: np.ndarray) -> Broadcast:
        if side not in self.current:
            self.current[side] = self.sc.broadcast(factors)
        return self.current[side]

    def solved(self, side: str) -> None:
        stale = self.current.pop(side, None)
        if stale is not None:
            stale.destroy()

    def close(self) -> None:
        for side in list(self.current):
            self.solved(side)


def half_step(
    built: blocks.Built,
    side: str,
    own: np.ndarray,
    other: np.ndarray,
    shared: Shared,
    cfg: ALSConfig,
    threads: int,
    kernel: Kernel,
) -> None:
    """Solve ``side`` (``own``, updated in place) given the other side; the tasks' kernel
    times go to ``kernel``."""
    other_bc = shared.of(OTHER[side], other)
    own_bc = shared.of(side, own)
    assert built.staged is not None
    task = solve_blocks(
        built.staged,
        side,
        other_bc,
        own_bc,
        other.shape[0],
        cfg.regularization,
        cfg.solver,
        threads,
        cfg.cg_steps,
    )
    try:
        seconds = []
        solved_blocks = built.rdds[side].mapPartitions(task, preservesPartitioning=True).collect()
        for key, solved, solve_s, rebuilt in solved_blocks:
            own[built.rows[side][key]] = solved
            seconds.append(solve_s)
            if rebuilt:
                kernel.rebuilt += 1
                log.warning(
                    "%s block %d was not on its executor: rebuilt from the files", side, key
                )
        kernel.longest.append(max(seconds, default=0.0))
        kernel.total.append(sum(seconds))
    finally:
        shared.solved(side)


def broadcast_bytes(shape: grid.Shape, rank: int) -> int:
    """What one Python worker holds at once: both sides' factors (``Shared``)."""
    return (shape.n_users + shape.n_items) * rank * 4


def check_budget(spark: SparkSession, shape: grid.Shape, cfg: ALSConfig) -> dict:
    """Refuse up front, not mid-run, when the broadcasts would not fit the budget."""
    per_worker = broadcast_bytes(shape, cfg.rank)
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
    pairs: int | None = None,
) -> grid.Fitted:
    """ALS on ``ratings`` (user_idx, item_idx, rating); ``files``, if given, are parquet
    files holding exactly those rows, from which the blocks are read; ``pairs``, if known,
    the ratings' count."""
    started = time.monotonic()
    written_before = grid.shuffle_written(spark)
    with grid.rating_files(ratings, files) as names:
        shape = grid.shape_of(ratings, files, pairs)  # by content when the files are our own
        budget = check_budget(spark, shape, cfg)
        n_blocks = grid.default_blocks(spark, cfg)
        keyings = [blocks.Keying(s, s, n_blocks, blocks.modulo(n_blocks)) for s in OTHER]
        built = blocks.stage(spark.sparkContext, names, keyings, cfg.alpha)
        try:
            blocks.check_pairs(built, shape.pairs)
            built_s = time.monotonic() - started
            written_built = grid.shuffle_written(spark)
            alternating = time.monotonic()
            done, kernel = alternate(spark, built, shape, cfg, checkpoints, initial)
            alternate_s = time.monotonic() - alternating
        finally:
            blocks.release(built)
    user_ids, item_ids = (np.sort(np.concatenate(list(built.rows[s].values()))) for s in OTHER)
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
            "threads_per_task": grid.threads_per_task(spark),
            "resumed_from_iteration": done.resumed_from,
            "build_seconds": round(built_s, 2),
            "alternate_seconds": round(alternate_s, 2),
            **kernel.report(),
            "shuffle_write_mb_build": grid.mib(written_built - written_before),
            "shuffle_write_mb_per_iter": done.shuffle_mb_per_iter,
            **budget,
        },
    )


def alternate(
    spark: SparkSession,
    built: blocks.Built,
    shape: grid.Shape,
    cfg: ALSConfig,
    checkpoints: grid.Checkpoints | None,
    initial: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[grid.Alternation, Kernel]:
    """The alternation over the built blocks, with the kernel's times."""
    kernel, shared = Kernel(), Shared(spark)
    threads = grid.threads_per_task(spark)

    def solver(side: str) -> Any:
        return lambda own, other: half_step(built, side, own, other, shared, cfg, threads, kernel)

    n_blocks = {side: len(built.rows[side]) for side in OTHER}
    rated = {side: np.concatenate(list(built.rows[side].values())) for side in OTHER}
    try:
        done = grid.alternate(
            spark,
            LAYOUT,
            cfg,
            shape,
            n_blocks,
            {side: solver(side) for side in OTHER},
            rated,
            checkpoints,
            initial,
        )
    finally:
        shared.close()
    return done, kernel
