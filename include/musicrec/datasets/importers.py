"""``musicrec-import FORMAT FILE --data-root DIR``: public listening datasets into the product.

Count datasets (``lastfm360k``, ``hetrec2k``, ``audioscrobbler``) are aggregates, not event
logs: they become an **interactions snapshot**, the same table, id dictionaries and item
names that prepare writes (``lake/interactions/artist/as_of=D/split=train|holdout``,
``lake/dictionaries/``, ``lake/item_names/artist``), so ``train``, ``evaluate`` and
``publish`` run on them unchanged. Counts carry no time: the holdout is a seeded-hash share of
each user's artists (``--holdout-fraction``); the rating comes from the play count by
prepare's schemes, and prepare's minimum support applies. Duplicate (user, artist) rows are
**summed** (Last.fm 360K lists some artists twice under one MBID) and counted in the summary.

Timestamped scrobbles (``lastfm1k``) keep the event path: they are written into the landing
folder (``dt=/hour=``, gzipped JSON lines) for the daily DAG. ``--events`` does the same for
a count dataset, each pair's plays capped at ``--max-plays-per-pair`` and spread over
``--days`` from ``--start``.

Everything runs in Spark (an embedded session, bounded memory whatever the file size). Every
line of the file is read once into a staging table with its outcome; rejected lines land in
``_import_rejects/<file>/`` with their reason, and rows read = imported + rejected (+ the
header HetRec has) in the summary and the manifest (``manifests/import/``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from musicrec import config
from musicrec import constants as c
from musicrec.config import ImportConfig
from musicrec.exceptions import ConfigError, DataRejectedError

log = logging.getLogger("musicrec.import")
STREAM_MS = 180_000  # counts carry no play length: an imported play is a full stream
STAGING = "_import_staging"
REJECTS = "_import_rejects"
LEVEL = "artist"  # what count datasets hold


def parse_args(argv: Sequence[str] | None) -> tuple[ImportConfig, argparse.Namespace]:
    from musicrec.datasets.sources import COUNT_FORMATS, FORMATS

    p = argparse.ArgumentParser(
        prog="musicrec-import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=FORMATS)
    p.add_argument("source", type=Path, help="the dataset's file, as downloaded")
    p.add_argument("--data-root", type=Path, required=True, help="root of lake/, landing/ ...")
    p.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        help="date the snapshot is filed under (default: today, UTC)",
    )
    p.add_argument(
        "--events",
        action="store_true",
        help="count formats: write capped plays into the landing folder instead of a snapshot",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"landing folder for events (default <data root>/{c.LANDING_EVENTS})",
    )
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2026, 1, 1),
        help="--events: first day the plays are spread over",
    )
    p.add_argument("--master", default=None, help="Spark master (default: embedded)")
    config.add_options(p, ImportConfig)
    args = p.parse_args(argv)
    if not args.source.is_file():
        p.error(f"no such file: {args.source}")
    if args.events and args.format not in COUNT_FORMATS:
        p.error("--events is for count formats; lastfm1k always writes events")
    args.as_of = args.as_of or datetime.now(UTC).date()
    args.out = args.out or args.data_root / c.LANDING_EVENTS
    return config.from_options(ImportConfig, args), args


class Phases:
    """Seconds per phase, logged as each ends and kept in the manifest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._last, 1)
        self._last = now
        log.info("%s: %.1f s", name, self.seconds[name])


# -- staging: one pass over the file ----------------------------------------------------------
def stage(spark: Any, parsed: Any, folder: Path) -> Any:
    """Write every line's outcome once (parsed columns, or the line and its reason), then read
    it back: rows, rejects and counts all come from this table, never from the text again."""
    from pyspark.sql import functions as F

    from musicrec.datasets.sources import LINE, REASON

    frame = parsed.tagged.withColumn(
        LINE,
        F.when(F.col(REASON).isNotNull(), F.col(LINE)),  # keep the text of rejects only
    )
    return write_staged(spark, frame, folder)


def write_staged(spark: Any, frame: Any, folder: Path) -> Any:
    """A frame written to the import's private staging and read back: later steps scan its
    columns instead of recomputing it. lz4: read back once or twice, then deleted."""
    shutil.rmtree(folder, ignore_errors=True)
    frame.write.option("compression", "lz4").parquet(str(folder))
    return spark.read.parquet(str(folder))


