"""Importers: public dataset layouts round-trip into the landing format."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest
from musicrec.datasets.importers import convert, main

pytestmark = pytest.mark.unit


def _events(landing: Path) -> list[dict]:
    out = []
    for path in sorted(landing.rglob("*.jsonl.gz")):
        out += [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    return out


def test_lastfm360k_counts_expand_to_plays(tmp_path):
    src = tmp_path / "usersha1-artmbid-artname-plays.tsv"
    src.write_text(
        "u1\tmb-a\tBj\u00f6rk\t3\n"
        "u1\t\tNo MBID Band\t2\n"
        "u2\tmb-a\tBj\u00f6rk\t1\n"
        'u3\tmb-b\t"Quoted" Name\tnot-a-number\n'
    )
    summary = convert("lastfm360k", src, tmp_path / "out", date(2026, 1, 1), 7)
    events = _events(tmp_path / "out")
    assert summary["events"] == len(events) == 6
    assert summary["rejected_rows"] == 1 and summary["source_rows"] == 4
    per_pair = {}
    for e in events:
        per_pair[(e["user_id"], e["artist_id"])] = (
            per_pair.get((e["user_id"], e["artist_id"]), 0) + 1
        )
        assert "2026-01-01" <= e["event_ts"][:10] <= "2026-01-07"
    assert per_pair == {("u1", "mb-a"): 3, ("u1", "name:No MBID Band"): 2, ("u2", "mb-a"): 1}
    assert {e["artist_name"] for e in events} == {"Bj\u00f6rk", "No MBID Band"}
    assert len({e["event_id"] for e in events}) == 6
    rejects = (tmp_path / "out" / "_import_rejects" / f"{src.name}.rejects.tsv").read_text()
    assert "not-a-number" in rejects


def test_conversion_is_deterministic(tmp_path):
    src = tmp_path / "user_artist_data.txt"
    src.write_text("1000 42 5\n1000 43 1\n2000 42 2\n")
    (tmp_path / "artist_data.txt").write_text("42\tThe Beatles\n43\tMiles Davis\n")
    convert("audioscrobbler", src, tmp_path / "a", date(2026, 1, 1), 3)
    convert("audioscrobbler", src, tmp_path / "b", date(2026, 1, 1), 3)
    assert _events(tmp_path / "a") == _events(tmp_path / "b")
    names = {e["artist_id"]: e["artist_name"] for e in _events(tmp_path / "a")}
    assert names == {"42": "The Beatles", "43": "Miles Davis"}


def test_hetrec_with_header_and_names(tmp_path):
    src = tmp_path / "user_artists.dat"
    src.write_text("userID\tartistID\tweight\n2\t51\t4\n2\t52\t1\n")
    (tmp_path / "artists.dat").write_text("id\tname\turl\tpictureURL\n51\tDuran Duran\tx\ty\n")
    summary = convert("hetrec2k", src, tmp_path / "out", date(2026, 1, 1), 2)
    events = _events(tmp_path / "out")
    assert summary["events"] == 5
    assert {e["artist_id"]: e["artist_name"] for e in events} == {"51": "Duran Duran", "52": None}


def test_lastfm1k_scrobbles_keep_their_times(tmp_path):
    src = tmp_path / "userid-timestamp-artid-artname-traid-traname.tsv"
    src.write_text(
        "user_000001\t2009-05-04T23:08:57Z\tf1b1cf71\tDeep Dish\t\tFuck Me Im Famous\n"
        "user_000001\t2009-05-04T13:54:10Z\ta7f7df4a\tRyuichi Sakamoto\tt-1\tComposition 0919\n"
        "user_000002\tnot-a-time\ta7f7df4a\tRyuichi Sakamoto\tt-1\tComposition 0919\n"
    )
    assert main(["lastfm1k", str(src), "--out", str(tmp_path / "out")]) == 0
    events = _events(tmp_path / "out")
    assert sorted(e["event_ts"] for e in events) == [
        "2009-05-04T13:54:10.000Z",
        "2009-05-04T23:08:57.000Z",
    ]
    assert (tmp_path / "out" / "dt=2009-05-04" / "hour=23").is_dir()
    assert {e["track_id"] for e in events} == {"t-1", "name:f1b1cf71/Fuck Me Im Famous"}
    summary = json.loads(
        (tmp_path / "out" / "_import_rejects" / f"{src.name}.summary.json").read_text()
    )
    assert summary["rejected_rows"] == 1
