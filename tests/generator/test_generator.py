"""The listening-log generator: determinism, truth, realistic structure."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from musicrec.generator.cli import generate, main
from musicrec.generator.events import generate_day
from musicrec.generator.world import WorldSpec, build_world
from musicrec.generator.writer import FaultRates

pytestmark = pytest.mark.unit
SPEC = WorldSpec(users=500, artists=200, genres=8, seed=3)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.jsonl.gz"))
    }


def _lines(folder: Path) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(folder.rglob("*.jsonl.gz")):
        out.extend(gzip.decompress(path.read_bytes()).split(b"\n")[:-1])
    return out


def test_same_seed_same_bytes_whatever_the_process_count(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, date(2026, 3, 1), 2, 3000, SPEC, FaultRates.testing(), processes=1)
    generate(b, date(2026, 3, 1), 2, 3000, SPEC, FaultRates.testing(), processes=2)
    assert _digest(a) == _digest(b) and len(_digest(a)) == 48


def test_other_seed_other_bytes(tmp_path):
    generate(tmp_path / "a", date(2026, 3, 1), 1, 2000, SPEC, FaultRates(), processes=1)
    other = WorldSpec(users=500, artists=200, genres=8, seed=4)
    generate(tmp_path / "b", date(2026, 3, 1), 1, 2000, other, FaultRates(), processes=1)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "b")


def test_layout_and_fields(tmp_path):
    generate(tmp_path, date(2026, 3, 1), 1, 2000, SPEC, FaultRates(), processes=1)
    hours = sorted(p.name for p in (tmp_path / "dt=2026-03-01").iterdir())
    assert hours == [f"hour={h:02d}" for h in range(24)]
    record = json.loads(_lines(tmp_path)[0])
    assert set(record) >= {
        "event_id",
        "user_id",
        "track_id",
        "artist_id",
        "event_ts",
        "ms_played",
        "track_duration_ms",
        "reason_end",
        "platform",
    }


def test_clean_delivery_has_no_defects(tmp_path):
    (truth,) = generate(tmp_path, date(2026, 3, 1), 1, 3000, SPEC, FaultRates(), processes=1)
    lines = _lines(tmp_path)
    records = [json.loads(line) for line in lines]  # every line parses
    assert truth["lines"] == truth["accepted"] == len(lines)
    assert len({r["event_id"] for r in records}) == len(records)
    for r in records:  # every event sits in the folder of its own hour
        assert 0 <= r["ms_played"] <= r["track_duration_ms"]


def test_truth_counts_every_line(tmp_path):
    (truth,) = generate(
        tmp_path, date(2026, 3, 1), 1, 5000, SPEC, FaultRates.testing(), processes=1
    )
    kinds = [
        "accepted",
        "duplicates",
        "empty_line",
        "not_utf8",
        "malformed_json",
        "bad_type",
        "missing_field",
        "out_of_range",
        "event_time_out_of_window",
    ]
    assert all(truth[k] > 0 for k in kinds), truth
    assert sum(truth[k] for k in kinds) == truth["lines"] == len(_lines(tmp_path))


def test_structure_collaborative_filtering_can_find():
    world = build_world(SPEC)
    plays = generate_day(world, date(2026, 3, 2), 40_000)
    assert 30_000 < len(plays) < 50_000
    # Heavy tail: the top 10% of artists get far more than 10% of plays.
    per_artist = np.sort(np.bincount(plays.artist, minlength=SPEC.artists))[::-1]
    assert per_artist[: SPEC.artists // 10].sum() / per_artist.sum() > 0.3
    # Many skips (< 30 s), but most plays are streams.
    skips = (plays.ms_played < 30_000).mean()
    assert 0.15 < skips < 0.5
    # Daily rhythm: evenings are busier than the small hours.
    hour = (plays.ts_ms // 3_600_000) % 24
    assert (hour == 19).sum() > 3 * (hour == 3).sum()
    # Replays: a user's plays concentrate on few artists (favourites), more than chance.
    pairs = Counter(zip(plays.user.tolist(), plays.artist.tolist(), strict=True))
    assert np.mean([n for n in pairs.values()]) > 1.5
    # Genre taste: most of a user's plays fall in their two most played genres.
    genre = world.artist_genre[plays.artist]
    top2 = []
    for u in np.unique(plays.user)[:200]:
        g = np.bincount(genre[plays.user == u], minlength=SPEC.genres)
        if g.sum() >= 20:
            top2.append(np.sort(g)[-2:].sum() / g.sum())
    assert np.mean(top2) > 0.6


def test_cli(tmp_path):
    out = tmp_path / "landing"
    assert (
        main(
            [
                "--out",
                str(out),
                "--start",
                "2026-03-01",
                "--days",
                "1",
                "--events-per-day",
                "1000",
                "--users",
                "100",
                "--artists",
                "50",
                "--genres",
                "5",
                "--catalog",
                str(tmp_path / "artists.jsonl"),
            ]
        )
        == 0
    )
    assert (out / "_truth" / "dt=2026-03-01.json").exists()
    catalog = [json.loads(x) for x in (tmp_path / "artists.jsonl").read_text().splitlines()]
    assert len(catalog) == 50 and catalog[0]["artist_name"]