def write_rejects(staged: Any, target: Path) -> dict[str, int]:
    """Rejected lines with their reason and position, one CSV; returns the count per reason."""
    from pyspark.sql import functions as F

    from musicrec.datasets.sources import LINE, LINE_NO, REASON

    rejects = staged.where(F.col(REASON).isNotNull())
    by_reason = {
        r[REASON]: int(r["n"])
        for r in rejects.groupBy(REASON).count().withColumnRenamed("count", "n").collect()
    }
    shutil.rmtree(target, ignore_errors=True)
    if by_reason:
        rejects.select(LINE_NO, REASON, LINE).orderBy(LINE_NO).coalesce(1).write.option(
            "header", True
        ).option("sep", "\t").csv(str(target))
    return dict(sorted(by_reason.items()))


def line_counts(staged: Any, by_reason: dict[str, int]) -> dict[str, int]:
    from pyspark.sql import functions as F

    from musicrec.datasets.sources import REASON

    row = staged.agg(
        F.count(F.lit(1)).alias("read"),
        F.sum(F.col("_header").cast("int")).alias("header"),
        F.sum(F.when(F.col(REASON).isNull() & ~F.col("_header"), 1).otherwise(0)).alias("ok"),
    ).first()
    counts = {
        "rows_read": int(row["read"] or 0),
        "header_lines": int(row["header"] or 0),
        "imported_rows": int(row["ok"] or 0),
        "rejected_rows": sum(by_reason.values()),
    }
    accounted = counts["header_lines"] + counts["imported_rows"] + counts["rejected_rows"]
    if accounted != counts["rows_read"]:  # every line has exactly one outcome
        raise AssertionError(f"lines unaccounted for: {counts}")
    return counts


def require_rows(counts: dict[str, int], source: Path, rejects: Path) -> None:
    if counts["rows_read"] == 0:
        raise DataRejectedError(f"{source} is empty: nothing to import")
    if counts["imported_rows"] == 0:
        raise DataRejectedError(
            f"every one of the {counts['rows_read']} lines of {source} was rejected: see "
            f"{rejects} (is it the right format?)"
        )


