"""One day of plays for a world, vectorised: sessions with a daily rhythm, skips, replays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from musicrec.constants import PLATFORMS
from musicrec.generator.world import World, sample_artists, world_parts

# Relative share of sessions starting in each UTC hour: night trough, commute and evening peaks.
DAILY_RHYTHM = np.array(
    [
        1.0,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.4,
        3.0,
        2.4,
        2.0,
        2.0,
        2.3,
        2.2,
        2.0,
        2.1,
        2.5,
        3.1,
        3.4,
        3.6,
        3.5,
        3.0,
        2.3,
        1.6,
    ]
)
SKIP_MS = 30_000  # a play under 30 s is a skip, as in the streaming-history exports
MEAN_SESSION_PLAYS = 12.0
END_REASONS = np.array(["completed", "skipped", "endplay", "interrupted"])


@dataclass(frozen=True)
class DayPlays:
    """Column arrays of one day's clean plays, sorted by event time."""

    day: date
    user: np.ndarray
    artist: np.ndarray
    track: np.ndarray
    ts_ms: np.ndarray  # epoch milliseconds, UTC, when the play ended
    ms_played: np.ndarray
    duration_ms: np.ndarray
    reason: np.ndarray  # index into END_REASONS
    platform: np.ndarray  # index into PLATFORMS
    id_hi: np.ndarray  # event id, 128 random bits as two uint64
    id_lo: np.ndarray

    def __len__(self) -> int:
        return int(self.user.shape[0])


def _day_rng(seed: int, day: date) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 2, day.toordinal()]))


def generate_day(world: World, day: date, events_per_day: int) -> DayPlays:
    """Generate about ``events_per_day`` plays for ``day`` (Poisson noise around the target)."""
    rng = _day_rng(world.spec.seed, day)
    weekend = 1.15 if day.weekday() >= 5 else 1.0
    rate = world.user_activity / world.user_activity.sum()
    sessions_per_user = rng.poisson(rate * weekend * events_per_day / MEAN_SESSION_PLAYS)
    session_user = np.repeat(np.arange(world.spec.users), sessions_per_user)
    n_sessions = session_user.size
    hour_p = DAILY_RHYTHM / DAILY_RHYTHM.sum()
    start_s = rng.choice(24, n_sessions, p=hour_p) * 3600 + rng.integers(0, 3600, n_sessions)
    length = rng.geometric(1.0 / MEAN_SESSION_PLAYS, n_sessions)
    user = np.repeat(session_user, length)
    session = np.repeat(np.arange(n_sessions), length)
    n = user.size

    # Favourites are replayed; otherwise genre from the user's mix, artist by popularity.
    fav = rng.random(n) < world.user_fav_prob[user]
    artist = sample_artists(world_parts(world), user, rng)
    fav_slot = rng.integers(0, world.user_fav.shape[1], n)
    artist = np.where(fav, world.user_fav[user, fav_slot], artist)
    # Within an artist, earlier tracks are the hits: u**2 skews towards index 0.
    track = world.track_offset[artist] + (world.track_count[artist] * rng.random(n) ** 2).astype(
        np.int64
    )
    duration = world.track_duration_ms[track]

    skip_p = np.where(fav, 0.12, 0.42)
    skipped = rng.random(n) < skip_p
    partial = ~skipped & (rng.random(n) < 0.15)
    ms_played = duration.copy()
    ms_played[skipped] = rng.integers(800, SKIP_MS, int(skipped.sum()))
    part_idx = np.nonzero(partial)[0]
    ms_played[part_idx] = SKIP_MS + (rng.random(part_idx.size) * (duration[part_idx] - SKIP_MS))
    reason = np.where(skipped, 1, np.where(partial, rng.integers(2, 4, n), 0))

    # Plays in a session follow each other: end time = session start + cumulative play time.
    gap_ms = rng.integers(0, 4000, n)
    elapsed = np.cumsum(ms_played + gap_ms)
    first = np.concatenate([[0], np.cumsum(length)[:-1]])
    before = np.concatenate([[0], elapsed[:-1]])
    elapsed = elapsed - np.repeat(before[first], length)
    day_start_ms = (day.toordinal() - date(1970, 1, 1).toordinal()) * 86_400_000
    ts_ms = day_start_ms + np.repeat(start_s, length) * 1000 + elapsed
    keep = ts_ms < day_start_ms + 86_400_000  # sessions running past midnight are cut
    platform = world.user_platform[user]
    other = rng.random(n) < 0.1
    platform = np.where(other, rng.integers(0, len(PLATFORMS), n), platform)
    ids = rng.integers(0, np.iinfo(np.int64).max, size=(n, 2), dtype=np.int64)
    order = np.argsort(ts_ms[keep], kind="stable")

    def pick(values: np.ndarray) -> np.ndarray:
        return values[keep][order]

    del session
    return DayPlays(
        day=day,
        user=pick(user),
        artist=pick(artist),
        track=pick(track),
        ts_ms=pick(ts_ms),
        ms_played=pick(ms_played),
        duration_ms=pick(duration),
        reason=pick(reason),
        platform=pick(platform),
        id_hi=pick(ids[:, 0]),
        id_lo=pick(ids[:, 1]),
    )
