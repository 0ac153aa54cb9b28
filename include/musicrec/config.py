"""Typed, validated configuration: the one place that holds every default and bound.

Frozen dataclasses checked in ``__post_init__``. A tunable field is declared once with
``setting`` (default, bounds, help); the jobs' command-line options (``add_options`` /
``from_options``) and the DAG's trigger parameters (``param_schema``) are generated from it.
Pure Python: the DAG imports this module at parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from musicrec.exceptions import ConfigError
from musicrec.settings import (  # re-exported: the DAG and the steps read them from here
    Checked,
    add_options,
    from_options,
    param_schema,
    same_as,
    setting,
    settings,
)

__all__ = ["add_options", "from_options", "param_schema", "settings"]

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


# --- run-scoped values ------------------------------------------------------------------------


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


# --- the steps' settings ----------------------------------------------------------------------

MISSING_HOURS = ("fail", "warn")


@dataclass(frozen=True)
class IngestConfig(Checked):
    """How one interval of landing files is routed to accepted / quarantine / duplicates."""

    data_root: Path
    interval: Interval
    allowed_lateness_hours: float = setting(
        48.0,
        "events older than the interval start minus this are quarantined (offline playback "
        "syncs late); validation checks the same window, read from the ingest manifest",
        minimum=0,
        maximum=24 * 30,
    )
    allowed_early_minutes: float = setting(
        15.0,
        "client clocks run ahead a little; events further in the future are quarantined",
        minimum=0,
        maximum=24 * 60,
    )
    max_ms_played: int = setting(4 * 3600 * 1000, "longest believable play (ms)", minimum=1)
    max_track_duration_ms: int = setting(
        4 * 3600 * 1000, "longest believable track (ms)", minimum=1
    )
    dedup_lookback_hours: int = setting(
        1,
        "at-least-once redelivery: ids seen in this many landing hours before the interval win",
        minimum=0,
        maximum=48,
    )
    missing_hours: str = setting(
        "fail", "a missing landing hour folder fails the run, or is recorded", choices=MISSING_HOURS
    )

    @property
    def allowed_lateness(self) -> timedelta:
        return timedelta(hours=self.allowed_lateness_hours)

    @property
    def allowed_early(self) -> timedelta:
        return timedelta(minutes=self.allowed_early_minutes)

    @property
    def window_start(self) -> datetime:
        return self.interval.start - self.allowed_lateness

    @property
    def window_end(self) -> datetime:
        return self.interval.end + self.allowed_early


@dataclass(frozen=True)
class ValidationConfig(Checked):
    """Thresholds of the Great Expectations suite run on an interval's accepted data."""

    quarantine_max_ratio: float = setting(
        0.01, "largest share of an interval's lines that may be quarantined", minimum=0, maximum=1
    )
    volume_band: float = setting(
        0.5,
        "accepted rows must be within this fraction of the trailing mean",
        minimum=0,
        exclusive_minimum=True,
        maximum=10,
    )
    volume_history_days: int = setting(
        7, "days of earlier intervals the volume band is computed from", minimum=1, maximum=90
    )
    min_rows: int = setting(1, "fewest accepted rows an interval may have", minimum=0)


ITEM_LEVELS = ("artist", "track")
SCHEMES = ("log", "linear")


@dataclass(frozen=True)
class PrepareConfig(Checked):
    """Binarization and confidence weighting of a trailing window of accepted events.

    ``rating`` is t(r): log -> log(1 + r / epsilon), linear -> r. The confidence is
    c = 1 + alpha * rating (alpha is a training parameter, applied once by the trainer), so
    it is 1 + alpha * log(1 + r / epsilon) (Hu et al.) or 1 + alpha * r.
    """

    window_days: int = setting(
        28, "days of events, ending at the date, that make the interactions", minimum=2, maximum=365
    )
    holdout_days: int = setting(
        1, "last days of the window held out for evaluation", minimum=1, maximum=30
    )
    item_level: str = setting("artist", "what is recommended", choices=ITEM_LEVELS)
    min_ms_played: int = setting(30_000, "a shorter play is a skip, not a stream (ms)", minimum=0)
    scheme: str = setting("log", "rating from stream counts", choices=SCHEMES)
    epsilon: float = setting(
        1.0, "log scheme: rating = log(1 + r / epsilon)", minimum=0, exclusive_minimum=True
    )
    min_user_items: int = setting(2, "users with fewer items are left out", minimum=1)
    min_item_users: int = setting(2, "items with fewer users are left out", minimum=1)

    def check(self) -> None:
        if self.holdout_days >= self.window_days:
            raise ConfigError(
                f"holdout_days ({self.holdout_days}) must be < window_days ({self.window_days})"
            )


