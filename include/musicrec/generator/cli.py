"""``musicrec-generate``: write generated listening logs into a landing folder.

Days are generated in parallel processes; each day depends only on (seed, day), so the bytes
are the same whatever the number of processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

from musicrec.generator.events import generate_day
from musicrec.generator.world import World, WorldSpec, build_world
from musicrec.generator.writer import FaultRates, write_day

log = logging.getLogger("musicrec.generate")
_WORLD: World | None = None


def _init_worker(spec: WorldSpec) -> None:
    global _WORLD
    _WORLD = build_world(spec)


def _one_day(args: tuple[date, int, str, FaultRates]) -> dict:
    day, events_per_day, out, rates = args
    assert _WORLD is not None
    return write_day(_WORLD, generate_day(_WORLD, day, events_per_day), Path(out), rates)


def generate(
    out: Path,
    start: date,
    days: int,
    events_per_day: int,
    spec: WorldSpec,
    rates: FaultRates,
    processes: int | None = None,
) -> list[dict]:
    """Write ``days`` days of logs from ``start``; return each day's truth."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(start + timedelta(days=i), events_per_day, str(out), rates) for i in range(days)]
    workers = max(1, min(processes or os.cpu_count() or 1, days))
    if workers == 1:
        _init_worker(spec)
        results = [_one_day(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(spec,)) as pool:
            results = list(pool.map(_one_day, jobs))
    (out / "_truth" / "world.json").write_text(json.dumps(asdict(spec), indent=1))
    return results


def write_catalog(spec: WorldSpec, path: Path) -> None:
    """Artist id, name and latent genre: for display and for checking what ALS found."""
    world = build_world(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i, (name, genre) in enumerate(zip(world.artist_names, world.artist_genre, strict=True)):
            f.write(
                json.dumps(
                    {"artist_id": f"a{i:07d}", "artist_name": str(name), "genre": int(genre)}
                )
                + "\n"
            )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="musicrec-generate", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="landing folder (listening_events)")
    p.add_argument("--start", type=date.fromisoformat, required=True, help="first day, ISO")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--events-per-day", type=int, default=100_000)
    p.add_argument("--users", type=int, default=WorldSpec.users)
    p.add_argument("--artists", type=int, default=WorldSpec.artists)
    p.add_argument("--genres", type=int, default=WorldSpec.genres)
    p.add_argument("--seed", type=int, default=WorldSpec.seed)
    p.add_argument("--processes", type=int, default=None)
    p.add_argument(
        "--faults",
        choices=["none", "testing"],
        default="none",
        help="'testing' injects every defect kind (off for the demo)",
    )
    p.add_argument("--catalog", type=Path, default=None, help="also write artists.jsonl here")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parser().parse_args(argv)
    if args.days < 1 or args.events_per_day < 1:
        parser().error("--days and --events-per-day must be >= 1")
    spec = WorldSpec(users=args.users, artists=args.artists, genres=args.genres, seed=args.seed)
    rates = FaultRates.testing() if args.faults == "testing" else FaultRates()
    results = generate(
        args.out, args.start, args.days, args.events_per_day, spec, rates, args.processes
    )
    if args.catalog:
        write_catalog(spec, args.catalog)
    for r in results:
        log.info("%s: %d lines, %d clean events", r["day"], r["lines"], r["accepted"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
