"""Format a day's plays as shipped log files, with optional injected faults and their truth.

Files: ``<out>/dt=YYYY-MM-DD/hour=HH/part-00000.jsonl.gz`` (gzip mtime 0: same seed, same
bytes). Faults are injected into disjoint sets of lines so the expected outcome of every line
is known; that truth is written to ``<out>/_truth/dt=YYYY-MM-DD.json`` for tests to check
ingestion against.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from musicrec import constants as c
from musicrec.generator.events import END_REASONS, DayPlays
from musicrec.generator.world import World

TEMPLATE = (
    '{"event_id":"%016x%016x","user_id":"u%07d","track_id":"t%08d","artist_id":"a%07d",'
    '"artist_name":"%s","event_ts":"%sZ","ms_played":%d,"track_duration_ms":%d,'
    '"reason_end":"%s","platform":"%s"}'
)
NOT_UTF8_MARK = "@@NOT-UTF8@@"
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class FaultRates:
    """Fraction of an hour's clean lines given each defect. All zero: a clean delivery."""

    malformed: float = 0.0  # truncated JSON
    missing_field: float = 0.0
    bad_type: float = 0.0
    out_of_range: float = 0.0  # negative or absurd ms_played
    duplicate: float = 0.0  # at-least-once redelivery, same hour or the next
    late: float = 0.0  # event time up to 36 h before its delivery hour: accepted
    stale: float = 0.0  # event time weeks before delivery: outside the lateness window
    extra_field: float = 0.0  # unknown fields are ignored, the event is accepted
    empty_line: float = 0.0
    not_utf8: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if not 0.0 <= getattr(self, f.name) < 0.2:
                raise ValueError(f"fault rate {f.name} must be within [0, 0.2)")

    @classmethod
    def testing(cls) -> FaultRates:
        """Every defect present, about 0.3% of lines each."""
        return cls(0.003, 0.003, 0.003, 0.003, 0.01, 0.005, 0.002, 0.003, 0.002, 0.002)


def _clean_lines(world: World, plays: DayPlays, idx: np.ndarray, ts_ms: np.ndarray) -> list[str]:
    ts = np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms")
    rows = zip(
        plays.id_hi[idx].tolist(),
        plays.id_lo[idx].tolist(),
        plays.user[idx].tolist(),
        plays.track[idx].tolist(),
        plays.artist[idx].tolist(),
        world.artist_names[plays.artist[idx]].tolist(),
        ts.tolist(),
        plays.ms_played[idx].tolist(),
        plays.duration_ms[idx].tolist(),
        END_REASONS[plays.reason[idx]].tolist(),
        np.array(c.PLATFORMS)[plays.platform[idx]].tolist(),
        strict=True,
    )
    return [TEMPLATE % row for row in rows]


def _drop_key(line: str, key: str) -> str:
    record = json.loads(line)
    del record[key]
    return json.dumps(record, separators=(",", ":"))


def _set_key(line: str, key: str, value: object) -> str:
    record = json.loads(line)
    record[key] = value
    return json.dumps(record, separators=(",", ":"))


