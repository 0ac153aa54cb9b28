"""Retention: the same rule for serving versions and models, never the serving one or the
champion."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from musicrec.serving import retention
from musicrec.serving.store import SqliteStore

from tests.serving.test_store import write_version

pytestmark = pytest.mark.unit


def model_run(runs: Path, name: str, as_of: str, age_s: int) -> Path:
    run = runs / name
    (run / "factors" / "users").mkdir(parents=True)
    (run / "metadata.json").write_text(json.dumps({"data": {"as_of": as_of}}))
    stamp = 1_700_000_000 - age_s
    os.utime(run, (stamp, stamp))
    return run


def test_versions_and_models_follow_one_rule(tmp_path):
    store = SqliteStore(path=tmp_path / "serving.db")
    versions, runs = tmp_path / "serving" / "versions", tmp_path / "models" / "runs"
    days = [f"2026-01-0{d}" for d in range(1, 7)]
    for i, day in enumerate(days):
        model_run(runs, f"m{day}", day, age_s=100 - i)
        folder = versions / f"v{day}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_version(tmp_path / "out", float(i + 1)).rename(folder)
        store.publish(f"v{day}", str(runs / f"m{day}"), folder, keep=3, as_of=day)
        retention.apply(store, versions, runs, keep=3)
    kept = {"v2026-01-04", "v2026-01-05", "v2026-01-06"}
    assert {v["version"] for v in store.versions()} == kept
    assert {p.name for p in versions.iterdir()} == kept
    assert {p.name for p in runs.iterdir()} == {"m" + v[1:] for v in kept}

    # Roll back to the oldest kept version, then retrain a newer model twice: the serving
    # version's model stays although it is no longer among the newest runs.
    store.rollback("v2026-01-04")
    model_run(runs, "m2026-01-07", "2026-01-07", age_s=10)
    model_run(runs, "m2026-01-08", "2026-01-08", age_s=5)
    removed = retention.apply(store, versions, runs, keep=1)
    # Kept: the newest run, and the three runs registered versions were built from.
    assert removed == {"versions": [], "models": ["m2026-01-07"]}
    assert {p.name for p in runs.iterdir()} == {
        "m2026-01-04",
        "m2026-01-05",
        "m2026-01-06",
        "m2026-01-08",
    }
    assert store.current() == "v2026-01-04" and (versions / "v2026-01-04").is_dir()


def test_models_of_no_registered_version_go_beyond_the_newest(tmp_path):
    runs = tmp_path / "runs"
    for i, day in enumerate(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]):
        model_run(runs, f"m{i}", day, age_s=10 - i)
    (runs / ".m9.staging-abc").mkdir()  # an interrupted write is the swap's business
    (tmp_path / "search" / "m0").mkdir(parents=True)
    assert retention.prune_models(runs, protected={"m0"}, keep=2) == ["m1"]
    assert sorted(p.name for p in runs.iterdir()) == [".m9.staging-abc", "m0", "m2", "m3"]
    assert retention.prune_models(runs, protected=set(), keep=2) == ["m0"]
    assert not (tmp_path / "search" / "m0").exists()
