"""Prepare -> train -> evaluate -> publish on ten generated days, each step a CLI run."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from musicrec import constants as c
from musicrec.config import PrepareConfig
from musicrec.model import factors
from musicrec.model.prepare import min_support, stream_counts
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from tests.conftest import make_data_root
from tests.jobs import run_job
from tests.lake.test_swap import crash_on_second_rename

pytestmark = pytest.mark.unit
AS_OF = "2026-02-10"


@pytest.fixture(scope="module")
def lake(tmp_path_factory, clean_landing) -> Path:
    root = make_data_root(tmp_path_factory.mktemp("model_jobs"), clean_landing)
    for i in range(10):
        day = date(2026, 2, 1) + timedelta(days=i)
        args = [
            "--data-root",
            str(root),
            "--start",
            day.isoformat(),
            "--end",
            (day + timedelta(days=1)).isoformat(),
        ]
        assert run_job("ingest", args) == 0
    return root


def steps(root: Path, as_of: str = AS_OF, window: int = 10) -> dict[str, list[str]]:
    base = ["--data-root", str(root)]
    table = str(root / c.INTERACTIONS / "artist")
    model = str(root / c.MODELS / "runs" / f"artist-{as_of}")
    common = [*base, "--interactions", table, "--as-of", as_of]
    return {
        "prepare": [*base, "--date", as_of, "--window-days", str(window), "--min-user-items", "2"],
        "train": [
            *common,
            "--rank",
            "16",
            "--max-iter",
            "8",
            "--alpha",
            "10",
            "--reg-param",
            "0.05",
        ],
        "evaluate": [*common, "--model", model],
        "publish": [*common, "--model", model, "--top-n", "20", "--related-n", "5"],
    }


@pytest.fixture(scope="module")
def pipeline(lake) -> Path:
    s = steps(lake)
    assert run_job("prepare", s["prepare"]) == 0
    assert run_job("train", s["train"]) == 0
    assert run_job("evaluate", s["evaluate"]) == 0
    assert run_job("publish", s["publish"]) == 0
    return lake


def test_prepare_twice_gives_identical_output(spark, pipeline):
    table = pipeline / c.INTERACTIONS / "artist"
    before = spark.read.parquet(str(table)).collect()
    aggregates = aggregate_files(pipeline)
    users_dict = spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")).collect()
    assert run_job("prepare", steps(pipeline)["prepare"]) == 0
    assertDataFrameEqual(spark.read.parquet(str(table)), before)
    assertDataFrameEqual(spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")), users_dict)
    manifest = prepared(pipeline)
    assert (
        manifest["counts"]["train"]["pairs"] > 1000 and manifest["counts"]["holdout"]["pairs"] > 0
    )
    # Nothing changed: the second run summed the first's daily counts, rebuilt none of them.
    assert manifest["daily_counts"] == {"rebuilt": [], "reused": DAYS}
    assert aggregate_files(pipeline) == aggregates


def test_ids_stay_stable_when_the_window_moves(spark, pipeline):
    users = {
        r.user_id: r.user_idx
        for r in spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")).collect()
    }
    args = steps(pipeline)["prepare"]
    args[args.index(AS_OF)] = "2026-02-05"
    args[args.index("10")] = "4"
    assert run_job("prepare", args) == 0
    after = {
        r.user_id: r.user_idx
        for r in spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")).collect()
    }
    assert {u: after[u] for u in users} == users


def test_model_metadata_and_quality(pipeline):
    meta = json.loads(
        (pipeline / c.MODELS / "runs" / f"artist-{AS_OF}" / "metadata.json").read_text()
    )
    assert meta["params"]["rank"] == 16 and meta["spark_version"]
    assert meta["timings"]["fit_seconds"] > 0 and meta["data"]["pairs"] > 0
    metrics = json.loads(
        (pipeline / c.REPORTS / "evaluation" / f"artist-{AS_OF}" / "metrics.json").read_text()
    )
    als, pop = metrics["results"]["all"]["als"], metrics["results"]["all"]["popularity"]
    assert als["ndcg@10"] > 1.5 * pop["ndcg@10"] and metrics["gate"]["passed"]
    assert 0 <= als["expected_percentile_rank"] < pop["expected_percentile_rank"] < 0.5
    html = (pipeline / c.REPORTS / "evaluation" / f"artist-{AS_OF}" / "report.html").read_text()
    assert "data:image/png;base64" in html and "PASSED" in html


def test_search_picks_the_best_validation_trial_and_records_it(pipeline):
    args = [*steps(pipeline)["train"], "--model-id", "searched", "--search"]
    args += ["--search-ranks", "4,16", "--search-reg-params", "0.05", "--search-alphas", "10"]
    assert run_job("train", args) == 0
    meta = json.loads((pipeline / c.MODELS / "runs" / "searched" / "metadata.json").read_text())
    trials = meta["search"]
    assert [t["rank"] for t in trials] == [4, 16]
    assert all(0 < t["ndcg@10"] <= 1 and t["fit_seconds"] > 0 for t in trials)
    best = max(trials, key=lambda t: t["ndcg@10"])
    assert meta["params"]["rank"] == best["rank"] and meta["params"]["alpha"] == 10
    # The validation split was written out before fitting (deterministic ALS input).
    work = pipeline / c.MODELS / "search" / "searched"
    assert (work / "fit").is_dir() and (work / "validation").is_dir()


def test_published_recommendations_exclude_streamed_items(spark, pipeline):
    db = sqlite3.connect(pipeline / c.SERVING / "serving.db")
    recs = db.execute("SELECT user_id, item_id, rank, item_name FROM recommendations").fetchall()
    users = {r[0] for r in recs}
    assert len(recs) == 20 * len(users) and all(r[3] for r in recs)
    seen = (
        spark.read.parquet(str(pipeline / c.INTERACTIONS / "artist"))
        .where(F.col("as_of") == AS_OF)
        .select("user_id", "item_id")
        .collect()
    )
    assert not {(r[0], r[1]) for r in recs} & {(r.user_id, r.item_id) for r in seen}
    related = db.execute("SELECT item_id, related_item_id FROM related_items").fetchall()
    assert related and all(a != b for a, b in related)


def _randomize(spark, model_dir: Path) -> None:
    """Replace a model's factors by seeded uniform noise: a model that learned nothing."""
    rng = np.random.default_rng(5)
    for part in (factors.USERS, factors.ITEMS):
        path = model_dir / part
        rows = sorted(spark.read.parquet(str(path)).collect(), key=lambda r: r.id)
        noise = rng.uniform(-0.5, 0.5, (len(rows), len(rows[0].features)))
        shutil.rmtree(path)
        spark.createDataFrame(
            [(r.id, noise[i].tolist()) for i, r in enumerate(rows)], factors.SCHEMA
        ).write.parquet(str(path))


