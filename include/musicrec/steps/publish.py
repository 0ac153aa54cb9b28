"""The publish step: a model that passed the gate becomes what users are served.

Writes versioned Parquet under ``serving/versions/<version>/`` and loads it into the serving
store (PostgreSQL with ``--database-url``, else SQLite under the data root), each kind as soon
as Spark has written it; the Parquet is swapped in and the views switched in one transaction.
The store's registry is the one record of what is serving; ``list`` shows it and
``rollback --version V`` switches back. Retention (``serving.retention``) follows each publish.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import config
from musicrec import constants as c
from musicrec.config import PublishConfig
from musicrec.exceptions import DataRejectedError, MissingInputError
from musicrec.lake import io, swap
from musicrec.model import factors, scoring
from musicrec.model.prepare import ITEM_IDX
from musicrec.runtime.jobs import base_parser
from musicrec.serving import outputs, retention
from musicrec.serving.store import (
    SQLITE_FILE,
    Store,
    add_store_options,
    check_version,
    store_for,
)

log = logging.getLogger("musicrec.publish")
NAME = "publish"
COMMANDS = ("publish", "list", "rollback")


def parse_args(argv: Sequence[str] | None) -> tuple[PublishConfig, argparse.Namespace]:
    argv = list(argv) if argv is not None else sys.argv[1:]
    p = base_parser(__doc__)
    add_store_options(p)
    if argv and argv[0] in COMMANDS[1:]:
        p.add_argument("command", choices=COMMANDS[1:])
        p.add_argument("--version", default=None, help="rollback: the version to serve again")
        args = p.parse_args(argv)
        return PublishConfig(), args
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--interactions", type=Path, required=True)
    p.add_argument("--as-of", required=True)
    p.add_argument("--version", default=None, help="default: the model id")
    p.add_argument("--accepted", type=Path, default=None, help="events, for display names")
    p.add_argument(
        "--skip-gate-check",
        action="store_true",
        help="publish without a passed evaluation (rollouts by hand only)",
    )
    config.add_options(p, PublishConfig)
    args = p.parse_args(argv)
    args.command = "publish"
    args.accepted = args.accepted or args.data_root / c.ACCEPTED_EVENTS
    return config.from_options(PublishConfig, args), args


def store_of(args: argparse.Namespace) -> Store:
    return store_for(args.data_root, args.database_url, args.reader_role)


def versions_dir(root: Path) -> Path:
    return root / c.SERVING / "versions"


def require_gate_passed(root: Path, model_id: str) -> None:
    path = io.manifest_path(root, "evaluate", model_id)
    if not path.exists():
        raise DataRejectedError(f"model {model_id} was never evaluated: refusing to publish")
    gate = io.read_json(path)["gate"]
    if not gate["passed"]:
        raise DataRejectedError(
            f"model {model_id} failed the quality gate: " + "; ".join(gate["reasons"])
        )


def window_events(spark: SparkSession, args: argparse.Namespace, level: str) -> DataFrame | None:
    """The accepted events item names are taken from: the days of the model's window, as its
    prepare manifest records them (every item of the model was streamed there; a backfill of
    an older date does not take names from later days). All days without that manifest."""
    if not io.table_exists(args.accepted):
        return None
    events = spark.read.parquet(str(args.accepted))
    prepared = io.manifest_path(args.data_root, "prepare", f"{level}_{args.as_of}")
    if not prepared.exists():
        log.info("no prepare manifest for %s: item names from every day of events", args.as_of)
        return events
    first, last = io.read_json(prepared)["inputs"]["event_dates"]
    return events.where(F.col(c.EVENT_DATE).between(first, last))


def build_outputs(
    spark: SparkSession, cfg: PublishConfig, args: argparse.Namespace, model: factors.FactorModel
) -> dict[str, DataFrame]:
    level = args.interactions.name
    seen_pairs = spark.read.parquet(str(args.interactions)).where(F.col("as_of") == args.as_of)
    if seen_pairs.limit(1).count() == 0:
        raise MissingInputError(f"no interactions for as_of={args.as_of}")
    items, known = scoring.item_matrix(model.items)
    dictionary = spark.read.parquet(str(args.data_root / c.DICTIONARIES / f"items_{level}"))
    streams = seen_pairs.groupBy(ITEM_IDX).agg(F.sum("streams").alias("streams"))
    events = window_events(spark, args, level)
    names_path = args.data_root / c.ITEM_NAMES / level
    names = spark.read.parquet(str(names_path)) if names_path.is_dir() else None
    item_table = outputs.item_names(events, dictionary.join(streams, ITEM_IDX), level, names)
    users_dict = spark.read.parquet(str(args.data_root / c.DICTIONARIES / "users"))
    return {
        "recommendations": outputs.recommendations(
            spark, model.users, seen_pairs, items, known, users_dict, cfg.top_n
        ),
        "related_items": outputs.related_items(spark, items, known, cfg.related_n),
        "items": item_table.select(ITEM_IDX, "item_id", "item_name", F.col("streams").cast("long")),
    }


def write_and_load(
    spark: SparkSession,
    frames: dict[str, DataFrame],
    target: Path,
    load: Callable[[Callable[[str], Path], Callable[[], None]], dict],
) -> dict:
    """Write a version's Parquet aside kind by kind while ``load`` (the store's publish, on a
    thread of its own) loads each kind as soon as it is written: the database load is one
    thread, Spark's writes use every core, and the two overlap. The Parquet is swapped in
    (``lake.swap``) inside the store's transaction, before its views switch. Returns the
    store's result (its ``rows``: what the views serve, per kind)."""
    staged = swap.staging(target)
    written: dict[str, Future[Path]] = {kind: Future() for kind in frames}

    def load_as_written() -> dict:
        # The store's transaction (SQLite: the write lock) opens when there is a kind to load.
        written[next(iter(frames))].result()
        return load(lambda kind: written[kind].result(), lambda: swap.swap_in(staged, target))

    with ThreadPoolExecutor(1, thread_name_prefix="serving-load") as pool:
        loading = pool.submit(load_as_written)
        try:
            for kind, frame in frames.items():
                if loading.done():  # the load failed: stop writing, its error is raised below
                    break
                frame.write.parquet(str(staged / kind))
                written[kind].set_result(staged / kind)
        except BaseException as error:
            for waiting in written.values():
                if not waiting.done():
                    waiting.set_exception(error)  # the load rolls back
            raise
        return loading.result()


