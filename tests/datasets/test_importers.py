"""``musicrec-import`` on files written here in the public datasets' exact layouts, with the
quirks real files have: a snapshot for count data, landing events for scrobbles."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from musicrec import constants as c
from musicrec.datasets import importers

pytestmark = pytest.mark.unit
AS_OF = "2026-03-01"


def run_import(*args: str) -> int:
    """The command as a user runs it; its embedded session is the test session's."""
    return importers._main(list(args))


def manifest(root: Path, key: str) -> dict:
    return json.loads((root / c.MANIFESTS / "import" / f"{key}.json").read_text())


def rejects(root: Path, name: str) -> list[dict]:
    [part] = (root / importers.REJECTS / name).glob("part-*.csv")
    with part.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def split(spark, root: Path, which: str) -> dict[tuple[str, str], tuple[int, float]]:
    from pyspark.sql import functions as F

    table = spark.read.parquet(str(root / c.INTERACTIONS / "artist"))
    rows = table.where((F.col("as_of") == AS_OF) & (F.col("split") == which)).collect()
    return {(r.user_id, r.item_id): (r.streams, r.rating) for r in rows}


def test_lastfm360k_snapshot_with_real_file_quirks(spark, tmp_path):
    src = tmp_path / "usersha1-artmbid-artname-plays.tsv"
    users = [f"{i:040x}" for i in range(6)]
    good = []
    for u in users:  # six users x the same five artists: survives minimum support
        for a in range(5):
            good.append(f"{u}\tmb-{a}\tArtist {a}\t{10 + a}")
    lines = [
        "user\tartist-mbid\tartist-name\tplays",  # a header the format does not have
        *good,
        f"{users[0]}\t\tNo MBID Band\t7",  # empty MBID: keyed by name
        f"{users[1]}\t\tNo MBID Band\t3",
        f"{users[0]}\tmb-0\tArtist 0 (live)\t5",  # duplicate (user, artist): summed
        f"{users[2]}\tmb-t\tTab\tin name\t4",  # a tab inside the name
        f"{users[3]}\tmb-t\tTab\tin name\t2",
        f"{users[2]}\tmb-u\tSigur R\u00f3s \u2013 \u00c1g\u00e6tis\t9",  # Unicode
        f"{users[3]}\tmb-u\tSigur R\u00f3s \u2013 \u00c1g\u00e6tis\t1",
        f"{users[4]}\tmb-1\tArtist 1\t0",  # zero
        f"{users[4]}\tmb-2\tArtist 2\t-3",  # negative
        f"{users[4]}\tmb-3\tArtist 3\tmany",  # non-numeric
        f"{users[4]}\tmb-4\tArtist 4\t99999999999999999999999",  # out of range
        "\tmb-4\tArtist 4\t5",  # no user
        f"{users[5]}\t\t\t5",  # no artist at all
        "",  # an empty line
        f"{users[5]}\tmb-9\tTrunc",  # a truncated last line
    ]
    src.write_bytes(("\r\n".join(lines)).encode())  # CRLF, no final newline
    root = tmp_path / "data"
    code = run_import("lastfm360k", str(src), "--data-root", str(root), "--as-of", AS_OF)
    assert code == c.EXIT_OK
    m = manifest(root, f"lastfm360k_{AS_OF}")
    n = m["counts"]
    assert n["rows_read"] == len(lines) == n["imported_rows"] + n["rejected_rows"]
    assert n["rejected_by_reason"] == {
        "header line (the format has none)": 1,
        "zero count": 1,
        "negative count": 1,
        "non-numeric count": 1,
        "count out of range": 1,
        "missing user": 1,
        "missing artist": 1,
        "empty line": 1,
        "expected 4 tab-separated fields": 1,
    }
    assert n["duplicate_rows_summed"] == 1
    assert [r["reason"] for r in rejects(root, src.name)][0].startswith("header line")
    train, holdout = split(spark, root, "train"), split(spark, root, "holdout")
    both = train | holdout
    assert not set(train) & set(holdout)
    assert both[(users[0], "mb-0")][0] == 15  # 10 + 5, the duplicate summed
    # Each user with >= 5 artists holds out floor(0.2 * n) of them.
    per_user = {u: sum(1 for (x, _) in holdout if x == u) for u in users}
    assert per_user[users[0]] == 1 and per_user[users[5]] == 1
    names = {
        r.item_id: r.item_name
        for r in spark.read.parquet(str(root / c.ITEM_NAMES / "artist")).collect()
    }
    assert names["mb-t"] == "Tab\tin name" and names["mb-u"].startswith("Sigur R\u00f3s")
    assert names["name:No MBID Band"] == "No MBID Band"
    assert names["mb-0"] == "Artist 0"  # the most played row's name
    # Rating by prepare's log scheme, from the summed count.
    import math

    assert both[(users[0], "mb-0")][1] == pytest.approx(math.log1p(15), rel=1e-6)


def test_snapshot_is_deterministic_and_reimport_replaces_its_partition(spark, tmp_path):
    src = tmp_path / "user_artist_data.txt"
    src.write_text(
        "".join(f"{u} {a} {1 + (u * a) % 7}\n" for u in range(1000, 1010) for a in range(40, 50))
    )
    (tmp_path / "artist_data.txt").write_text("40\tThe Beatles\n41\tMiles Davis\nnot a line\n")
    root = tmp_path / "data"
    args = ["audioscrobbler", str(src), "--data-root", str(root), "--as-of", AS_OF]
    assert run_import(*args, "--seed", "7") == 0
    first = split(spark, root, "holdout")
    assert run_import(*args, "--seed", "7") == 0
    assert split(spark, root, "holdout") == first  # same seed, same split, nothing doubled
    assert len(split(spark, root, "train")) + len(first) == 100
    assert run_import(*args, "--seed", "8") == 0
    assert split(spark, root, "holdout") != first
    names = {
        r.item_id: r.item_name
        for r in spark.read.parquet(str(root / c.ITEM_NAMES / "artist")).collect()
    }
    assert names == {"40": "The Beatles", "41": "Miles Davis"}


