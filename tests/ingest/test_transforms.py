"""Parsing and routing, table-driven: one line in, the expected outcome out."""

from __future__ import annotations

from datetime import date

import pytest
from musicrec import constants as c
from musicrec.config import IngestConfig, Interval
from musicrec.ingest.dedup import duplicate_copies, repeated_hashes, without_copies
from musicrec.ingest.transforms import (
    parse,
    route,
    stage_rows,
    staged_quarantine,
    staged_valid,
)
from musicrec.lake import io
from musicrec.schemas import ACCEPTED_SCHEMA
from pyspark.testing import assertDataFrameEqual

pytestmark = pytest.mark.unit

CFG = IngestConfig(
    data_root=".", interval=Interval.for_day(date(2026, 1, 5)), allowed_lateness_hours=48
)


def event(**overrides) -> str:
    fields = {
        "event_id": '"e1"',
        "user_id": '"u1"',
        "track_id": '"t1"',
        "artist_id": '"a1"',
        "event_ts": '"2026-01-05T10:00:00.000Z"',
        "ms_played": "200000",
        "track_duration_ms": "210000",
    }
    fields.update(overrides)
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items() if v is not None) + "}"


CASES = [
    # (line, expected reason, why)
    (event(), None, "a clean event"),
    (event(client_version='"8.1"'), None, "unknown extra fields are ignored"),
    (event(event_ts='"2026-01-03T00:30:00Z"'), None, "late, but within 48 h of the start"),
    ("", "empty_line", "blank line in a file"),
    ("   ", "empty_line", "whitespace only"),
    (event()[:40], "malformed_json", "truncated JSON"),
    ("[1, 2, 3]", "malformed_json", "valid JSON, but not an object"),
    (event(ms_played='"n/a"'), "bad_type", "ms_played is text"),
    (event(event_ts='"yesterday"'), "bad_type", "unparseable timestamp"),
    (event(user_id=None), "missing_field", "user_id absent"),
    (event(track_id="null"), "missing_field", "track_id null"),
    (event(artist_id='""'), "missing_field", "artist_id empty"),
    (event(ms_played="-1"), "out_of_range", "negative play time"),
    (event(ms_played="99999999999"), "out_of_range", "absurd play time"),
    (event(track_duration_ms="0"), "out_of_range", "zero-length track"),
    (event(event_ts='"2026-01-02T23:59:59Z"'), "event_time_out_of_window", "too late"),
    (event(event_ts='"2026-01-06T01:00:00Z"'), "event_time_out_of_window", "in the future"),
    (event(ms_played='"n/a"', user_id=None), "bad_type", "first failing check wins"),
]


def lines_frame(spark, values, files=None):
    files = files or ["f"] * len(values)
    rows = [(v, f, i) for i, (v, f) in enumerate(zip(values, files, strict=True))]
    return spark.createDataFrame(rows, "value string, source_file string, _pos long")


def test_routing_table(spark):
    routed = route(parse(lines_frame(spark, [c[0] for c in CASES])), CFG)
    # The raw text survives for quarantined lines only (valid ones live on as typed fields).
    rows = [(i, line if reason else None, reason) for i, (line, reason, *_) in enumerate(CASES)]
    expected = spark.createDataFrame(rows, "_pos long, value string, reason string")
    assertDataFrameEqual(routed.select("_pos", "value", "reason"), expected)


def test_details_name_the_problem(spark):
    lines = [event(user_id=None, artist_id=None), event(ms_played='"n/a"'), event(ms_played="-5")]
    details = [
        r.detail for r in route(parse(lines_frame(spark, lines)), CFG).orderBy("_pos").collect()
    ]
    assert details[0] == "user_id,artist_id"
    assert details[1] == "ms_played"
    assert details[2].startswith("ms_played=-5")


