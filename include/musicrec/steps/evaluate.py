"""The evaluate step: the model trained up to D-1, scored on what users streamed on D, against
the most-popular baseline and the serving model (the champion), then the quality gate.

"all" scores every stream in the holdout; "new" only items the user had not streamed in the
training window (discovery). Held-out items the model cannot know (cold) are counted apart,
not as misses. Writes ``reports/evaluation/<model-id>/{metrics.json,report.html}``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from musicrec import config
from musicrec import constants as c
from musicrec.config import GateConfig
from musicrec.evaluation import baselines, ranking, report
from musicrec.evaluation.gate import decide
from musicrec.exceptions import DataRejectedError, MissingInputError
from musicrec.lake import io
from musicrec.model import factors, scoring
from musicrec.model.prepare import ITEM_IDX, STREAMS, USER_IDX
from musicrec.runtime.jobs import base_parser
from musicrec.serving.store import Store, add_store_options, store_for

log = logging.getLogger("musicrec.evaluate")
NAME = "evaluate"


def parse_args(argv: Sequence[str] | None) -> tuple[GateConfig, argparse.Namespace]:
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
    add_store_options(p)
    config.add_options(p, GateConfig)
    args = p.parse_args(argv)
    return config.from_options(GateConfig, args), args


def champion(store: Store, as_of: str) -> Path | None:
    """The serving model, per the serving store, if it is not newer than ``as_of``.

    A newer champion (a backfill re-running an older date) was trained on data that includes
    this holdout: comparing with it would be leakage, so there is no champion then.
    """
    serving = store.serving()
    if serving is None:
        return None
    path = Path(serving["model"])
    if (serving.get("as_of") or "") > as_of:
        log.info("serving model %s is newer than %s: not compared", path.name, as_of)
        return None
    if not factors.exists(path):
        log.warning("serving model %s is gone: no champion to compare with", path)
        return None
    return path


HOLDOUT_COLUMNS = (USER_IDX, ITEM_IDX, STREAMS)


def read_holdout(spark: SparkSession, args: argparse.Namespace) -> DataFrame:
    """The holdout's (user_idx, item_idx, streams): the split's, or ``--holdout``'s table,
    which must have those columns of the interactions schema."""
    if args.holdout is None:
        data = io.read_split(spark, args.interactions, args.as_of, c.SPLIT_HOLDOUT)
    else:
        if not args.holdout.exists():
            raise MissingInputError(f"no holdout table at {args.holdout}")
        data = spark.read.parquet(str(args.holdout))
        missing = [name for name in HOLDOUT_COLUMNS if name not in data.columns]
        if missing:
            raise DataRejectedError(
                f"the holdout table {args.holdout} lacks {', '.join(missing)}: it needs "
                f"{', '.join(HOLDOUT_COLUMNS)} of the interactions schema"
            )
    return data.select(*HOLDOUT_COLUMNS)


def run(spark: SparkSession, gate: GateConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Score the model and its baselines; returns the manifest with the gate's decision."""
    started = time.monotonic()
    model = factors.load(spark, args.model)
    # Only the columns scoring reads are cached: not the 17M train pairs' user and item ids.
    train = io.read_split(spark, args.interactions, args.as_of, c.SPLIT_TRAIN)
    train = train.select(USER_IDX, ITEM_IDX).cache()
    holdout = read_holdout(spark, args).cache()
    if holdout.count() == 0:
        raise MissingInputError("the holdout is empty: nothing to evaluate on")
    results: dict[str, dict[str, dict]] = {"all": {}, "new": {}}
    # Who streamed what, before and on the holdout day: the same for every model scored.
    lists = ranking.user_lists(train, holdout).cache()

    def score(name: str, users: Any, items: Any, known: Any) -> None:
        for subset, values in ranking.score_users(spark, users, items, known, lists).items():
            results[subset][name] = values

    items, known = scoring.item_matrix(model.items)
    score("als", model.users, items, known)
    pop_items, pop_known = baselines.popularity_vector(train)
    score("popularity", baselines.popularity_users(model.users), pop_items, pop_known)
    store = store_for(args.data_root, args.database_url, args.reader_role)
    best = args.published_model or champion(store, args.as_of)
    if best is not None and best.resolve() != args.model.resolve():
        served = factors.load(spark, best)
        score("published", served.users, *scoring.item_matrix(served.items))
    lists.unpersist()
    cold = ranking.cold_items(spark, known, holdout)
    if cold["cold_pairs"]:
        log.info(
            "%(cold_pairs)d held-out pairs (%(cold_share).1f%%) are items the model does not "
            "know: left out of the metrics; %(users_only_cold)d users had only those",
            cold | {"cold_share": 100 * cold["cold_share"]},
        )
    gated = results[gate.gate_subset]
    decision = decide(gated["als"], gated["popularity"], gated.get("published"), gate)
    out_dir = args.data_root / c.REPORTS / "evaluation" / model.model_id
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_id": model.model_id,
        "model": str(args.model),
        "as_of": args.as_of,
        "champion": str(best) if best else None,
        "results": results,
        "cold_items": cold,
        "gate": decision,
    }
    io.write_json_atomic(out_dir / "metrics.json", payload)
    title = f"Evaluation of {model.model_id}"
    (out_dir / "report.html").write_text(report.render(title, results, decision, cold))
    return {
        "step": NAME,
        "key": model.model_id,
        "run_id": args.run_id,
        **payload,
        "outputs": {
            "metrics": str(out_dir / "metrics.json"),
            "report": str(out_dir / "report.html"),
        },
        "seconds": round(time.monotonic() - started, 2),
    }


def summary(manifest: dict[str, Any]) -> str:
    subset = manifest["gate"]["subset"]
    als, pop = manifest["results"][subset]["als"], manifest["results"][subset]["popularity"]
    return (
        f"ALS ndcg@10 {als['ndcg@10']:.4f} vs popularity {pop['ndcg@10']:.4f} ({subset}); "
        f"report {manifest['outputs']['report']}"
    )


def enforce(manifest: dict[str, Any]) -> None:
    """A failed gate stops the DAG here (exit 3, not retried): nothing is published."""
    decision = manifest["gate"]
    if not decision["passed"]:
        raise DataRejectedError(
            "quality gate FAILED, nothing will be published:\n- " + "\n- ".join(decision["reasons"])
        )
