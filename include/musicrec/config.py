"""Typed, validated configuration. Frozen dataclasses checked in ``__post_init__``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from musicrec.exceptions import ConfigError

_HOUR = timedelta(hours=1)


def parse_utc(value: str) -> datetime:
    """Parse an ISO date or timestamp as UTC (naive values are taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"not an ISO date or timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Interval:
    """A half-open logical interval [start, end) of whole UTC hours: an hour or a day."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None:
                raise ConfigError(f"interval {name} must be timezone-aware (UTC)")
            if value.minute or value.second or value.microsecond:
                raise ConfigError(f"interval {name} must be a whole hour: {value.isoformat()}")
        if self.end <= self.start:
            raise ConfigError(f"interval end {self.end} must be after start {self.start}")

    @classmethod
    def parse(cls, start: str, end: str) -> Interval:
        return cls(parse_utc(start), parse_utc(end))

    @classmethod
    def for_day(cls, day: date) -> Interval:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))

    @property
    def hours(self) -> list[datetime]:
        count = int((self.end - self.start) / _HOUR)
        return [self.start + i * _HOUR for i in range(count)]

    @property
    def batch_id(self) -> str:
        """Partition value naming this interval, e.g. ``20260105T00_24h`` (path-safe)."""
        length = int((self.end - self.start) / _HOUR)
        return f"{self.start:%Y%m%dT%H}_{length}h"

    @property
    def dates(self) -> list[date]:
        """The calendar dates this interval touches."""
        last = (self.end - timedelta(microseconds=1)).date()
        days = (last - self.start.date()).days
        return [self.start.date() + timedelta(days=i) for i in range(days + 1)]


_BATCH_RE = re.compile(r"^\d{8}T\d{2}_\d+h$")


def is_batch_id(value: str) -> bool:
    return bool(_BATCH_RE.match(value))


@dataclass(frozen=True)
class IngestConfig:
    """How one interval of landing files is routed to accepted / quarantine / duplicates."""

    data_root: Path
    interval: Interval
    # Events may arrive late (offline playback syncs later); older ones are quarantined.
    allowed_lateness: timedelta = timedelta(hours=48)
    # Client clocks run ahead a little; further in the future is a bad clock, quarantined.
    allowed_early: timedelta = timedelta(minutes=15)
    max_ms_played: int = 4 * 3600 * 1000
    max_track_duration_ms: int = 4 * 3600 * 1000
    # At-least-once redelivery: ids seen in this many landing hours before the interval win.
    dedup_lookback_hours: int = 1
    missing_hours: str = "fail"  # "fail" or "warn": a missing hour folder is never silent

    def __post_init__(self) -> None:
        if self.missing_hours not in ("fail", "warn"):
            raise ConfigError(f"missing_hours must be 'fail' or 'warn', not {self.missing_hours!r}")
        if self.allowed_lateness < timedelta(0) or self.allowed_early < timedelta(0):
            raise ConfigError("allowed_lateness and allowed_early must be >= 0")
        if self.max_ms_played <= 0 or self.max_track_duration_ms <= 0:
            raise ConfigError("max_ms_played and max_track_duration_ms must be > 0")
        if not 0 <= self.dedup_lookback_hours <= 48:
            raise ConfigError("dedup_lookback_hours must be within 0..48")

    @property
    def window_start(self) -> datetime:
        return self.interval.start - self.allowed_lateness

    @property
    def window_end(self) -> datetime:
        return self.interval.end + self.allowed_early


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds of the Great Expectations suite run on an interval's accepted data."""

    quarantine_max_ratio: float = 0.01
    volume_band: float = 0.5  # accepted rows within +-50% of the trailing mean
    volume_history_days: int = 7
    min_rows: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.quarantine_max_ratio <= 1:
            raise ConfigError("quarantine_max_ratio must be within [0, 1]")
        if not self.volume_band > 0:
            raise ConfigError("volume_band must be > 0")
        if self.volume_history_days < 1:
            raise ConfigError("volume_history_days must be >= 1")


ITEM_LEVELS = ("artist", "track")
SCHEMES = ("log", "linear")


@dataclass(frozen=True)
class PrepareConfig:
    """Binarization and confidence weighting of a trailing window of accepted events.

    ``rating`` fed to MLlib is t(r): log -> log(1 + r / epsilon), linear -> r. MLlib itself
    applies c = 1 + alpha * |rating| (alpha is a training parameter), so the effective
    confidence is 1 + alpha * log(1 + r / epsilon) (Hu et al.) or 1 + alpha * r, with alpha
    applied exactly once.
    """

    window_days: int = 28
    holdout_days: int = 1
    item_level: str = "artist"
    min_ms_played: int = 30_000
    scheme: str = "log"
    epsilon: float = 1.0
    min_user_items: int = 2
    min_item_users: int = 2

    def __post_init__(self) -> None:
        if self.item_level not in ITEM_LEVELS:
            raise ConfigError(f"item_level must be one of {ITEM_LEVELS}, not {self.item_level!r}")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"scheme must be one of {SCHEMES}, not {self.scheme!r}")
        if self.window_days < 1 or not 0 <= self.holdout_days < self.window_days:
            raise ConfigError("need window_days >= 1 and 0 <= holdout_days < window_days")
        if self.epsilon <= 0 or self.min_ms_played < 0:
            raise ConfigError("epsilon must be > 0 and min_ms_played >= 0")
        if self.min_user_items < 1 or self.min_item_users < 1:
            raise ConfigError("minimum supports must be >= 1")


@dataclass(frozen=True)
class ALSConfig:
    """Spark MLlib implicit ALS parameters (MLlib conventions: ALS-WR regularisation)."""

    rank: int = 32
    reg_param: float = 0.05
    alpha: float = 10.0
    max_iter: int = 10
    seed: int = 42
    checkpoint_interval: int = 5
    num_blocks: int | None = None  # None: derived from the cluster's parallelism

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= 1000:
            raise ConfigError("rank must be within 1..1000")
        if self.reg_param < 0 or self.alpha < 0:
            raise ConfigError("reg_param and alpha must be >= 0")
        if self.max_iter < 1 or self.checkpoint_interval < 1:
            raise ConfigError("max_iter and checkpoint_interval must be >= 1")
        if self.num_blocks is not None and self.num_blocks < 1:
            raise ConfigError("num_blocks must be >= 1")


@dataclass(frozen=True)
class GateConfig:
    """Quality gate: the challenger must beat popularity and not regress the champion."""

    min_lift_over_popularity: float = 1.5
    max_drop_vs_published: float = 0.10
    metric: str = "ndcg@10"
    subset: str = "all"  # "all" streams or "new" items only

    def __post_init__(self) -> None:
        if self.min_lift_over_popularity < 0 or not 0 <= self.max_drop_vs_published <= 1:
            raise ConfigError("gate thresholds out of range")
        if self.subset not in ("all", "new"):
            raise ConfigError("gate subset must be 'all' or 'new'")
