"""The train step: implicit ALS on a prepared interactions table, saved as a versioned model.

The model is written to a staging folder and swapped into ``models/runs/<model-id>`` only
when complete (``lake.swap``), so a failed run never destroys the last good model; a swap
interrupted by a crash is undone at the start of the next run. Model runs beyond the
retention rule (``serving.retention``) are removed afterwards.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from musicrec import config
from musicrec import constants as c
from musicrec.config import ALSConfig, PublishConfig
from musicrec.exceptions import MissingInputError
from musicrec.lake import io, swap
from musicrec.model import factors, grid, layouts, search
from musicrec.runtime.jobs import base_parser
from musicrec.serving import retention
from musicrec.serving.store import add_store_options, store_for

log = logging.getLogger("musicrec.train")
NAME = "train"


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parse_args(argv: Sequence[str] | None) -> tuple[ALSConfig, argparse.Namespace]:
    p = base_parser(__doc__)
    p.add_argument("--interactions", type=Path, required=True, help="prepared interactions table")
    p.add_argument("--as-of", required=True, help="as_of partition to train on (its train split)")
    p.add_argument("--model-id", default=None, help="default: <table name>-<as-of>")
    config.add_options(p, ALSConfig)
    p.add_argument("--search", action="store_true", help="grid search on a validation split")
    p.add_argument("--search-ranks", default="16,32")
    p.add_argument(
        "--search-reg-params", default=None, help="default: the layout's own grid (search.REG_GRID)"
    )
    p.add_argument(
        "--search-alphas", default=None, help="default: the layout's own grid (search.ALPHA_GRID)"
    )
    config.add_options(p, PublishConfig, skip=("top_n", "related_n"))
    add_store_options(p)
    args = p.parse_args(argv)
    args.model_id = args.model_id or f"{args.interactions.name}-{args.as_of}"
    return config.from_options(ALSConfig, args), args


def model_dir(root: Path, model_id: str) -> Path:
    return root / c.MODELS / "runs" / model_id


def checkpoint_dir(root: Path, model_id: str) -> Path:
    """Factor checkpoints of a grid layout's fit, beside the runs: a retry resumes there."""
    return root / c.MODELS / "checkpoints" / model_id


def run(spark: SparkSession, cfg: ALSConfig, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    target = model_dir(args.data_root, args.model_id)
    recovered = swap.recover(target)
    # Not cached: the grid layouts read the split's files, MLlib reads it once into its blocks;
    # caching it cost 9 s of the large train step's 62 (measured), its count reads footers.
    data = io.read_split(spark, args.interactions, args.as_of, c.SPLIT_TRAIN)
    pairs = data.count()
    if pairs == 0:
        raise MissingInputError(f"no train interactions for as_of={args.as_of}")
    trials: list[dict] = []
    if args.search:
        work = args.data_root / c.MODELS / "search" / args.model_id
        shutil.rmtree(work, ignore_errors=True)  # a re-run searches afresh
        regs = (
            _floats(args.search_reg_params)
            if args.search_reg_params
            else search.REG_GRID[cfg.layout]
        )
        alphas = (
            _floats(args.search_alphas) if args.search_alphas else search.ALPHA_GRID[cfg.layout]
        )
        trials_grid = search.grid([int(r) for r in _floats(args.search_ranks)], regs, alphas)
        cfg, trials = search.search(spark, data, cfg, trials_grid, work)
    checkpoints = grid.Checkpoints(
        checkpoint_dir(args.data_root, args.model_id), {}, cfg.checkpoint_interval
    )
    workers_s = grid.start_workers(spark) if cfg.layout != "mllib" else 0.0
    files = io.split_files(args.interactions, args.as_of, c.SPLIT_TRAIN)
    trained = layouts.fit(spark, data, cfg, checkpoints, files, pairs)
    metadata = {
        "model_id": args.model_id,
        "layout": trained.layout,
        "params": vars(cfg),
        "implicit_prefs": True,
        "fit": trained.details,
        "data": {
            "interactions": str(args.interactions),
            "as_of": args.as_of,
            "pairs": pairs,
            "users": trained.users.count(),
            "items": trained.items.count(),
        },
        "search": trials,
        "spark_version": spark.version,
        "master": spark.sparkContext.master,
        "timings": {
            "fit_seconds": round(trained.seconds, 2),
            "python_workers_start_seconds": round(workers_s, 2),
        },
    }
    staged = swap.staging(target)
    trained.write(staged)
    metadata["timings"]["total_seconds"] = round(time.monotonic() - started, 2)
    factors.write_metadata(staged, metadata)
    swap.swap_in(staged, target)
    checkpoints.clear()  # the model is complete: a later run of this id starts afresh
    store = store_for(args.data_root, args.database_url, args.reader_role)
    kept = retention.protected_models(store) | {args.model_id}
    removed = retention.prune_models(target.parent, kept, args.keep)
    return {
        "step": NAME,
        "key": args.model_id,
        "run_id": args.run_id,
        **metadata,
        "path": str(target),
        "recovered": recovered,
        "checkpoints_written": checkpoints.written,
        "retention_removed_models": removed,
    }