def test_invalid_utf8_is_quarantined(spark, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(
        event(artist_name='"Bj\xc3\xb6rk"').encode()[:-1].replace(b"Bj", b"B\xff")
        + b"}\n"
        + event(event_id='"e2"').encode()
        + b"\n"
    )
    raw = spark.read.text(str(path)).selectExpr("value", "'f' as source_file", "0L as _pos")
    routed = route(parse(raw), CFG)
    assert sorted(r.reason or "ok" for r in routed.collect()) == ["not_utf8", "ok"]
    quarantined = staged_quarantine(stage_rows(routed, "b"), "b").collect()
    assert "\ufffd" in quarantined[0].raw_line  # stored as valid UTF-8, bad bytes marked


def staged(spark, tmp_path, lines, files=None):
    """Lines routed and staged as the job stages them, read back with each row's identity."""
    routed = route(parse(lines_frame(spark, lines, files)), CFG)
    folder = tmp_path / "stage"
    io.write_staged(stage_rows(routed, "b"), folder, [c.EVENT_DATE, c.BATCH], {})
    return io.read_staged(spark, folder, ACCEPTED_SCHEMA)


def test_staged_quarantine_rows_come_back_as_they_were_routed(spark, tmp_path):
    lines = [event(), event(ms_played="-5"), "not json", event(event_id='"e2"')]
    back = staged_quarantine(staged(spark, tmp_path, lines), "b")
    assert sorted((r.raw_line, r.reason, r.source_file, r.batch) for r in back.collect()) == [
        ("not json", "malformed_json", "f", "b"),
        (event(ms_played="-5"), "out_of_range", "f", "b"),
    ]
    assert back.where("detail IS NULL").count() == 0


def test_first_delivery_wins_and_seen_ids_are_duplicates(spark, tmp_path):
    late = '"2026-01-04T23:00:00.000Z"'
    lines = [
        event(event_id='"e1"'),
        event(event_id='"e2"'),
        event(event_id='"e1"'),
        event(event_id='"e3"'),
        event(event_id='"e1"', ms_played="-1"),
        event(event_id='"e4"', user_id='"first"'),
        event(event_id='"e4"', user_id='"second"'),
        event(event_id='"e5"', user_id='"today"'),
        event(event_id='"e5"', user_id='"yesterday"', event_ts=late),
    ]
    files = ["hour=01/p", "hour=01/p", "hour=00/p", "hour=02/p", "hour=00/p"] + ["hour=03/p"] * 4
    valid = staged_valid(staged(spark, tmp_path, lines, files))
    seen = spark.createDataFrame([("e3",)], "event_id string")
    copies = duplicate_copies(valid, seen)
    assert copies.count() == 4
    kept = without_copies(valid, copies)
    assert kept.columns == list(ACCEPTED_SCHEMA.fieldNames())
    # e1: the copy in the earlier hour file wins; the invalid e1 is not a competitor. e3 was
    # seen before. e4: within a file, the earlier line wins; e5: the earlier event date.
    assert sorted((r.event_id, r.source_file, r.user_id) for r in kept.collect()) == [
        ("e1", "hour=00/p", "u1"),
        ("e2", "hour=01/p", "u1"),
        ("e4", "hour=03/p", "first"),
        ("e5", "hour=03/p", "yesterday"),
    ]


def test_nothing_seen_and_no_repeats_means_no_duplicates(spark, tmp_path):
    lines = [event(event_id='"a"'), event(event_id='"b"'), event(event_id='"a"', user_id='""')]
    valid = staged_valid(staged(spark, tmp_path, lines))
    assert duplicate_copies(valid, None).count() == 0
    assert repeated_hashes(valid, None).isEmpty()
    assert without_copies(valid, duplicate_copies(valid, None)).count() == 2


def test_expected_counts_per_date_leave_out_a_date_with_only_duplicates(spark, tmp_path):
    from musicrec.ingest.reconcile import expected as count_outcomes

    late = '"2026-01-04T23:00:00.000Z"'
    lines = [
        event(event_id='"a"'),
        event(event_id='"b"'),
        event(event_id='"a"'),  # a redelivery in the interval
        event(event_id='"old"', event_ts=late),  # accepted by another batch already
        event(event_id='"c"', ms_played="-5"),  # quarantined
    ]
    stage = staged(spark, tmp_path, lines)
    seen = spark.createDataFrame([("old",)], "event_id string")
    expected = count_outcomes(stage, duplicate_copies(staged_valid(stage), seen))
    # 2026-01-04 has a valid line but nothing to accept: its partition must not be kept.
    assert expected == {
        "read": 5,
        "duplicates": 2,
        "accepted_by_date": {"2026-01-05": 2},
        "quarantined_by_reason": {"out_of_range": 1},
    }


def test_event_date_is_the_utc_date_of_valid_lines_only(spark):
    times = ["2026-01-05T00:00:00.000Z", "2026-01-04T23:59:59.999999Z", "2026-01-03T00:00:00Z"]
    lines = [event(event_ts=f'"{t}"') for t in times] + [event(ms_played="-5")]
    routed = route(parse(lines_frame(spark, lines)), CFG).orderBy("_pos")
    days = [r.event_date for r in routed.collect()]
    assert days == [date(2026, 1, 5), date(2026, 1, 4), date(2026, 1, 3), None]
    # The same as Spark's own conversion (the session is UTC).
    check = routed.where("reason IS NULL").where("event_date <> to_date(event_ts)")
    assert check.count() == 0