# -- count datasets -> interactions snapshot ----------------------------------------------------
def holdout_split(pairs: Any, fraction: float) -> Any:
    """``pairs`` (with ids and ``_h``, a seeded hash of the user and artist names) with
    ``_held``: each user's artists in hash order, the first floor(n * fraction) held out (a
    user with one artist keeps it in train). The same seed, the same split."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from musicrec.model.prepare import ITEM_IDX, USER_IDX

    by_user = Window.partitionBy(USER_IDX)
    ranked = pairs.withColumn("_r", F.row_number().over(by_user.orderBy("_h", ITEM_IDX)))
    ranked = ranked.withColumn("_n", F.count(F.lit(1)).over(by_user))
    held = F.col("_r") <= F.floor(F.col("_n") * F.lit(fraction))
    return ranked.withColumn("_held", held).drop("_r", "_n", "_h")


def write_names(spark: Any, pairs: Any, target: Path) -> int:
    from pyspark.sql import functions as F

    from musicrec.lake import swap
    from musicrec.model.prepare import ITEM_ID

    swap.recover(target)
    named = (
        pairs.where(F.col("item_name").isNotNull())
        .groupBy(ITEM_ID)
        # The name of the most played row of the artist (ties: the greatest name).
        .agg(F.max(F.struct("streams", "item_name")).getField("item_name").alias("item_name"))
    )
    staged = swap.staging(target)
    named.coalesce(1).write.parquet(str(staged))
    swap.swap_in(staged, target)
    return int(spark.read.parquet(str(target)).count())


def snapshot(spark: Any, cfg: ImportConfig, args: argparse.Namespace) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from musicrec.datasets import sources
    from musicrec.lake import io, swap
    from musicrec.model.prepare import (
        INTERACTION_COLUMNS,
        ITEM_ID,
        ITEM_IDX,
        STREAMS,
        USER_IDX,
        min_support,
        with_rating,
    )
    from musicrec.steps import prepare

    started = time.monotonic()
    phases = Phases()
    root: Path = args.data_root
    staging = root / STAGING / args.source.name
    rejects_at = root / REJECTS / args.source.name
    staged = stage(spark, sources.counts(spark, args.format, args.source), staging / "lines")
    phases.done("parse")
    by_reason = write_rejects(staged, rejects_at)
    counts = line_counts(staged, by_reason)
    require_rows(counts, args.source, rejects_at)
    phases.done("rejects and counts")
    rows = sources.count_rows(spark, args.format, args.source, staged)
    pairs = rows.groupBy(c.USER_ID, ITEM_ID).agg(
        F.sum("plays").alias(STREAMS),
        F.count(F.lit(1)).alias("_rows"),
        F.max(F.struct("plays", "item_name")).getField("item_name").alias("item_name"),
    )
    pairs = write_staged(spark, pairs, staging / "pairs")
    phases.done("pairs")
    totals = pairs.agg(
        F.count(F.lit(1)).alias("pairs"),
        F.sum("_rows").alias("rows"),
        F.countDistinct(c.USER_ID).alias("users"),
        F.countDistinct(ITEM_ID).alias("items"),
        F.sum(STREAMS).alias("plays"),
    ).first()
    prep = cfg.prepare()
    dictionaries = prepare.dictionaries_of(root, LEVEL)
    recovered = [line for path in dictionaries.values() for line in swap.recover(path)]
    # Ids first, so every later shuffle and sort is on integers. The dictionaries get every
    # user and artist of the file, also those minimum support leaves out: ids are appended,
    # never renumbered, and an unused one costs nothing.
    users = prepare.update_dictionary(spark, dictionaries["users"], pairs, c.USER_ID, USER_IDX)
    items = prepare.update_dictionary(spark, dictionaries["items"], pairs, ITEM_ID, ITEM_IDX)
    order = F.xxhash64(F.lit(cfg.seed), F.col(c.USER_ID), F.col(ITEM_ID))  # of the names
    keyed = (
        pairs.select(c.USER_ID, ITEM_ID, STREAMS, order.alias("_h"))
        .join(F.broadcast(users), c.USER_ID)
        .join(F.broadcast(items), ITEM_ID)
    )
    split = write_staged(spark, holdout_split(keyed, cfg.holdout_fraction), staging / "split")
    phases.done("dictionaries and holdout")
    held = F.col("_held")
    train = write_staged(
        spark, min_support(split.where(~held), prep, USER_IDX, ITEM_IDX), staging / "train"
    )
    holdout = split.where(held).join(train.select(USER_IDX).distinct(), USER_IDX, "left_semi")
    out = (
        with_rating(train, prep)
        .select(*INTERACTION_COLUMNS)
        .withColumn("split", F.lit(c.SPLIT_TRAIN))
        .unionByName(
            with_rating(holdout, prep)
            .select(*INTERACTION_COLUMNS)
            .withColumn("split", F.lit(c.SPLIT_HOLDOUT))
        )
        .withColumn("as_of", F.lit(args.as_of.isoformat()))
    )
    target = prepare.interactions_path(root, LEVEL)
    files = max(
        1, int(totals["pairs"]) // 2_000_000
    )  # files of about 2M pairs, written in parallel
    io.write_partitions(
        out.repartition(2 * files, "split", F.col(USER_IDX) % files), target, ["as_of", "split"]
    )
    stats = prepare.split_stats(spark, target, args.as_of)
    phases.done("minimum support and interactions")
    names = write_names(spark, pairs, root / c.ITEM_NAMES / LEVEL)
    phases.done("names")
    shutil.rmtree(staging, ignore_errors=True)
    return {
        "step": "import",
        "key": f"{args.format}_{args.as_of.isoformat()}",
        "format": args.format,
        "kind": "snapshot",
        "as_of": args.as_of.isoformat(),
        "config": vars(cfg),
        "inputs": {"source": str(args.source)},
        "outputs": {
            "interactions": str(target),
            "partition": f"as_of={args.as_of.isoformat()}",
            "users_dictionary": str(dictionaries["users"]),
            "items_dictionary": str(dictionaries["items"]),
            "item_names": str(root / c.ITEM_NAMES / LEVEL),
            "rejects": str(rejects_at) if by_reason else None,
            "recovered": recovered,
        },
        "counts": {
            **counts,
            "rejected_by_reason": by_reason,
            "duplicate_rows_summed": int(totals["rows"] - totals["pairs"]),
            "pairs": int(totals["pairs"]),
            "users": int(totals["users"]),
            "items": int(totals["items"]),
            "plays": int(totals["plays"]),
            "named_items": names,
            "train": stats.get("train"),
            "holdout": stats.get("holdout"),
        },
        "phase_seconds": phases.seconds,
        "seconds": round(time.monotonic() - started, 2),
    }


# -- events into the landing folder -------------------------------------------------------------
def expanded_plays(rows: Any, cfg: ImportConfig, start: date) -> Any:
    """Count rows as events: min(plays, cap) plays per pair, play k at a deterministic time in
    [start, start + days)."""
    from pyspark.sql import functions as F

    from musicrec.model.prepare import ITEM_ID

    pairs = rows.groupBy(c.USER_ID, ITEM_ID).agg(
        F.sum("plays").alias("plays"),
        F.max(F.struct("plays", "item_name")).getField("item_name").alias("item_name"),
    )
    k = F.explode(F.sequence(F.lit(0), F.least(F.col("plays"), F.lit(cfg.max_plays_per_pair)) - 1))
    plays = pairs.select("*", k.alias("_k"))
    seed = F.xxhash64(F.lit(cfg.seed), F.col(c.USER_ID), F.col(ITEM_ID), F.col("_k"))
    span_s = cfg.days * 86_400
    start_s = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    offset = F.pmod(seed, F.lit(span_s))
    return plays.select(
        F.sha2(F.concat_ws("\x1f", c.USER_ID, ITEM_ID, F.col("_k").cast("string")), 256)
        .substr(1, 24)
        .alias(c.EVENT_ID),
        F.col(c.USER_ID),
        F.concat(F.lit("artist:"), F.col(ITEM_ID)).alias(c.TRACK_ID),
        F.col(ITEM_ID).alias(c.ARTIST_ID),
        F.col("item_name").alias(c.ARTIST_NAME),
        F.lit(None).cast("string").alias(c.TRACK_NAME),
        F.timestamp_seconds(F.lit(start_s) + offset).alias("_ts"),
    )


def scrobble_events(rows: Any) -> Any:
    from pyspark.sql import functions as F

    return rows.select(
        F.sha2(F.concat_ws("\x1f", "user_id", F.col("ts").cast("string"), "track_id"), 256)
        .substr(1, 24)
        .alias(c.EVENT_ID),
        F.col("user_id").alias(c.USER_ID),
        F.col("track_id").alias(c.TRACK_ID),
        F.col("artist_id").alias(c.ARTIST_ID),
        F.col("artist_name").alias(c.ARTIST_NAME),
        F.col("track_name").alias(c.TRACK_NAME),
        F.col("ts").alias("_ts"),
    )


def to_landing(spark: Any, events: Any, out: Path, staging: Path, name: str) -> dict[str, int]:
    """Events as gzipped JSON lines in ``dt=/hour=`` folders, one file per hour named after the
    source (re-importing replaces it); every hour of a day with events gets a folder (empty
    hours an empty file), so ingest sees complete days. Returns events per day."""
    from pyspark.sql import functions as F

    from musicrec.generator.writer import write_hour_file

    line = F.to_json(
        F.struct(
            F.col(c.EVENT_ID),
            F.col(c.USER_ID),
            F.col(c.TRACK_ID),
            F.col(c.ARTIST_ID),
            F.col(c.ARTIST_NAME),
            F.col(c.TRACK_NAME),
            F.date_format("_ts", "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias(c.EVENT_TS),
            F.lit(STREAM_MS).alias(c.MS_PLAYED),
            F.lit(None).cast("long").alias("track_duration_ms"),
            F.lit("completed").alias("reason_end"),
            F.lit("unknown").alias("platform"),
        ),
        {"ignoreNullFields": "false"},
    )
    framed = events.select(
        F.date_format("_ts", "yyyy-MM-dd").alias("dt"),
        F.date_format("_ts", "HH").alias("hour"),
        "_ts",
        c.EVENT_ID,
        line.alias("value"),
    )
    shutil.rmtree(staging, ignore_errors=True)
    (
        framed.repartition("dt", "hour")  # one task, so one file, per hour
        .sortWithinPartitions("dt", "hour", "_ts", c.EVENT_ID)
        .select("dt", "hour", "value")
        .write.partitionBy("dt", "hour")
        .option("compression", "gzip")
        .text(str(staging))
    )
    # Counted from the events' (staged, columnar) source, not by decompressing what was written.
    counted = events.groupBy(F.date_format("_ts", "yyyy-MM-dd").alias("dt")).count().collect()
    per_day = {str(row["dt"]): int(row["count"]) for row in counted}
    for day_dir in sorted(staging.glob("dt=*")):
        day = day_dir.name[3:]
        for hour in range(24):
            folder = out / f"dt={day}" / f"hour={hour:02d}"
            parts = sorted((day_dir / f"hour={hour:02d}").glob("part-*"))
            if not parts:
                if not folder.is_dir():
                    write_hour_file(out, day, hour, [])
                continue
            folder.mkdir(parents=True, exist_ok=True)
            for i, part in enumerate(parts):
                suffix = f"-{i}" if len(parts) > 1 else ""
                part.replace(folder / f"import-{name}{suffix}.jsonl.gz")  # whole files only
    shutil.rmtree(staging, ignore_errors=True)
    return dict(sorted(per_day.items()))


def events(spark: Any, cfg: ImportConfig, args: argparse.Namespace) -> dict[str, Any]:
    from musicrec.datasets import sources

    started = time.monotonic()
    out: Path = args.out
    staging = out / STAGING / args.source.name
    rejects_at = out / REJECTS / args.source.name
    if args.format in sources.EVENT_FORMATS:
        parsed = sources.scrobbles(spark, args.source)
    else:
        parsed = sources.counts(spark, args.format, args.source)
    staged = stage(spark, parsed, staging / "lines")
    by_reason = write_rejects(staged, rejects_at)
    counts = line_counts(staged, by_reason)
    require_rows(counts, args.source, rejects_at)
    if args.format in sources.EVENT_FORMATS:
        frame = scrobble_events(sources.scrobble_rows(staged))
        capped = None
    else:
        rows = sources.count_rows(spark, args.format, args.source, staged)
        frame = expanded_plays(rows, cfg, args.start)
        capped = cfg.max_plays_per_pair
    per_day = to_landing(spark, frame, out, staging / "landing", args.source.stem)
    shutil.rmtree(staging, ignore_errors=True)
    return {
        "step": "import",
        "key": f"{args.format}_events_{args.source.stem}",
        "format": args.format,
        "kind": "events",
        "config": vars(cfg),
        "inputs": {"source": str(args.source)},
        "outputs": {
            "landing": str(out),
            "rejects": str(rejects_at) if by_reason else None,
        },
        "counts": {
            **counts,
            "rejected_by_reason": by_reason,
            "events": sum(per_day.values()),
            "max_plays_per_pair": capped,
            "days": len(per_day),
            "first_day": min(per_day) if per_day else None,
            "last_day": max(per_day) if per_day else None,
        },
        "seconds": round(time.monotonic() - started, 2),
    }


def next_steps(manifest: dict[str, Any], root: Path) -> str:
    if manifest["kind"] == "events":
        return f"then: spark_jobs/ingest.py --data-root {root} --start ... --end ... (or the DAG)"
    as_of, table = manifest["as_of"], manifest["outputs"]["interactions"]
    model = root / c.MODELS / "runs" / f"{LEVEL}-{as_of}"
    split = f"--interactions {table} --as-of {as_of}"
    return (
        "then:\n"
        f"  python spark_jobs/train.py --data-root {root} {split} --model-id {model.name} "
        "--search\n"
        f"  python spark_jobs/evaluate.py --data-root {root} {split} --model {model}\n"
        f"  python spark_jobs/publish.py --data-root {root} {split} --model {model}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from musicrec.runtime.jobs import run

    return run(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    from musicrec.datasets import sources
    from musicrec.lake import io
    from musicrec.runtime import spark_conf
    from musicrec.runtime.session import build_session

    try:
        cfg, args = parse_args(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise ConfigError("bad arguments (see above)") from None
        return c.EXIT_OK
    from pyspark.sql import SparkSession

    outer = SparkSession.getActiveSession()  # a notebook's or a test's: theirs to stop
    spark = build_session(
        "musicrec-import",
        checkpoint_dir=args.data_root / c.CHECKPOINTS / "import",
        master=args.master,
        conf=spark_conf.preset("import"),
    )
    try:
        if args.format in sources.COUNT_FORMATS and not args.events:
            manifest = snapshot(spark, cfg, args)
        else:
            manifest = events(spark, cfg, args)
    finally:
        if outer is None:
            spark.stop()
    io.write_manifest(args.data_root, manifest)
    n = manifest["counts"]
    log.info(
        "import %s: %d rows read, %d imported, %d rejected %s, in %.0f s; manifest %s",
        args.source.name,
        n["rows_read"],
        n["imported_rows"],
        n["rejected_rows"],
        n["rejected_by_reason"] or "",
        manifest["seconds"],
        io.manifest_path(args.data_root, "import", manifest["key"]),
    )
    log.info("%s", next_steps(manifest, args.data_root))
    return c.EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