def _inject(
    lines: list[str],
    stale: np.ndarray,
    rates: FaultRates,
    rng: np.random.Generator,
    truth: Counter,
) -> tuple[list[str], list[str]]:
    """Corrupt disjoint subsets in place; return (lines, duplicates for the next hour).

    ``stale`` marks lines already doomed to quarantine by their event time: they get no
    second defect, so every line has exactly one expected outcome.
    """
    n = len(lines)
    order = rng.permutation(np.nonzero(~stale)[0])
    truth[c.REASON_OUT_OF_WINDOW] += int(stale.sum())
    cursor = 0

    def take(rate: float) -> np.ndarray:
        nonlocal cursor
        k = int(rng.binomial(n, rate)) if n else 0
        chosen = order[cursor : cursor + k]
        cursor += k
        return chosen

    for i in take(rates.malformed):
        lines[i] = lines[i][: int(rng.integers(1, len(lines[i]) - 1))]
        truth[c.REASON_MALFORMED] += 1
    for i in take(rates.missing_field):
        lines[i] = _drop_key(lines[i], c.REQUIRED_FIELDS[int(rng.integers(0, 6))])
        truth[c.REASON_MISSING] += 1
    for i in take(rates.bad_type):
        key, value = [(c.MS_PLAYED, "n/a"), (c.EVENT_TS, "yesterday")][int(rng.integers(0, 2))]
        lines[i] = _set_key(lines[i], key, value)
        truth[c.REASON_BAD_TYPE] += 1
    for i in take(rates.out_of_range):
        lines[i] = _set_key(lines[i], c.MS_PLAYED, [-1234, 10**11][int(rng.integers(0, 2))])
        truth[c.REASON_OUT_OF_RANGE] += 1
    for i in take(rates.not_utf8):
        lines[i] = lines[i].replace('"artist_name":"', '"artist_name":"' + NOT_UTF8_MARK, 1)
        truth[c.REASON_ENCODING] += 1
    for i in take(rates.extra_field):
        lines[i] = lines[i][:-1] + f',"client_version":"8.9.{int(rng.integers(0, 99))}"}}'
        truth["accepted"] += 1
    clean = order[cursor:]
    truth["accepted"] += clean.size
    dups: Any = rng.choice(clean, int(rng.binomial(n, rates.duplicate)), replace=False) if n else []
    same_hour: list[str] = []
    next_hour: list[str] = []
    for i in dups:
        (same_hour if rng.random() < 0.5 else next_hour).append(lines[i])
    truth["duplicates"] += len(dups)
    for line in same_hour:
        lines.insert(int(rng.integers(0, len(lines) + 1)), line)
    for _ in range(int(rng.binomial(n, rates.empty_line)) if n else 0):
        lines.insert(int(rng.integers(0, len(lines) + 1)), "")
        truth[c.REASON_EMPTY] += 1
    return lines, next_hour


def _shift_times(
    plays: DayPlays, idx: np.ndarray, rates: FaultRates, rng: np.random.Generator, truth: Counter
) -> tuple[np.ndarray, np.ndarray]:
    """Late (accepted) and stale (quarantined) event times, still delivered in this hour."""
    ts = plays.ts_ms[idx].copy()
    n = idx.size
    late = rng.random(n) < rates.late
    stale = ~late & (rng.random(n) < rates.stale)
    ts[late] -= rng.integers(60_000, 36 * HOUR_MS, int(late.sum()))
    ts[stale] -= rng.integers(10 * 24 * HOUR_MS, 60 * 24 * HOUR_MS, int(stale.sum()))
    truth["late"] += int(late.sum())
    return ts, stale


def write_day(world: World, plays: DayPlays, out: Path, rates: FaultRates) -> dict:
    """Write one day's 24 hour folders and its truth file; return the truth."""
    rng = np.random.default_rng(np.random.SeedSequence([world.spec.seed, 3, plays.day.toordinal()]))
    day_start = int(plays.ts_ms[0] // 86_400_000 * 86_400_000) if len(plays) else 0
    hour_of = (plays.ts_ms - day_start) // HOUR_MS
    truth: Counter = Counter()
    carry: list[str] = []
    for hour in range(24):
        idx = np.nonzero(hour_of == hour)[0]
        ts, stale = _shift_times(plays, idx, rates, rng, truth)
        lines, next_carry = _inject(_clean_lines(world, plays, idx, ts), stale, rates, rng, truth)
        lines = carry + lines
        if hour == 23:  # the day's files are self-contained: no redelivery into tomorrow
            truth["duplicates"] -= len(next_carry)
            next_carry = []
        carry = next_carry
        write_hour_file(out, plays.day.isoformat(), hour, lines)
        truth["lines"] += len(lines)
    result = {"day": plays.day.isoformat(), **dict(sorted(truth.items())), "rates": asdict(rates)}
    truth_dir = out / "_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    (truth_dir / f"dt={plays.day.isoformat()}.json").write_text(json.dumps(result, indent=1))
    return result


def write_hour_file(out: Path, day: str, hour: int, lines: list[str]) -> None:
    folder = out / f"dt={day}" / f"hour={hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    payload = ("\n".join(lines) + "\n").encode() if lines else b""
    payload = payload.replace(NOT_UTF8_MARK.encode(), b"\xff\xfe")
    target = folder / "part-00000.jsonl.gz"
    tmp = folder / ".part-00000.jsonl.gz.tmp"
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=3, filename="") as gz,
    ):
        gz.write(payload)
    os.replace(tmp, target)  # a shipper's files appear whole, never half-written
