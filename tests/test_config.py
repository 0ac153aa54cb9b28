"""Typed config: intervals, batch ids, validation of values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from musicrec.config import IngestConfig, Interval, ValidationConfig, is_batch_id, parse_utc
from musicrec.exceptions import ConfigError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("start", "end", "batch", "hours", "dates"),
    [
        ("2026-01-05", "2026-01-06", "20260105T00_24h", 24, [date(2026, 1, 5)]),
        ("2026-01-05T13:00", "2026-01-05T14:00Z", "20260105T13_1h", 1, [date(2026, 1, 5)]),
        # Crossing midnight touches two dates.
        (
            "2026-01-05T23:00+00:00",
            "2026-01-06T01:00",
            "20260105T23_2h",
            2,
            [date(2026, 1, 5), date(2026, 1, 6)],
        ),
    ],
)
def test_interval_parsing(start, end, batch, hours, dates):
    interval = Interval.parse(start, end)
    assert interval.batch_id == batch and is_batch_id(batch)
    assert len(interval.hours) == hours
    assert interval.dates == dates


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-01-05", "2026-01-05"),
        ("2026-01-06", "2026-01-05"),
        ("2026-01-05T10:30", "2026-01-05T11:00"),
        ("yesterday", "2026-01-05"),
    ],
)
def test_bad_intervals_are_rejected(start, end):
    with pytest.raises(ConfigError):
        Interval.parse(start, end)


def test_timestamps_are_utc():
    assert parse_utc("2026-01-05T02:00+02:00") == datetime(2026, 1, 5, tzinfo=UTC)


def test_ingest_window():
    cfg = IngestConfig(
        data_root=".",
        interval=Interval.for_day(date(2026, 1, 5)),
        allowed_lateness=timedelta(hours=48),
    )
    assert cfg.window_start == datetime(2026, 1, 3, tzinfo=UTC)
    assert cfg.window_end == datetime(2026, 1, 6, 0, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "kwargs", [{"missing_hours": "ignore"}, {"max_ms_played": 0}, {"dedup_lookback_hours": -1}]
)
def test_bad_ingest_config(kwargs):
    with pytest.raises(ConfigError):
        IngestConfig(data_root=".", interval=Interval.for_day(date(2026, 1, 5)), **kwargs)


def test_bad_validation_config():
    with pytest.raises(ConfigError):
        ValidationConfig(quarantine_max_ratio=1.5)
