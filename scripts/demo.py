"""`make demo`: two weeks of generated listening logs through the pipeline, then a summary."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from pathlib import Path

from musicrec import constants as c
from musicrec import submit
from musicrec.generator.cli import generate, write_catalog
from musicrec.generator.world import WorldSpec
from musicrec.generator.writer import FaultRates


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", type=Path, default=Path("data"))
    p.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--events-per-day", type=int, default=40_000)
    args = p.parse_args()
    root = args.data_root.resolve()
    spec = WorldSpec(users=3000, artists=600, genres=12, seed=42)
    print(f"generating {args.days} days x ~{args.events_per_day} events into {root}/landing")
    generate(
        root / c.LANDING_EVENTS, args.start, args.days, args.events_per_day, spec, FaultRates()
    )
    write_catalog(spec, root / "landing" / "catalog" / "artists.jsonl")
    rows = []
    for i in range(args.days):
        day = args.start + timedelta(days=i)
        span = [
            "--data-root",
            str(root),
            "--start",
            day.isoformat(),
            "--end",
            (day + timedelta(days=1)).isoformat(),
            "--run-id",
            "demo",
        ]
        for job in ("ingest", "validate"):
            code = submit.run(job, span)
            if code != 0:
                print(f"{job} failed for {day} with exit code {code}", file=sys.stderr)
                return code
        batch = f"{day:%Y%m%d}T00_24h"
        counts = json.loads((root / c.MANIFESTS / "ingest" / f"{batch}.json").read_text())["counts"]
        rows.append((day, counts))
    print("\nday         read  accepted  quarantined  duplicates")
    for day, k in rows:
        print(
            f"{day}  {k['read']:7d}  {k['accepted']:8d}  {k['quarantined']:11d}  {k['duplicates']:10d}"
        )
    print(f"\nData Docs: {root / c.REPORTS / 'data_docs'}/<batch>/index.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
