"""Files in the public datasets' exact layouts, at their real sizes, for the import benchmark.

Nothing can be downloaded here, so the benchmark writes them: Last.fm 360K
(``usersha1-artmbid-artname-plays.tsv``: 17.5M rows, 360k users, 160k artists), Last.fm 1K
(``userid-timestamp-artid-artname-traid-traname.tsv``: 19M scrobbles of 1,000 users) and HetRec
2011 Last.fm 2K (``user_artists.dat`` + ``artists.dat``: 92,834 rows of 1,892 users, 17,632
artists, weights up to 350,000). The count files hold the generator's latent tastes (users
mixing genres, Zipf popularity inside each, favourites), so a model trained on an import can be
judged; counts are heavy-tailed, some MBIDs empty, some names non-ASCII, as in the real files.
Seeded: the same arguments, the same bytes.

    python benchmarks/dataset_files.py lastfm360k OUT_DIR [--rows N]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pandas as pd
from musicrec.generator.interactions import SIZES, Size, plays

CHUNK = 1_000_000


def zipf_choice(rng: np.random.Generator, n: int, size: int, s: float = 1.0) -> np.ndarray:
    weights = 1.0 / np.arange(10, n + 10, dtype=np.float64) ** s
    return rng.choice(n, size=size, p=weights / weights.sum())


def mbids(n: int, empty_share: float, rng: np.random.Generator) -> np.ndarray:
    ids = np.array(
        [f"{i:08x}-{i % 65536:04x}-4{i % 4096:03x}-8000-{i * 7919:012x}" for i in range(n)]
    )
    ids[rng.random(n) < empty_share] = ""
    return ids


def artist_names(n: int) -> np.ndarray:
    accents = ["", " \u00e9", " \u00f8", " \u2013 live", " \u00e6on"]
    return np.array([f"Artist {i}{accents[i % len(accents)]}" for i in range(n)])


def counts(rng: np.random.Generator, size: int, cap: int) -> np.ndarray:
    """Heavy-tailed play counts (Pareto, a Zipf-like tail), 1 at least, ``cap`` at most."""
    return np.minimum(np.floor(rng.pareto(1.2, size=size) * 20) + 1, cap).astype(np.int64)


def _write(frame: pd.DataFrame, out, header: bool = False) -> None:
    frame.to_csv(out, sep="\t", header=header, index=False, quoting=csv.QUOTE_NONE, escapechar=None)


def taste_counts(size: Size, seed: int) -> pd.DataFrame:
    """(u, i, plays) with the generator's latent tastes (``generator.interactions``): a model
    can learn these, unlike independent draws, so the model steps on an import mean
    something. Counts scaled per user by a heavy-tailed factor, as real top-artist counts."""
    pairs = plays(size, seed).groupby(["u", "i"], sort=True).size().rename("n").reset_index()
    rng = np.random.default_rng(seed)
    factor = np.floor(rng.pareto(1.5, size.users) * 10) + 1
    pairs["plays"] = (pairs["n"].to_numpy() * factor[pairs["u"].to_numpy()]).astype(np.int64)
    return pairs


def lastfm360k(folder: Path, rows: int = 17_500_000) -> Path:
    """Last.fm 360K's shape (generator size "large"): 17.2M distinct pairs, the rest of the
    rows repeat a pair under a second name of its artist (summed on import), as the real file
    lists some artists twice under one MBID."""
    size = SIZES["large"] if rows > 2_000_000 else Size(rows // 48, rows // 110, 80, 48)
    pairs = taste_counts(size, seed=360)
    rng = np.random.default_rng(361)
    extra = max(0, rows - len(pairs))
    repeat = pairs.iloc[np.sort(rng.choice(len(pairs), extra, replace=False))] if extra else None
    user_ids = np.array([rng.bytes(20).hex() for _ in range(size.users)])
    ids, names = mbids(size.items, 0.02, rng), artist_names(size.items)
    path = folder / "usersha1-artmbid-artname-plays.tsv"
    table = pairs if repeat is None else pd.concat([pairs, repeat.assign(alias=1)])
    table = table.sort_values("u", kind="stable").iloc[:rows]
    alias = table["alias"].fillna(0).to_numpy() if "alias" in table else np.zeros(len(table))
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for start in range(0, len(table), CHUNK):
            part = table.iloc[start : start + CHUNK]
            who, what = part["u"].to_numpy(), part["i"].to_numpy()
            name = names[what]
            aka = alias[start : start + CHUNK] > 0
            name[aka] = np.char.add(name[aka], " (alias)")
            _write(
                pd.DataFrame(
                    {"u": user_ids[who], "m": ids[what], "n": name, "p": part["plays"].to_numpy()}
                ),
                out,
            )
    return path


def lastfm1k(
    folder: Path, rows: int = 19_000_000, users: int = 1000, artists: int = 170_000
) -> Path:
    rng = np.random.default_rng(1000)
    ids, names = mbids(artists, 0.03, rng), artist_names(artists)
    user_ids = np.array([f"user_{i:06d}" for i in range(1, users + 1)])
    first = np.datetime64("2005-02-14T00:00:00", "s").astype(np.int64)
    last = np.datetime64("2009-06-19T00:00:00", "s").astype(np.int64)
    path = folder / "userid-timestamp-artid-artname-traid-traname.tsv"
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            who = rng.integers(0, users, n)
            what = zipf_choice(rng, artists, n, s=0.9)
            track = rng.zipf(1.5, n) % 200
            when = rng.integers(first, last, n).astype("datetime64[s]")
            track_ids = pd.Series(what * 1000 + track).map(
                "{:08x}-0000-4000-9000-000000000000".format
            )
            track_ids[rng.random(n) < 0.1] = ""
            _write(
                pd.DataFrame(
                    {
                        "u": user_ids[who],
                        "t": np.char.add(np.datetime_as_string(when, unit="s"), "Z"),
                        "a": ids[what],
                        "an": names[what],
                        "ti": track_ids.to_numpy(),
                        "tn": pd.Series(track).map("Track {}".format).to_numpy(),
                    }
                ),
                out,
            )
    return path


def hetrec2k(folder: Path, rows: int = 92_834) -> Path:
    """HetRec 2011's shape: 1,892 users, 17,632 artists, about 49 artists a user, the largest
    weight 350,000; a header line, and names in ``artists.dat``."""
    size = Size(users=1892, items=17_632, plays_per_user=95, genres=24)
    pairs = taste_counts(size, seed=2011).iloc[:rows].copy()
    pairs["plays"] = np.minimum(pairs["plays"] * 20, 350_000)
    pairs.iloc[0, pairs.columns.get_loc("plays")] = 350_000  # the real file's largest weight
    path = folder / "user_artists.dat"
    frame = pd.DataFrame(
        {"userID": pairs["u"] + 2, "artistID": pairs["i"] + 1, "weight": pairs["plays"]}
    )
    _write(frame, path, header=True)
    names = pd.DataFrame(
        {
            "id": np.arange(1, size.items + 1),
            "name": artist_names(size.items),
            "url": "http://www.last.fm/music/x",
            "pictureURL": "http://userserve-ak.last.fm/serve/252/x.jpg",
        }
    )
    _write(names, folder / "artists.dat", header=True)
    return path


WRITERS = {"lastfm360k": lastfm360k, "lastfm1k": lastfm1k, "hetrec2k": hetrec2k}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("format", choices=sorted(WRITERS))
    p.add_argument("out", type=Path)
    p.add_argument("--rows", type=int, default=None)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kwargs = {"rows": args.rows} if args.rows else {}
    print(WRITERS[args.format](args.out, **kwargs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