def test_gate_blocks_a_random_model_and_nothing_is_published(spark, pipeline):
    good = pipeline / c.MODELS / "runs" / f"artist-{AS_OF}"
    bad = good.with_name("artist-random")
    shutil.copytree(good, bad)
    _randomize(spark, bad)
    s = steps(pipeline)
    before = (
        sqlite3.connect(pipeline / c.SERVING / "serving.db")
        .execute("SELECT version FROM serving_versions WHERE is_current = 1")
        .fetchall()
    )
    eval_args = [*s["evaluate"][:-1], str(bad)]
    assert run_job("evaluate", eval_args) == c.EXIT_DATA_REJECTED
    decision = json.loads((pipeline / c.MANIFESTS / "evaluate" / "artist-random.json").read_text())
    assert not decision["gate"]["passed"] and "below" in " ".join(decision["gate"]["reasons"])
    assert (
        run_job("publish", [*s["publish"][:-5], str(bad), "--top-n", "20"]) == c.EXIT_DATA_REJECTED
    )
    after = (
        sqlite3.connect(pipeline / c.SERVING / "serving.db")
        .execute("SELECT version FROM serving_versions WHERE is_current = 1")
        .fetchall()
    )
    assert after == before == [(f"artist-{AS_OF}",)]


def test_an_explicit_holdout_is_read_by_its_columns_or_refused_by_what_it_lacks(
    spark, pipeline, tmp_path
):
    """``--holdout``: a table of the interactions schema gives the split's rows (only the
    columns scoring reads); a table without streams, or none, is refused by name."""
    import argparse

    from musicrec.exceptions import DataRejectedError, MissingInputError
    from musicrec.lake import io
    from musicrec.steps import evaluate

    table = pipeline / c.INTERACTIONS / "artist"

    def holdout(path):
        args = argparse.Namespace(holdout=path, interactions=table, as_of=AS_OF)
        return evaluate.read_holdout(spark, args)

    explicit = tmp_path / "holdout"
    io.read_split(spark, table, AS_OF, c.SPLIT_HOLDOUT).write.parquet(str(explicit))
    split = holdout(None)
    assert split.columns == list(evaluate.HOLDOUT_COLUMNS) and split.count() > 0
    assertDataFrameEqual(holdout(explicit), split)
    lacking = tmp_path / "lacking"
    spark.read.parquet(str(explicit)).drop("streams").write.parquet(str(lacking))
    with pytest.raises(DataRejectedError, match="lacks streams"):
        holdout(lacking)
    with pytest.raises(MissingInputError, match="no holdout table"):
        holdout(tmp_path / "nothing")