def test_hetrec_header_is_expected_and_an_empty_file_is_refused(spark, tmp_path):
    src = tmp_path / "user_artists.dat"
    src.write_text(
        "userID\tartistID\tweight\n"
        + "".join(f"{u}\t{a}\t{350_000 if a == 51 else 3}\n" for u in (2, 3, 4) for a in (51, 52))
    )
    (tmp_path / "artists.dat").write_text("id\tname\turl\tpictureURL\n51\tDuran Duran\tx\ty\n")
    root = tmp_path / "data"
    assert run_import("hetrec2k", str(src), "--data-root", str(root), "--as-of", AS_OF) == 0
    n = manifest(root, f"hetrec2k_{AS_OF}")["counts"]
    assert (n["rows_read"], n["header_lines"], n["imported_rows"], n["rejected_rows"]) == (
        7,
        1,
        6,
        0,
    )
    assert n["plays"] == 3 * 350_003
    empty = tmp_path / "empty" / "user_artists.dat"
    empty.parent.mkdir()
    empty.write_text("")
    from musicrec.exceptions import DataRejectedError

    with pytest.raises(DataRejectedError, match="is empty"):
        run_import("hetrec2k", str(empty), "--data-root", str(root))


def landing_events(out: Path) -> list[dict]:
    found = []
    for path in sorted(out.rglob("*.jsonl.gz")):
        text = gzip.decompress(path.read_bytes()).decode()
        found += [json.loads(x) for x in text.splitlines() if x]
    return found


def test_lastfm1k_scrobbles_stream_into_complete_landing_days(spark, tmp_path):
    src = tmp_path / "userid-timestamp-artid-artname-traid-traname.tsv"
    src.write_text(
        "user_000001\t2009-05-04T23:08:57Z\tf1b1cf71\tDeep Dish\t\tFuck Me Im Famous\n"
        "user_000001\t2009-05-04T13:54:10Z\ta7f7df4a\tRyuichi Sakamoto\tt-1\tComposition 0919\n"
        "user_000002\tnot-a-time\ta7f7df4a\tRyuichi Sakamoto\tt-1\tComposition 0919\n"
        "user_000002\t2009-05-05T01:00:00Z\t\t\u00c1sgeir\t\tKing and Cross\n"
        "user_000003\t2009-05-05T02:00:00Z\ta\tName\twith tab\tt-2\tx\n"
    )
    root = tmp_path / "data"
    out = tmp_path / "landing"
    assert run_import("lastfm1k", str(src), "--data-root", str(root), "--out", str(out)) == 0
    events = landing_events(out)
    assert sorted(e["event_ts"] for e in events) == [
        "2009-05-04T13:54:10.000Z",
        "2009-05-04T23:08:57.000Z",
        "2009-05-05T01:00:00.000Z",
    ]
    assert {e["track_id"] for e in events} == {
        "t-1",
        "name:f1b1cf71/Fuck Me Im Famous",
        "name:name:\u00c1sgeir/King and Cross",
    }
    assert all(e["ms_played"] == importers.STREAM_MS for e in events)
    # Every hour of both days is there (empty hours as empty files): ingest sees whole days.
    for day in ("2009-05-04", "2009-05-05"):
        assert len(list((out / f"dt={day}").glob("hour=*"))) == 24
    n = manifest(root, "lastfm1k_events_" + src.stem)["counts"]
    assert n["events"] == 3 and n["rejected_by_reason"] == {
        "unparsable timestamp": 1,
        "expected 6 tab-separated fields": 1,
    }
    assert run_import("lastfm1k", str(src), "--data-root", str(root), "--out", str(out)) == 0
    assert len(landing_events(out)) == 3  # re-importing replaces its files


def test_count_data_as_events_only_with_a_cap(spark, tmp_path):
    src = tmp_path / "user_artists.dat"
    src.write_text("userID\tartistID\tweight\n2\t51\t350000\n2\t52\t2\n")
    root, out = tmp_path / "data", tmp_path / "landing"
    args = ["hetrec2k", str(src), "--data-root", str(root), "--events", "--out", str(out)]
    assert run_import(*args, "--max-plays-per-pair", "5", "--days", "3") == 0
    events = landing_events(out)
    assert len(events) == 5 + 2 and len({e["event_id"] for e in events}) == 7
    assert {e["event_ts"][:10] for e in events} <= {"2026-01-01", "2026-01-02", "2026-01-03"}
    assert manifest(root, "hetrec2k_events_user_artists")["counts"]["max_plays_per_pair"] == 5


def test_bad_arguments_exit_2(tmp_path):
    from musicrec.datasets.importers import main

    assert main(["lastfm1k", str(tmp_path / "missing.tsv"), "--data-root", str(tmp_path)]) == 2
    src = tmp_path / "user_artists.dat"
    src.write_text("userID\tartistID\tweight\n")
    args = ["lastfm1k", str(src), "--data-root", str(tmp_path), "--events"]
    assert main(args) == 2  # --events is for count formats