def run(spark: SparkSession, cfg: PublishConfig, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    model_id = args.model.name
    version = check_version(args.version or model_id)
    target = versions_dir(args.data_root) / version
    recovered = swap.recover(target)
    if not args.skip_gate_check:
        require_gate_passed(args.data_root, model_id)
    store = store_of(args)
    serving = store.serving()
    manifest: dict[str, Any] = {
        "step": NAME,
        "key": version,
        "run_id": args.run_id,
        "version": version,
        "model": str(args.model),
        "as_of": args.as_of,
        "recovered": recovered,
    }
    if serving is not None and (serving.get("as_of") or "") > args.as_of:
        # A backfill re-running an older date must not send serving back in time.
        log.warning(
            "%s (as of %s) is serving, newer than %s: nothing published",
            serving["version"],
            serving["as_of"],
            args.as_of,
        )
        return {**manifest, "switched": False, "serving": serving, "seconds": 0.0}
    model = factors.load(spark, args.model)
    result = write_and_load(
        spark,
        build_outputs(spark, cfg, args, model),
        target,
        lambda source, before_switch: store.publish(
            version,
            str(args.model),
            target,
            keep=cfg.keep,
            as_of=args.as_of,
            source=source,
            before_switch=before_switch,
        ),
    )
    removed = retention.apply(store, versions_dir(args.data_root), args.model.parent, cfg.keep)
    return {
        **manifest,
        "switched": True,
        "outputs": {
            "parquet": str(target),
            "database": "postgresql" if args.database_url else str(args.data_root / SQLITE_FILE),
        },
        "rows": result["rows"],
        "db": result,
        "retention_removed": removed,
        "seconds": round(time.monotonic() - started, 2),
    }