@pytest.mark.postgres
def test_publish_to_postgres(pipeline, pg_server):
    import psycopg

    url = pg_server.url()
    args = [*steps(pipeline)["publish"], "--database-url", url]
    assert run_job("publish", args) == 0
    with psycopg.connect(url) as conn:
        n_users = conn.execute("SELECT count(DISTINCT user_id) FROM recommendations").fetchone()[0]
    assert n_users > 100


def run_steps(root: Path, as_of: str, window: int, names: tuple[str, ...]) -> None:
    s = steps(root, as_of, window)
    for name in names:
        assert run_job(name, s[name]) == 0, (name, as_of)


def serving(root: Path) -> list[tuple]:
    db = sqlite3.connect(root / c.SERVING / "serving.db")
    return db.execute("SELECT version, as_of FROM serving_versions WHERE is_current = 1").fetchall()


@pytest.fixture
def events_only(tmp_path, lake) -> Path:
    """A data root holding only the ten days of accepted events."""
    root = tmp_path / "data"
    shutil.copytree(lake / c.ACCEPTED_EVENTS, root / c.ACCEPTED_EVENTS)
    return root


def test_after_a_rollback_the_gate_compares_with_the_version_serving_again(events_only):
    """The serving store is the one record of what serves: evaluate's champion after a
    rollback is the version rolled back to, and the next date's publish switches."""
    root = events_only
    every = ("prepare", "train", "evaluate", "publish")
    for day in ("2026-02-08", "2026-02-09"):
        run_steps(root, day, 6, every)
    assert serving(root) == [("artist-2026-02-09", "2026-02-09")]
    base = ["--data-root", str(root)]
    assert run_job("publish", ["rollback", *base, "--version", "artist-2026-02-08"]) == 0
    assert serving(root) == [("artist-2026-02-08", "2026-02-08")]
    run_steps(root, "2026-02-10", 6, ("prepare", "train", "evaluate"))
    evaluated = json.loads((root / c.MANIFESTS / "evaluate" / "artist-2026-02-10.json").read_text())
    assert Path(evaluated["champion"]).name == "artist-2026-02-08"
    assert "published" in evaluated["results"]["all"]
    run_steps(root, "2026-02-10", 6, ("publish",))
    assert serving(root) == [("artist-2026-02-10", "2026-02-10")]
    # A backfill of an older date publishes nothing over the newer version serving.
    run_steps(root, "2026-02-09", 6, ("publish",))
    assert serving(root) == [("artist-2026-02-10", "2026-02-10")]
    manifest = json.loads((root / c.MANIFESTS / "publish" / "artist-2026-02-09.json").read_text())
    assert manifest["switched"] is False
    assert not (root / c.SERVING / "published.json").exists()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_crash_between_renames_loses_neither_model_nor_serving_version(
    pipeline, monkeypatch, tmp_path
):
    s = steps(pipeline)
    model = pipeline / c.MODELS / "runs" / f"artist-{AS_OF}"
    version = pipeline / c.SERVING / "versions" / f"artist-{AS_OF}"
    kept = {"model": folder_bytes(model), "version": folder_bytes(version)}
    crash_on_second_rename(monkeypatch)
    assert run_job("train", s["train"]) == c.EXIT_RETRYABLE
    monkeypatch.undo()
    assert not model.exists() and model.with_name(f".{model.name}.old").is_dir()
    # The retry fails too (its input went missing), but only after putting the model back.
    missing = [*s["train"][: s["train"].index("--as-of") + 1], "2026-03-30"]
    missing += ["--model-id", model.name]
    assert run_job("train", missing) == c.EXIT_RETRYABLE
    assert folder_bytes(model) == kept["model"]
    assert not list(model.parent.glob(f".{model.name}*"))

    crash_on_second_rename(monkeypatch)
    assert run_job("publish", s["publish"]) == c.EXIT_RETRYABLE
    monkeypatch.undo()
    assert not version.exists()
    # A publish refused by the gate check still puts the version back first.
    refused = [*s["publish"], "--version", version.name]
    refused[refused.index("--model") + 1] = str(tmp_path / "never-evaluated")
    assert run_job("publish", refused) == c.EXIT_DATA_REJECTED
    assert folder_bytes(version) == kept["version"]
    assert serving(pipeline) == [(f"artist-{AS_OF}", AS_OF)]


