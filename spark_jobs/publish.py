"""Publish a model that passed the gate: top-N per user and related items, to serving.

    python spark_jobs/publish.py --data-root data --model data/models/runs/artist-2026-01-14 \
        --interactions data/lake/interactions/artist --as-of 2026-01-14 [--database-url URL]
    python spark_jobs/publish.py rollback --data-root data --version artist-2026-01-13

Writes versioned Parquet under ``serving/versions/<version>/`` and loads it into PostgreSQL
(``--database-url``, bulk COPY) or the embedded SQLite file ``serving/serving.db``; the switch
to the new version is one transaction. Keeps the last ``--keep`` versions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from musicrec import constants as c
from musicrec import io, scoring, serving
from musicrec.exceptions import ConfigError, DataRejectedError, MissingInputError
from musicrec.jobs import base_parser, entry, session_for
from musicrec.prepare import ITEM_ID, ITEM_IDX, USER_IDX
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger("musicrec.publish")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    argv = list(argv) if argv is not None else sys.argv[1:]
    p = base_parser(__doc__)
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    p.add_argument(
        "--reader-role",
        default=None,
        type=lambda v: v or None,  # the DAG passes "" when no reader role is configured
        help="PostgreSQL role granted SELECT on views",
    )
    if argv and argv[0] in ("rollback", "list"):
        p.add_argument("command", choices=["rollback", "list"])
        p.add_argument("--version", default=None)
        return p.parse_args(argv)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--interactions", type=Path, required=True)
    p.add_argument("--as-of", required=True)
    p.add_argument("--top-n", type=int, default=50)
    p.add_argument("--related-n", type=int, default=20)
    p.add_argument("--keep", type=int, default=3, help="published versions to keep")
    p.add_argument("--version", default=None, help="default: the model id")
    p.add_argument("--accepted", type=Path, default=None, help="events, for display names")
    p.add_argument(
        "--skip-gate-check",
        action="store_true",
        help="publish without a passed evaluation (rollouts by hand only)",
    )
    args = p.parse_args(argv)
    args.command = "publish"
    if args.top_n < 1 or args.related_n < 1 or args.keep < 1:
        raise ConfigError("--top-n, --related-n and --keep must be >= 1")
    return args


def store_for(args: argparse.Namespace) -> serving.Store:
    return serving.open_store(
        args.database_url, args.data_root / c.SERVING / "serving.db", args.reader_role
    )


def require_gate_passed(root: Path, model_id: str) -> None:
    path = io.manifest_path(root, "evaluate", model_id)
    if not path.exists():
        raise DataRejectedError(f"model {model_id} was never evaluated: refusing to publish")
    gate = io.read_json(path)["gate"]
    if not gate["passed"]:
        raise DataRejectedError(
            f"model {model_id} failed the quality gate: " + "; ".join(gate["reasons"])
        )


def names(spark: SparkSession, accepted: Path, items: DataFrame, level: str) -> DataFrame:
    """item_id -> display name (latest seen in the events) and stream counts."""
    key = c.ARTIST_ID if level == "artist" else c.TRACK_ID
    label = c.ARTIST_NAME if level == "artist" else c.TRACK_NAME
    if io.table_exists(accepted):
        events = spark.read.parquet(str(accepted)).where(F.col(label).isNotNull())
        named = events.groupBy(F.col(key).alias(ITEM_ID)).agg(
            F.max_by(label, c.EVENT_TS).alias("item_name")
        )
    else:
        named = spark.createDataFrame([], f"{ITEM_ID} string, item_name string")
    return items.join(named, ITEM_ID, "left")


def build_outputs(
    spark: SparkSession, args: argparse.Namespace, model: ALSModel
) -> dict[str, DataFrame]:
    level = args.interactions.name
    seen_pairs = spark.read.parquet(str(args.interactions)).where(F.col("as_of") == args.as_of)
    if seen_pairs.limit(1).count() == 0:
        raise MissingInputError(f"no interactions for as_of={args.as_of}")
    seen = seen_pairs.groupBy(USER_IDX).agg(F.collect_set(ITEM_IDX).alias("seen"))
    users = model.userFactors.select(F.col("id").alias(USER_IDX), "features").join(
        seen, USER_IDX, "left"
    )
    items, known = scoring.item_matrix(model.itemFactors)
    dictionary = spark.read.parquet(str(args.data_root / c.DICTIONARIES / f"items_{level}"))
    streams = seen_pairs.groupBy(ITEM_IDX).agg(F.sum("streams").alias("streams"))
    item_table = names(
        spark,
        args.accepted or args.data_root / c.ACCEPTED_EVENTS,
        dictionary.join(streams, ITEM_IDX),
        level,
    ).cache()
    users_dict = spark.read.parquet(str(args.data_root / c.DICTIONARIES / "users"))
    recs = scoring.recommend(spark, users, items, known, args.top_n, exclude_seen=True)
    recs = (
        recs.join(users_dict, USER_IDX)
        .join(item_table.select(ITEM_IDX, ITEM_ID, "item_name"), ITEM_IDX)
        .select(c.USER_ID, "rank", ITEM_ID, "score", "item_name")
    )
    # Related items: cosine similarity = dot product of unit-length item vectors, self excluded.
    norms = np.linalg.norm(items, axis=1, keepdims=True)
    unit = np.where(norms > 0, items / np.maximum(norms, 1e-12), 0).astype(np.float32)
    item_rows = spark.createDataFrame(
        [(int(i), unit[i].tolist(), [int(i)]) for i in np.nonzero(known)[0]],
        f"{USER_IDX} int, features array<float>, seen array<int>",
    )
    related = scoring.recommend(spark, item_rows, unit, known, args.related_n, exclude_seen=True)
    lookup = item_table.select(ITEM_IDX, ITEM_ID, "item_name")
    related = (
        related.join(lookup.withColumnRenamed(ITEM_IDX, USER_IDX), USER_IDX)
        .join(
            lookup.select(
                F.col(ITEM_IDX),
                F.col(ITEM_ID).alias("related_item_id"),
                F.col("item_name").alias("related_item_name"),
            ),
            ITEM_IDX,
        )
        .select(
            ITEM_ID,
            "rank",
            "related_item_id",
            F.col("score").alias("similarity"),
            "related_item_name",
        )
    )
    return {
        "recommendations": recs,
        "related_items": related,
        "items": item_table.select(ITEM_ID, "item_name", F.col("streams").cast("long")),
    }


def write_version(
    spark: SparkSession, outputs: dict[str, DataFrame], target: Path
) -> dict[str, int]:
    target.parent.mkdir(parents=True, exist_ok=True)
    io.clean_staging(target.parent)
    staged = io.staging_dir(target)
    for kind, frame in outputs.items():
        frame.write.parquet(str(staged / kind))
    io.replace_dir(staged, target)
    # Count what was written (Parquet footers), not the frames: that would score users again.
    return {kind: spark.read.parquet(str(target / kind)).count() for kind in outputs}


def publish(spark: SparkSession, args: argparse.Namespace) -> dict:
    started = time.monotonic()
    model_id = args.model.name
    if not args.skip_gate_check:
        require_gate_passed(args.data_root, model_id)
    version = serving.check_version(args.version or model_id)
    model = ALSModel.load(str(args.model / "als"))
    target = args.data_root / c.SERVING / "versions" / version
    rows = write_version(spark, build_outputs(spark, args, model), target)
    pointer = args.data_root / c.SERVING / "published.json"
    serving_as_of = io.read_json(pointer).get("as_of") if pointer.exists() else None
    if serving_as_of is not None and serving_as_of > args.as_of:
        # A backfill re-running an older date must not send serving back in time.
        log.warning(
            "a newer version (as of %s) is serving: %s is written to %s but not switched to",
            serving_as_of,
            version,
            target,
        )
        result: dict = {"version": version, "switched": False, "serving_as_of": serving_as_of}
    else:
        result = store_for(args).publish(version, str(args.model), target, keep=args.keep)
        result["switched"] = True
        io.write_json_atomic(
            pointer, {"version": version, "model": str(args.model), "as_of": args.as_of}
        )
    manifest = {
        "step": "publish",
        "run_id": args.run_id,
        "version": version,
        "model": str(args.model),
        "outputs": {
            "parquet": str(target),
            "database": "postgresql"
            if args.database_url
            else str(args.data_root / c.SERVING / "serving.db"),
        },
        "rows": rows,
        "db": result,
        "seconds": round(time.monotonic() - started, 2),
    }
    io.write_json_atomic(io.manifest_path(args.data_root, "publish", version), manifest)
    log.info("published %s: %s", version, rows)
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "list":
        print(json.dumps(store_for(args).versions(), indent=2))
        return c.EXIT_OK
    if args.command == "rollback":
        if not args.version:
            raise ConfigError("rollback needs --version (see `list`)")
        store_for(args).rollback(args.version)
        log.info("serving version %s again", args.version)
        return c.EXIT_OK
    publish(session_for(args, "publish"), args)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
