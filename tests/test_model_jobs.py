"""Prepare -> train -> evaluate -> publish on ten generated days, each step a CLI run."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.jobs import run
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import evaluate, ingest, prepare, publish, train
from tests.conftest import make_data_root

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
        assert run(ingest.main, args) == 0
    return root


def steps(root: Path) -> dict[str, list[str]]:
    base = ["--data-root", str(root)]
    table = str(root / c.INTERACTIONS / "artist")
    model = str(root / c.MODELS / "runs" / f"artist-{AS_OF}")
    common = [*base, "--interactions", table, "--as-of", AS_OF]
    return {
        "prepare": [*base, "--date", AS_OF, "--window-days", "10", "--min-user-items", "2"],
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
    assert run(prepare.main, s["prepare"]) == 0
    assert run(train.main, s["train"]) == 0
    assert run(evaluate.main, s["evaluate"]) == 0
    assert run(publish.main, s["publish"]) == 0
    return lake


def test_prepare_twice_gives_identical_output(spark, pipeline):
    table = pipeline / c.INTERACTIONS / "artist"
    before = spark.read.parquet(str(table)).collect()
    users_dict = spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")).collect()
    assert run(prepare.main, steps(pipeline)["prepare"]) == 0
    assertDataFrameEqual(spark.read.parquet(str(table)), before)
    assertDataFrameEqual(spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")), users_dict)
    manifest = json.loads((pipeline / c.MANIFESTS / "prepare" / f"artist_{AS_OF}.json").read_text())
    assert (
        manifest["counts"]["train"]["pairs"] > 1000 and manifest["counts"]["holdout"]["pairs"] > 0
    )


def test_ids_stay_stable_when_the_window_moves(spark, pipeline):
    users = {
        r.user_id: r.user_idx
        for r in spark.read.parquet(str(pipeline / c.DICTIONARIES / "users")).collect()
    }
    args = steps(pipeline)["prepare"]
    args[args.index(AS_OF)] = "2026-02-05"
    args[args.index("10")] = "4"
    assert run(prepare.main, args) == 0
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
    assert run(train.main, args) == 0
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
    for part in ("userFactors", "itemFactors"):
        path = model_dir / "als" / part
        factors = spark.read.parquet(str(path)).collect()
        rows = [
            (
                r.id,
                [
                    float(x)
                    for x in (
                        hash((r.id, part, i)) % 1000 / 1000 - 0.5 for i in range(len(r.features))
                    )
                ],
            )
            for r in factors
        ]
        shutil.rmtree(path)
        spark.createDataFrame(rows, "id int, features array<float>").write.parquet(str(path))


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
    assert run(evaluate.main, eval_args) == c.EXIT_DATA_REJECTED
    decision = json.loads((pipeline / c.MANIFESTS / "evaluate" / "artist-random.json").read_text())
    assert not decision["gate"]["passed"] and "below" in " ".join(decision["gate"]["reasons"])
    assert (
        run(publish.main, [*s["publish"][:-5], str(bad), "--top-n", "20"]) == c.EXIT_DATA_REJECTED
    )
    after = (
        sqlite3.connect(pipeline / c.SERVING / "serving.db")
        .execute("SELECT version FROM serving_versions WHERE is_current = 1")
        .fetchall()
    )
    assert after == before == [(f"artist-{AS_OF}",)]


@pytest.mark.postgres
def test_publish_to_postgres(pipeline, pg_server):
    import psycopg

    url = pg_server.url()
    args = [*steps(pipeline)["publish"], "--database-url", url]
    assert run(publish.main, args) == 0
    with psycopg.connect(url) as conn:
        n_users = conn.execute("SELECT count(DISTINCT user_id) FROM recommendations").fetchone()[0]
    assert n_users > 100