# -- daily stream counts ------------------------------------------------------------------------
def full_scan(spark, root: Path, first: str, last: str):
    """Today's reference: (user_id, item_id, streams) re-aggregated from every raw event."""
    events = spark.read.parquet(str(root / c.ACCEPTED_EVENTS))
    window = events.where(F.col(c.EVENT_DATE).between(F.lit(first), F.lit(last)))
    return stream_counts(window, PrepareConfig())


def aggregate_files(root: Path) -> dict[str, tuple[int, bytes]]:
    table = root / c.DAILY_COUNTS / "artist"
    return {
        str(p.relative_to(table)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in table.glob(f"{c.EVENT_DATE}=*/*.parquet")
    }


DAYS = [f"2026-02-{d:02d}" for d in range(1, 11)]


def prepared(root: Path) -> dict:
    return json.loads((root / c.MANIFESTS / "prepare" / f"artist_{AS_OF}.json").read_text())


def check_equal_to_full_scan(spark, root: Path) -> None:
    written = spark.read.parquet(str(root / c.INTERACTIONS / "artist")).where(
        F.col("as_of") == AS_OF
    )
    keys = [c.USER_ID, "item_id", "streams"]
    train = min_support(full_scan(spark, root, DAYS[0], DAYS[-2]), PrepareConfig())
    assertDataFrameEqual(written.where(F.col("split") == "train").select(keys), train)
    known = train.select(c.USER_ID).distinct()
    holdout = full_scan(spark, root, DAYS[-1], DAYS[-1]).join(known, c.USER_ID)
    assertDataFrameEqual(written.where(F.col("split") == "holdout").select(keys), holdout)
    events = spark.read.parquet(str(root / c.ACCEPTED_EVENTS)).count()
    assert prepared(root)["counts"]["events_in_window"] == events


def test_daily_counts_equal_a_full_scan_and_a_reingest_rebuilds_only_its_day(
    spark, tmp_path, pipeline
):
    check_equal_to_full_scan(spark, pipeline)  # the pipeline's prepare built every day
    root = tmp_path / "data"
    for part in (c.LANDING_EVENTS, c.ACCEPTED_EVENTS, c.DAILY_COUNTS):
        shutil.copytree(pipeline / part, root / part)  # copy2: the same files, sizes, times
    before = aggregate_files(root)
    assert sorted({k.split("/")[0] for k in before}) == [f"{c.EVENT_DATE}={d}" for d in DAYS]

    # Late data corrected: one hour of 2026-02-05 loses 40 lines; that day is re-ingested.
    hour_file = next((root / c.LANDING_EVENTS / "dt=2026-02-05" / "hour=12").glob("*.jsonl.gz"))
    lines = gzip.decompress(hour_file.read_bytes()).decode().splitlines()
    hour_file.write_bytes(gzip.compress(("\n".join(lines[40:]) + "\n").encode()))
    ingest = ["--data-root", str(root), "--start", "2026-02-05", "--end", "2026-02-06"]
    assert run_job("ingest", ingest) == 0
    assert run_job("prepare", steps(root)["prepare"]) == 0
    assert prepared(root)["daily_counts"] == {
        "rebuilt": ["2026-02-05"],
        "reused": [d for d in DAYS if d != "2026-02-05"],
    }
    after = aggregate_files(root)
    changed = {k.split("/")[0] for k in before | after if before.get(k) != after.get(k)}
    assert changed == {f"{c.EVENT_DATE}=2026-02-05"}
    day = spark.read.parquet(str(root / c.DAILY_COUNTS / "artist")).where(
        F.col(c.EVENT_DATE) == "2026-02-05"
    )
    assertDataFrameEqual(day.drop(c.EVENT_DATE), full_scan(spark, root, "2026-02-05", "2026-02-05"))
    check_equal_to_full_scan(spark, root)


def test_item_names_come_from_the_days_of_the_models_window(spark, events_only):
    """Publish reads names from the event dates its prepare manifest records, not from every
    day ever ingested (the accepted table only grows); all days when there is no manifest."""
    import argparse

    from musicrec.lake import io
    from musicrec.steps import publish

    root = events_only
    args = argparse.Namespace(data_root=root, accepted=root / c.ACCEPTED_EVENTS, as_of=AS_OF)

    def dates() -> list[str]:
        events = publish.window_events(spark, args, "artist")
        assert events is not None
        return sorted(str(r[0]) for r in events.select(c.EVENT_DATE).distinct().collect())

    assert dates() == [f"2026-02-{d:02d}" for d in range(1, 11)]
    io.write_manifest(
        root,
        {
            "step": "prepare",
            "key": f"artist_{AS_OF}",
            "inputs": {"event_dates": ["2026-02-07", AS_OF]},
        },
    )
    assert dates() == ["2026-02-07", "2026-02-08", "2026-02-09", "2026-02-10"]
