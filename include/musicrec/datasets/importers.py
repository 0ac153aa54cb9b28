"""``musicrec-import``: convert public listening datasets into the landing format.

Formats (files written by the tests themselves in these exact layouts):

* ``lastfm360k``: ``usersha1-artmbid-artname-plays.tsv`` (user, artist mbid, name, plays)
* ``hetrec2k``: ``user_artists.dat`` (header; user, artist, weight) + optional ``artists.dat``
* ``audioscrobbler``: ``user_artist_data.txt`` (user artist count, space separated) +
  optional ``artist_data.txt`` (artist id, tab, name)
* ``lastfm1k``: ``userid-timestamp-artid-artname-traid-traname.tsv`` (timestamped scrobbles)

Count triples are expanded into that many plays spread deterministically over
[--start, --start + --days); scrobbles keep their own timestamps. Counts carry no play length,
so every imported play is a full stream (``ms_played`` = 180 s, ``reason_end`` = completed).
Rows that cannot be converted are written to ``<out>/_import_rejects/`` with a reason and
counted in the summary: nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from musicrec.generator.writer import write_hour_file

log = logging.getLogger("musicrec.import")
STREAM_MS = 180_000
FORMATS = ("lastfm360k", "hetrec2k", "audioscrobbler", "lastfm1k")


def _stable_hash(values: pd.Series, salt: str) -> np.ndarray:
    """64-bit hashes that do not depend on the process (unlike Python's hash())."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{salt}|{v}".encode(), digest_size=8).digest(), "big")
            for v in values.astype(str)
        ],
        dtype=np.uint64,
    )