@dataclass(frozen=True)
class ImportConfig(Checked):
    """Public count datasets (user, artist, plays) as an interactions snapshot: counts carry no
    time, so the holdout is a seeded-hash share of each user's artists, not the last days.
    Rating, confidence and minimum support are prepare's (``PrepareConfig``)."""

    holdout_fraction: float = setting(
        0.2,
        "share of each user's artists held out for evaluation (users with one artist: none)",
        minimum=0,
        exclusive_minimum=True,
        maximum=0.9,
    )
    seed: int = setting(42, "seed of the holdout's hash", minimum=0)
    scheme: str = same_as(PrepareConfig, "scheme")
    epsilon: float = same_as(PrepareConfig, "epsilon")
    min_user_items: int = same_as(PrepareConfig, "min_user_items")
    min_item_users: int = same_as(PrepareConfig, "min_item_users")
    # Expanding counts into events (the daily DAG on count data) only with a stated cap.
    max_plays_per_pair: int = setting(
        50, "--events: plays written per (user, artist) at most (counts above are capped)",
        minimum=1, maximum=100_000,
    )  # fmt: skip
    days: int = setting(28, "--events: days the plays are spread over", minimum=1, maximum=366)

    def prepare(self) -> PrepareConfig:
        """The prepare settings the snapshot shares (rating, minimum support)."""
        shared = ("scheme", "epsilon", "min_user_items", "min_item_users")
        return PrepareConfig(**{name: getattr(self, name) for name in shared})


LAYOUTS = ("mllib", "half-gridify", "full-gridify")
SOLVERS = ("cg", "cholesky")
# The regulariser means different things per layout: MLlib scales it by each row's count
# (ALS-WR), the grid layouts use it as a plain lambda for every row (the `implicit` library's
# kernels), so its best value depends on the data: the benchmarks' searches (model.search)
# chose 150 on 20k users and 20 on 100k, the DAG test's 300 users want about 10 (30 there gave
# NDCG@10 0.56 against 0.67 and failed the champion check). The default suits demo-sized data;
# on other data pass --reg-param or --search.
DEFAULT_REG = {"mllib": 0.2, "half-gridify": 10.0, "full-gridify": 10.0}
# The layout the DAG and the jobs use unless told otherwise: the fastest that passes the
# failure tests (benchmarks/results/latest.json, README).
DEFAULT_LAYOUT = "half-gridify"


@dataclass(frozen=True)
class ALSConfig(Checked):
    """Implicit ALS parameters, for every layout (``model.layouts``)."""

    layout: str = setting(
        DEFAULT_LAYOUT, "how ALS is laid out on Spark (the talk's layouts)", choices=LAYOUTS
    )
    rank: int = setting(32, "ALS rank (latent factors)", minimum=1, maximum=1000)
    reg_param: float | None = setting(
        None,
        "regularisation: MLlib scales it by each row's count, the grid layouts do not "
        "(default: the layout's own, DEFAULT_REG)",
        minimum=0,
        kind=float,
    )
    alpha: float = setting(10.0, "confidence scale: c = 1 + alpha * rating", minimum=0)
    max_iter: int = setting(10, "ALS iterations", minimum=1, maximum=100)
    seed: int = setting(42, "seed of the initial factors and of every split", minimum=0)
    checkpoint_interval: int = setting(
        5, "iterations between checkpoints (cuts lineage, bounds lost work)", minimum=1
    )
    num_blocks: int | None = setting(
        None, "blocks per side (default: the cluster's parallelism)", minimum=1, kind=int
    )
    solver: str = setting(
        "cg", "half-gridify: implicit's conjugate gradient, or its Cholesky", choices=SOLVERS
    )
    cg_steps: int = setting(
        3, "conjugate-gradient steps per row and half-iteration", minimum=1, maximum=20
    )
    broadcast_budget_mb: int = setting(
        2048,
        "half-gridify: factor broadcasts one executor's concurrent Python workers may hold",
        minimum=1,
    )

    def check(self) -> None:
        if self.reg_param is None:  # frozen: fill in the layout's default once
            object.__setattr__(self, "reg_param", DEFAULT_REG[self.layout])

    @property
    def regularization(self) -> float:
        assert self.reg_param is not None
        return self.reg_param


GATE_SUBSETS = ("all", "new")


@dataclass(frozen=True)
class GateConfig(Checked):
    """Quality gate: the challenger must beat popularity and not regress the champion."""

    min_lift: float = setting(
        1.5, "the model's NDCG@10 must be at least this times popularity's", minimum=0
    )
    max_drop: float = setting(
        0.10, "largest allowed drop below the serving model's NDCG@10", minimum=0, maximum=1
    )
    gate_subset: str = setting(
        "all", "holdout the gate reads: all streams, or new items only", choices=GATE_SUBSETS
    )
    metric: str = "ndcg@10"


@dataclass(frozen=True)
class PublishConfig(Checked):
    """What is published per version, and how many versions and models are kept."""

    top_n: int = setting(50, "recommendations per user", minimum=1, maximum=500)
    related_n: int = setting(20, "related items per item", minimum=1, maximum=200)
    keep: int = setting(
        3,
        "serving versions kept (the serving one included), in the database and on disk; "
        "model runs kept besides those they serve",
        minimum=1,
        maximum=50,
    )
