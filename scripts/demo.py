"""`make demo`: two weeks of generated listening logs through the Airflow DAG, then a summary.

1. generate 14 days of logs (about 20k plays a day, a 2,000-user world with latent genres);
2. load the first days as history: one ingest + validate interval over all of them;
3. run the DAG with Airflow (dag.test on a local SQLite metadata DB) for each remaining day,
   in order: ingest -> validate -> prepare -> train -> evaluate -> publish;
4. print what happened and where to look.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import airflow_local
from musicrec import constants as c
from musicrec.generator.cli import generate, write_catalog
from musicrec.generator.world import WorldSpec
from musicrec.generator.writer import FaultRates
from musicrec.runtime import submit


def history(root: Path, start: date, end: date) -> None:
    span = [
        "--data-root",
        str(root),
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--run-id",
        "demo-history",
    ]
    print(f"loading history {start} .. {end - timedelta(days=1)} as one interval")
    log = root / "demo-history.log"
    with open(log, "w") as out:
        for job in ("ingest", "validate"):
            if submit.run(job, span, stdout=out, stderr=subprocess.STDOUT) != 0:
                raise SystemExit(f"{job} of the history failed; see {log}")


def summary(root: Path, dag_days: list[date]) -> None:
    print("\n=== ingestion (read = accepted + quarantined + duplicates) ===")
    print("batch                  read  accepted  quarantined  duplicates  validation")
    for path in sorted((root / c.MANIFESTS / "ingest").glob("*.json")):
        k = json.loads(path.read_text())["counts"]
        v = root / c.MANIFESTS / "validate" / path.name
        ok = json.loads(v.read_text())["success"] if v.exists() else None
        print(
            f"{path.stem:18s} {k['read']:8d} {k['accepted']:9d} {k['quarantined']:12d} "
            f"{k['duplicates']:11d}  {'passed' if ok else 'FAILED' if ok is False else '-'}"
        )
    last = dag_days[-1]
    metrics_path = root / c.REPORTS / "evaluation" / f"artist-{last}" / "metrics.json"
    if metrics_path.exists():
        m = json.loads(metrics_path.read_text())
        print(f"\n=== model artist-{last} vs most-popular baseline (holdout {last}) ===")
        for subset in ("all", "new"):
            als, pop = m["results"][subset]["als"], m["results"][subset]["popularity"]
            print(
                f"{subset:4s} streams: NDCG@10 {als['ndcg@10']:.3f} vs {pop['ndcg@10']:.3f} "
                f"({als['ndcg@10'] / max(pop['ndcg@10'], 1e-9):.1f}x), precision@10 "
                f"{als['precision@10']:.3f} vs {pop['precision@10']:.3f}"
            )
        print(f"quality gate: {'PASSED' if m['gate']['passed'] else 'FAILED'}")
    db = root / c.SERVING / "serving.db"
    if db.exists():
        con = sqlite3.connect(db)
        user = con.execute(
            "SELECT user_id FROM recommendations ORDER BY user_id LIMIT 1"
        ).fetchone()[0]
        print(f"\n=== five recommendations for {user} ===")
        for rank, name in con.execute(
            "SELECT rank, item_name FROM recommendations WHERE user_id=? ORDER BY rank LIMIT 5",
            (user,),
        ):
            print(f"  {rank}. {name}")
        top = con.execute(
            "SELECT item_id, item_name FROM items ORDER BY streams DESC LIMIT 1"
        ).fetchone()
        print(f"=== five artists related to {top[1]} ===")
        for rank, name in con.execute(
            "SELECT rank, related_item_name FROM related_items WHERE "
            "item_id=? ORDER BY rank LIMIT 5",
            (top[0],),
        ):
            print(f"  {rank}. {name}")
    print(f"\nreports:   {root / c.REPORTS / 'evaluation'}/<model>/report.html")
    print(f"Data Docs: {root / c.REPORTS / 'data_docs'}/<batch>/index.html")
    print(f"serving:   {db}   manifests: {root / c.MANIFESTS}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", type=Path, default=Path("data"))
    p.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--dag-days", type=int, default=3, help="last days run through Airflow")
    p.add_argument("--events-per-day", type=int, default=20_000)
    args = p.parse_args()
    root = args.data_root.resolve()
    spec = WorldSpec(users=2000, artists=400, genres=12, seed=42)
    print(f"generating {args.days} days x ~{args.events_per_day} plays into {root}/landing")
    generate(
        root / c.LANDING_EVENTS, args.start, args.days, args.events_per_day, spec, FaultRates()
    )
    write_catalog(spec, root / "landing" / "catalog" / "artists.jsonl")
    first_dag_day = args.start + timedelta(days=args.days - args.dag_days)
    if first_dag_day > args.start:
        history(root, args.start, first_dag_day)
    env = airflow_local.environment(root / ".airflow", root)
    airflow_local.prepare_home(env)
    dag_days = [first_dag_day + timedelta(days=i) for i in range(args.dag_days)]
    conf = {"window_days": args.days - 1, "rank": 24, "max_iter": 10, "top_n": 50}
    print(f"running the Airflow DAG for {', '.join(map(str, dag_days))}")
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("run_dag.py")),
            *map(str, dag_days),
            "--conf",
            json.dumps(conf),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    (root / "demo-airflow.log").write_text(out.stdout + out.stderr)
    for line in out.stdout.splitlines():
        if line.startswith("DAGRUN "):
            run = json.loads(line[7:])
            print(f"  {run['date']}: {run['state']} in {run['wall_s']:.0f} s {run['tasks']}")
    summary(root, dag_days)
    print(f"Airflow task logs: {root / 'demo-airflow.log'}")
    return out.returncode


if __name__ == "__main__":
    raise SystemExit(main())
