"""Evaluate a trained model on a time-based holdout against baselines, then apply the gate.

    python spark_jobs/evaluate.py --data-root data --model data/models/runs/artist-2026-01-14 \
        --interactions data/lake/interactions/artist --as-of 2026-01-14

"all" scores every stream in the holdout; "new" only items the user had not streamed in the
training window (discovery). Baseline: most popular items in the training window. Writes
``reports/evaluation/<model-id>/{metrics.json,report.html}``; exits 3 if the gate fails.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from musicrec import constants as c
from musicrec import io, report, scoring
from musicrec.config import GateConfig
from musicrec.exceptions import DataRejectedError, MissingInputError
from musicrec.gate import decide
from musicrec.jobs import base_parser, entry, session_for
from musicrec.prepare import ITEM_IDX
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger("musicrec.evaluate")


def parse_args(argv: Sequence[str] | None) -> tuple[GateConfig, argparse.Namespace]:
    d = GateConfig()
    p = base_parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="models/runs/<model-id>")
    p.add_argument("--interactions", type=Path, required=True)
    p.add_argument("--as-of", required=True)
    p.add_argument(
        "--holdout",
        type=Path,
        default=None,
        help="explicit holdout table of the interactions schema (default: the split)",
    )
    p.add_argument(
        "--published-model",
        type=Path,
        default=None,
        help="champion to compare with (default: the one serving now, if any)",
    )
    p.add_argument("--min-lift", type=float, default=d.min_lift_over_popularity)
    p.add_argument("--max-drop", type=float, default=d.max_drop_vs_published)
    p.add_argument("--gate-subset", choices=["all", "new"], default=d.subset)
    a = p.parse_args(argv)
    return GateConfig(a.min_lift, a.max_drop, d.metric, a.gate_subset), a


def popularity_vector(train: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rank-1 'model': item vector = number of users who streamed it; every user vector = 1."""
    pop = train.groupBy(ITEM_IDX).agg(F.count(F.lit(1)).alias("n")).toPandas()
    n = int(pop[ITEM_IDX].max()) + 1
    vec = np.zeros((n, 1), dtype=np.float32)
    vec[pop[ITEM_IDX].to_numpy(), 0] = pop["n"].to_numpy()
    return vec, vec[:, 0] > 0


def score_model(
    spark: SparkSession,
    user_factors: DataFrame,
    items: np.ndarray,
    known: np.ndarray,
    train: DataFrame,
    holdout: DataFrame,
) -> dict[str, dict]:
    """Summaries of the "all" and "new" subsets from one scoring pass over the users."""
    users = scoring.user_rows(user_factors, train, holdout)
    per_user = scoring.evaluate(spark, users, items, known).cache()
    out = {
        subset: scoring.summarize(per_user.where(F.col("subset") == subset), int(known.sum()))
        for subset in scoring.SUBSETS
    }
    per_user.unpersist()
    return out


def evaluate(spark: SparkSession, gate: GateConfig, args: argparse.Namespace) -> dict:
    started = time.monotonic()
    model_dir = args.model
    if not (model_dir / "als").exists():
        raise MissingInputError(f"no model at {model_dir}")
    model = ALSModel.load(str(model_dir / "als"))
    model_id = model_dir.name
    train = io.read_split(spark, args.interactions, args.as_of, c.SPLIT_TRAIN).cache()
    holdout = (
        spark.read.parquet(str(args.holdout))
        if args.holdout
        else io.read_split(spark, args.interactions, args.as_of, c.SPLIT_HOLDOUT)
    )
    holdout = holdout.cache()
    if holdout.count() == 0:
        raise MissingInputError("the holdout is empty: nothing to evaluate on")
    results: dict[str, dict[str, dict]] = {"all": {}, "new": {}}
    items, known = scoring.item_matrix(model.itemFactors)
    for subset, values in score_model(
        spark, model.userFactors, items, known, train, holdout
    ).items():
        results[subset]["als"] = values
    pop_items, pop_known = popularity_vector(train)
    ones = model.userFactors.select("id", F.array(F.lit(1.0).cast("float")).alias("features"))
    for subset, values in score_model(spark, ones, pop_items, pop_known, train, holdout).items():
        results[subset]["popularity"] = values
    champion = args.published_model or published_model(args.data_root, args.as_of)
    if champion is not None and champion.resolve() != model_dir.resolve():
        cmodel = ALSModel.load(str(champion / "als"))
        citems, cknown = scoring.item_matrix(cmodel.itemFactors)
        for subset, values in score_model(
            spark, cmodel.userFactors, citems, cknown, train, holdout
        ).items():
            results[subset]["published"] = values
    gated = results[gate.subset]
    decision = decide(gated["als"], gated["popularity"], gated.get("published"), gate)
    return finish(args, model_id, results, decision, champion, started)


def published_model(root: Path, as_of: str) -> Path | None:
    """The serving model, if it is not newer than ``as_of``.

    A newer champion (a backfill re-running an older date) was trained on data that includes
    this holdout: comparing with it would be leakage, so there is no champion then.
    """
    pointer = root / c.SERVING / "published.json"
    if pointer.exists():
        published = io.read_json(pointer)
        path = Path(published["model"])
        if published.get("as_of", "") > as_of:
            log.info("serving model %s is newer than %s: not compared", path.name, as_of)
            return None
        return path if path.exists() else None
    return None


def finish(args, model_id, results, decision, champion, started) -> dict:  # noqa: ANN001
    out_dir = args.data_root / c.REPORTS / "evaluation" / model_id
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_id": model_id,
        "model": str(args.model),
        "as_of": args.as_of,
        "champion": str(champion) if champion else None,
        "results": results,
        "gate": decision,
    }
    io.write_json_atomic(out_dir / "metrics.json", payload)
    (out_dir / "report.html").write_text(
        report.render(f"Evaluation of {model_id}", results, decision)
    )
    manifest = {
        "step": "evaluate",
        "run_id": args.run_id,
        **payload,
        "outputs": {
            "metrics": str(out_dir / "metrics.json"),
            "report": str(out_dir / "report.html"),
        },
        "seconds": round(time.monotonic() - started, 2),
    }
    io.write_json_atomic(io.manifest_path(args.data_root, "evaluate", model_id), manifest)
    als, pop = results[decision["subset"]]["als"], results[decision["subset"]]["popularity"]
    log.info(
        "ALS ndcg@10 %.4f vs popularity %.4f (%s); report %s",
        als["ndcg@10"],
        pop["ndcg@10"],
        decision["subset"],
        out_dir / "report.html",
    )
    if not decision["passed"]:
        raise DataRejectedError(
            "quality gate FAILED, nothing will be published:\n- " + "\n- ".join(decision["reasons"])
        )
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    gate, args = parse_args(argv)
    spark = session_for(args, "evaluate")
    evaluate(spark, gate, args)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
