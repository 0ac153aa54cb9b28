"""Train implicit ALS (Spark MLlib) on a prepared interactions table and save a versioned model.

    python spark_jobs/train.py --data-root data --interactions data/lake/interactions/artist \
        --as-of 2026-01-14 [--rank 32 --reg-param 0.05 --alpha 10 --max-iter 10] [--search]

The model is written to a staging folder and moved into ``models/runs/<model-id>`` only when
complete, so a failed run never destroys the last good model.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from musicrec import als, io, scoring
from musicrec import constants as c
from musicrec.config import ALSConfig
from musicrec.exceptions import MissingInputError
from musicrec.jobs import base_parser, entry, session_for
from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("musicrec.train")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parse_args(argv: Sequence[str] | None) -> tuple[ALSConfig, argparse.Namespace]:
    d = ALSConfig()
    p = base_parser(__doc__)
    p.add_argument("--interactions", type=Path, required=True, help="prepared interactions table")
    p.add_argument("--as-of", required=True, help="as_of partition to train on (its train split)")
    p.add_argument("--model-id", default=None, help="default: <table name>-<as-of>")
    for name, value in (
        ("rank", d.rank),
        ("max-iter", d.max_iter),
        ("seed", d.seed),
        ("checkpoint-interval", d.checkpoint_interval),
    ):
        p.add_argument(f"--{name}", type=int, default=value)
    p.add_argument("--reg-param", type=float, default=d.reg_param)
    p.add_argument("--alpha", type=float, default=d.alpha)
    p.add_argument("--num-blocks", type=int, default=None)
    p.add_argument("--search", action="store_true", help="grid search on a validation split")
    p.add_argument("--search-ranks", default="16,32")
    p.add_argument("--search-reg-params", default="0.01,0.1")
    p.add_argument("--search-alphas", default="5,20")
    a = p.parse_args(argv)
    cfg = ALSConfig(
        a.rank, a.reg_param, a.alpha, a.max_iter, a.seed, a.checkpoint_interval, a.num_blocks
    )
    return cfg, a


def search(
    spark: SparkSession, train: DataFrame, base: ALSConfig, args: argparse.Namespace, work: Path
) -> tuple[ALSConfig, list[dict]]:
    """Grid search by NDCG@10 on a hash split written out before fitting (SPARK-28927)."""
    fit_part, val_part = als.hash_split(train, 0.2, base.seed)
    fit_part.write.parquet(str(work / "fit"))
    val_part.write.parquet(str(work / "validation"))
    fit_df = spark.read.parquet(str(work / "fit")).cache()
    val_df = spark.read.parquet(str(work / "validation"))
    trials = []
    for rank in (int(r) for r in _floats(args.search_ranks)):
        for reg in _floats(args.search_reg_params):
            for alpha in _floats(args.search_alphas):
                cfg = ALSConfig(
                    int(rank),
                    reg,
                    alpha,
                    base.max_iter,
                    base.seed,
                    base.checkpoint_interval,
                    base.num_blocks,
                )
                model, seconds = als.fit(spark, fit_df, cfg)
                ndcg = validation_ndcg(spark, model, fit_df, val_df)
                trials.append(
                    {
                        "rank": cfg.rank,
                        "reg_param": reg,
                        "alpha": alpha,
                        "ndcg@10": ndcg,
                        "fit_seconds": round(seconds, 2),
                    }
                )
                log.info("search %s", trials[-1])
    best = max(trials, key=lambda t: (t["ndcg@10"], -t["rank"]))
    chosen = ALSConfig(
        int(best["rank"]),
        best["reg_param"],
        best["alpha"],
        base.max_iter,
        base.seed,
        base.checkpoint_interval,
        base.num_blocks,
    )
    fit_df.unpersist()
    return chosen, trials


def validation_ndcg(spark: SparkSession, model, seen: DataFrame, relevant: DataFrame) -> float:  # noqa: ANN001
    items, known = scoring.item_matrix(model.itemFactors)
    users = scoring.user_rows(model.userFactors, seen, relevant)
    summary = scoring.summarize(
        scoring.evaluate(spark, users, items, known, subsets=("new",), ks=(10,)),
        len(items),
        ks=(10,),
    )
    return summary["ndcg@10"]


def save(model, root: Path, model_id: str, metadata: dict) -> Path:  # noqa: ANN001
    """Write to a staging folder, then swap into models/runs/<model_id>."""
    target = root / c.MODELS / "runs" / model_id
    target.parent.mkdir(parents=True, exist_ok=True)
    io.clean_staging(target.parent)
    staged = io.staging_dir(target)
    model.save(str(staged / "als"))
    (staged / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    io.replace_dir(staged, target)
    return target


def train(spark: SparkSession, cfg: ALSConfig, args: argparse.Namespace) -> dict:
    started = time.monotonic()
    model_id = args.model_id or f"{args.interactions.name}-{args.as_of}"
    data = io.read_split(spark, args.interactions, args.as_of, c.SPLIT_TRAIN).cache()
    pairs = data.count()
    if pairs == 0:
        raise MissingInputError(f"no train interactions for as_of={args.as_of}")
    trials: list[dict] = []
    if args.search:
        work = args.data_root / c.MODELS / "search" / model_id
        shutil.rmtree(work, ignore_errors=True)  # a re-run searches afresh
        cfg, trials = search(spark, data, cfg, args, work)
    model, fit_seconds = als.fit(spark, data, cfg)
    metadata = {
        "model_id": model_id,
        "params": vars(cfg),
        "implicit_prefs": True,
        "num_blocks": als.num_blocks(spark, cfg),
        "storage": [als.INTERMEDIATE_STORAGE, als.FINAL_STORAGE],
        "data": {
            "interactions": str(args.interactions),
            "as_of": args.as_of,
            "pairs": pairs,
            "users": model.userFactors.count(),
            "items": model.itemFactors.count(),
        },
        "search": trials,
        "spark_version": spark.version,
        "master": spark.sparkContext.master,
        "timings": {
            "fit_seconds": round(fit_seconds, 2),
            "total_seconds": round(time.monotonic() - started, 2),
        },
    }
    path = save(model, args.data_root, model_id, metadata)
    metadata["path"] = str(path)
    io.write_json_atomic(
        io.manifest_path(args.data_root, "train", model_id),
        {"step": "train", "run_id": args.run_id, **metadata},
    )
    data.unpersist()
    log.info("trained %s in %.1f s: %s", model_id, fit_seconds, metadata["data"])
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    spark = session_for(args, "train")
    train(spark, cfg, args)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
