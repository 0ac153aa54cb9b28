"""Nothing may be lost: what an interval's lines should have become, and the check against
what was written.

``expected`` counts the staged lines (one row per line read) and the duplicate copies;
``written`` counts the published tables; ``check`` compares every event date and reason.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from musicrec import constants as c
from musicrec.exceptions import MusicrecError
from musicrec.ingest.dedup import DUP_DATE
from musicrec.ingest.transforms import STAGED_QUARANTINE


def expected(staged: DataFrame, copies: DataFrame | None) -> dict[str, Any]:
    """Read, duplicates, accepted rows per event date and quarantined lines per reason.

    One aggregate over the staged partition column and the quarantine reason (a handful of
    groups); the duplicate copies, a small frame, carry their own dates; the accepted rows of
    a date are the difference.
    """
    dups: dict = {}
    if copies is not None:
        per_date = copies.groupBy(DUP_DATE).agg(F.count(F.lit(1)).alias("n"))
        dups = {r[DUP_DATE]: r["n"] for r in per_date.collect()}
    date = F.col(c.EVENT_DATE)
    reason = F.when(date.isNull(), F.col(STAGED_QUARANTINE[c.QUARANTINE_REASON]))
    groups = staged.groupBy(date, reason.alias(c.QUARANTINE_REASON)).agg(
        F.count(F.lit(1)).alias("n")
    )
    read, per_day, quarantined = 0, {}, {}
    for r in groups.collect():
        read += r["n"]
        if r[c.EVENT_DATE] is not None:
            per_day[r[c.EVENT_DATE]] = r["n"]
        else:
            quarantined[r[c.QUARANTINE_REASON]] = r["n"]
    accepted = {d.isoformat(): n - dups.get(d, 0) for d, n in per_day.items()}
    return {
        "read": read,
        "duplicates": sum(dups.values()),
        "accepted_by_date": {d: n for d, n in sorted(accepted.items()) if n > 0},
        "quarantined_by_reason": dict(sorted(quarantined.items())),
    }


def written(
    accepted: DataFrame | None, quarantine: DataFrame | None, batch: str
) -> tuple[dict[str, int], dict[str, int]]:
    """Accepted rows per event date and quarantined rows per reason of ``batch``, from the
    tables as published (``None``: the table does not exist yet)."""
    by_date: dict[str, int] = {}
    if accepted is not None:
        for row in accepted.where(F.col(c.BATCH) == batch).groupBy(c.EVENT_DATE).count().collect():
            by_date[row[c.EVENT_DATE].isoformat()] = row["count"]
    by_reason: dict[str, int] = {}
    if quarantine is not None:
        rows = quarantine.where(F.col(c.BATCH) == batch).groupBy(c.QUARANTINE_REASON).count()
        for row in rows.collect():
            by_reason[row[c.QUARANTINE_REASON]] = row["count"]
    return by_date, by_reason


def check(
    want: dict[str, Any], accepted_by_date: dict[str, int], quarantined: dict[str, int]
) -> dict[str, Any]:
    """The manifest's counts; raises if any date or reason differs from what was expected."""
    accepted = sum(accepted_by_date.values())
    counts = {
        "read": want["read"],
        "accepted": accepted,
        "accepted_by_event_date": accepted_by_date,
        "quarantined": sum(quarantined.values()),
        "quarantined_by_reason": quarantined,
        "duplicates": want["duplicates"],
    }
    total = accepted + counts["quarantined"] + want["duplicates"]
    if (
        total != want["read"]
        or accepted_by_date != want["accepted_by_date"]
        or quarantined != want["quarantined_by_reason"]
    ):
        raise MusicrecError(
            f"reconciliation failed, nothing may be lost: written {counts}, "
            f"expected from the parsed lines {want}"
        )
    return counts