def _rejects(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    lines = ["\t".join(map(str, r)) for r in rows.itertuples(index=False)]
    return pd.DataFrame({"line": lines, "reason": [reason] * len(lines)})


def read_counts(fmt: str, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(user, artist, artist_name, plays) rows and (line, reason) rejects."""
    if fmt == "lastfm360k":
        raw = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=["user", "mbid", "artist_name", "plays"],
            dtype=str,
            quoting=3,
            keep_default_na=False,
        )
        raw["artist"] = raw["mbid"].where(raw["mbid"] != "", "name:" + raw["artist_name"])
    elif fmt == "hetrec2k":
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        raw.columns = ["user", "artist", "plays"]
        names = path.parent / "artists.dat"
        raw["artist_name"] = raw["artist"].map(_names(names, sep="\t", header=True))
    elif fmt == "audioscrobbler":
        raw = pd.read_csv(
            path,
            sep=" ",
            header=None,
            names=["user", "artist", "plays"],
            dtype=str,
            keep_default_na=False,
        )
        raw["artist_name"] = raw["artist"].map(_names(path.parent / "artist_data.txt", "\t", False))
    else:
        raise ValueError(f"not a count format: {fmt}")
    plays = pd.to_numeric(raw["plays"], errors="coerce")
    bad = plays.isna() | (plays < 0) | (raw["user"] == "") | (raw["artist"] == "")
    rejects = _rejects(raw[bad], "bad count row (user, artist or play count)")
    good = raw[~bad].assign(plays=plays[~bad].astype(np.int64))
    return good[["user", "artist", "artist_name", "plays"]], rejects


def _names(path: Path, sep: str, header: bool) -> dict[str, str]:
    if not path.exists():
        return {}
    table = pd.read_csv(
        path,
        sep=sep,
        header=0 if header else None,
        dtype=str,
        quoting=3,
        keep_default_na=False,
        usecols=[0, 1],
        on_bad_lines="skip",
    )
    return dict(zip(table.iloc[:, 0], table.iloc[:, 1], strict=True))


def expand_counts(counts: pd.DataFrame, start: date, days: int) -> pd.DataFrame:
    """One row per play; play k of a pair gets a deterministic time in the date range."""
    reps = counts["plays"].to_numpy()
    rows = counts.loc[counts.index.repeat(reps)].reset_index(drop=True)
    k = np.concatenate([np.arange(n) for n in reps]) if len(reps) else np.array([], np.int64)
    pair = _stable_hash(counts["user"] + "\x1f" + counts["artist"], "pair")
    seed = np.repeat(pair, reps) ^ (k.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    span_ms = days * 86_400_000
    start_ms = (start.toordinal() - date(1970, 1, 1).toordinal()) * 86_400_000
    rows["ts_ms"] = start_ms + (seed % np.uint64(span_ms)).astype(np.int64)
    rows["event_id"] = [f"{s:016x}{i:08x}" for s, i in zip(seed.tolist(), k.tolist(), strict=True)]
    rows["track"] = "artist:" + rows["artist"]
    return rows


def read_scrobbles(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.read_csv(
        path,
        sep="\t",
        header=None,
        dtype=str,
        quoting=3,
        keep_default_na=False,
        names=["user", "ts", "artist_mbid", "artist_name", "track_mbid", "track_name"],
        on_bad_lines="warn",
    )
    ts = pd.to_datetime(raw["ts"], utc=True, errors="coerce")
    bad = (
        ts.isna() | (raw["user"] == "") | ((raw["artist_mbid"] == "") & (raw["artist_name"] == ""))
    )
    rejects = _rejects(raw[bad], "bad scrobble row (user, timestamp or artist missing)")
    good = raw[~bad].copy()
    good["ts_ms"] = (ts[~bad].astype("int64") // 1_000_000).to_numpy()
    good["artist"] = good["artist_mbid"].where(
        good["artist_mbid"] != "", "name:" + good["artist_name"]
    )
    good["track"] = good["track_mbid"].where(
        good["track_mbid"] != "", "name:" + good["artist"] + "/" + good["track_name"]
    )
    key = good["user"] + "\x1f" + good["ts"] + "\x1f" + good["track"]
    good["event_id"] = [f"{h:016x}" for h in _stable_hash(key, "scrobble").tolist()]
    return good.reset_index(drop=True), rejects


def to_landing(events: pd.DataFrame, out: Path) -> Counter:
    """Write events into dt=/hour= folders as gzipped JSON lines; return lines per day."""
    events = events.sort_values(["ts_ms", "event_id"], kind="stable")
    stamp = pd.to_datetime(events["ts_ms"], unit="ms", utc=True)
    hours = stamp.dt.floor("h")
    names = events["artist_name"].fillna("")
    lines = [
        json.dumps(
            {
                "event_id": e,
                "user_id": u,
                "track_id": t,
                "artist_id": a,
                "artist_name": n or None,
                "event_ts": s.strftime("%Y-%m-%dT%H:%M:%S.") + f"{s.microsecond // 1000:03d}Z",
                "ms_played": STREAM_MS,
                "track_duration_ms": None,
                "reason_end": "completed",
                "platform": "unknown",
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        for e, u, t, a, n, s in zip(
            events["event_id"],
            events["user"],
            events["track"],
            events["artist"],
            names,
            stamp,
            strict=True,
        )
    ]
    per_day: Counter = Counter()
    frame = pd.DataFrame({"hour": hours.to_numpy(), "line": lines})
    for hour, group in frame.groupby("hour", sort=True):
        when = pd.Timestamp(hour).to_pydatetime()
        write_hour_file(out, when.date().isoformat(), when.hour, group["line"].tolist())
        per_day[when.date().isoformat()] += len(group)
    return per_day


def convert(fmt: str, path: Path, out: Path, start: date, days: int) -> dict:
    if fmt == "lastfm1k":
        events, rejects = read_scrobbles(path)
        source_rows = len(events) + len(rejects)
    else:
        counts, rejects = read_counts(fmt, path)
        source_rows = len(counts) + len(rejects)
        events = expand_counts(counts, start, days)
    per_day = to_landing(events, out)
    if len(rejects):
        target = out / "_import_rejects" / f"{path.name}.rejects.tsv"
        target.parent.mkdir(parents=True, exist_ok=True)
        rejects.to_csv(target, sep="\t", index=False)
    summary = {
        "format": fmt,
        "source": str(path),
        "source_rows": source_rows,
        "rejected_rows": len(rejects),
        "events": int(sum(per_day.values())),
        "days": dict(sorted(per_day.items())),
        "converted_at": datetime.now(UTC).isoformat(),
    }
    (out / "_import_rejects").mkdir(parents=True, exist_ok=True)
    (out / "_import_rejects" / f"{path.name}.summary.json").write_text(
        json.dumps(summary, indent=1)
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(
        prog="musicrec-import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=FORMATS)
    p.add_argument("source", type=Path)
    p.add_argument("--out", type=Path, required=True, help="landing folder (listening_events)")
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2026, 1, 1),
        help="first day of the range counts are spread over",
    )
    p.add_argument("--days", type=int, default=28)
    args = p.parse_args(argv)
    if not args.source.exists():
        p.error(f"no such file: {args.source}")
    summary = convert(args.format, args.source, args.out, args.start, args.days)
    log.info(
        "imported %(events)d events from %(source_rows)d rows (%(rejected_rows)d rejected)", summary
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
