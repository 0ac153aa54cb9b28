"""Typed config: intervals, batch ids, validation of values."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime

import pytest
from musicrec import config
from musicrec.config import (
    ALSConfig,
    IngestConfig,
    Interval,
    PrepareConfig,
    PublishConfig,
    ValidationConfig,
    is_batch_id,
    parse_utc,
)
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
        allowed_lateness_hours=48,
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


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (ALSConfig, {"rank": 1001}, "rank must be <= 1000"),
        (ALSConfig, {"num_blocks": 0}, "num_blocks must be >= 1"),
        (PrepareConfig, {"window_days": 1}, "window_days must be >= 2"),
        (PrepareConfig, {"window_days": 3, "holdout_days": 3}, "holdout_days (3) must be <"),
        (PrepareConfig, {"epsilon": 0.0}, "epsilon must be > 0"),
        (PrepareConfig, {"scheme": "sqrt"}, "scheme must be one of"),
        (PublishConfig, {"top_n": 0}, "top_n must be >= 1"),
    ],
)
def test_every_bound_is_checked_on_construction(cls, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        cls(**kwargs)


def test_options_and_params_are_generated_from_the_same_settings():
    """One default and one bound per setting: the jobs' options and the DAG's params agree
    with the dataclass because both are made from it."""
    parser = argparse.ArgumentParser()
    config.add_options(parser, ALSConfig)
    args = parser.parse_args(["--rank", "8", "--reg-param", "0.5"])
    built = config.from_options(ALSConfig, args)
    assert built == ALSConfig(rank=8, reg_param=0.5)
    assert parser.parse_args([]).max_iter == ALSConfig().max_iter
    assert config.param_schema(ALSConfig, "rank") == {
        "default": 32,
        "type": "integer",
        "description": "ALS rank (latent factors)",
        "minimum": 1,
        "maximum": 1000,
    }
    assert config.param_schema(PrepareConfig, "item_level")["enum"] == ["artist", "track"]
    with pytest.raises(SystemExit):  # argparse refuses a value outside the choices
        choices = argparse.ArgumentParser()
        config.add_options(choices, PrepareConfig)
        choices.parse_args(["--scheme", "sqrt"])
