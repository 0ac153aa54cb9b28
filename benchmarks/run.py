"""`make bench BENCH=small|medium|large`: measured side by side in one run.

Implemented so far: ingestion throughput against a bare read-and-write of the same files
(issue: >= 0.7x). Results go to benchmarks/results/latest.json (shape from the benchmarks
issue; sections not measured yet are left empty) and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from musicrec import submit
from musicrec.generator.cli import generate
from musicrec.generator.world import WorldSpec
from musicrec.generator.writer import FaultRates

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": 500_000, "medium": 5_000_000, "large": 10_000_000}
DAY = date(2026, 1, 5)


def _java() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True)
    return (out.stderr or out.stdout).splitlines()[0]


def ingest_benchmark(events: int, work: Path, repeats: int) -> dict:
    landing = work / "data" / "landing" / "listening_events"
    spec = WorldSpec(users=max(2000, events // 50), artists=max(500, events // 500), seed=1)
    started = time.monotonic()
    (truth,) = generate(landing, DAY, 1, events, spec, FaultRates(), processes=1)
    generate_s = time.monotonic() - started
    env = submit.environment()
    full, bare = [], []
    for _ in range(repeats):  # alternate the two so machine noise hits both alike
        args = [
            "--data-root",
            str(work / "data"),
            "--start",
            DAY.isoformat(),
            "--end",
            "2026-01-06",
        ]
        done = subprocess.run(
            submit.command("ingest", args), capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            raise SystemExit(f"ingest failed during the benchmark:\n{done.stderr[-3000:]}")
        manifest = json.loads((work / "data/manifests/ingest/20260105T00_24h.json").read_text())
        full.append(manifest["seconds"])
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bare_read_write.py"),
                str(landing / "dt=2026-01-05"),
                str(work / "bare"),
                str(work / "ck"),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        bare.append(
            json.loads(next(x for x in out.stdout.splitlines() if x.startswith("BARE "))[5:])[
                "seconds"
            ]
        )
    full_s, bare_s = sorted(full)[len(full) // 2], sorted(bare)[len(bare) // 2]
    lines = truth["lines"]
    return {
        "events": lines,
        "events_per_s": lines / full_s,
        "bare_events_per_s": lines / bare_s,
        "ratio_vs_bare": bare_s / full_s,
        "seconds": full_s,
        "bare_seconds": bare_s,
        "repetitions": repeats,
        "generate_s": generate_s,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="musicrec-bench-"))
    try:
        ingest = ingest_benchmark(SIZES[args.size], work, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import pyspark

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "size": args.size,
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "java": _java(),
            "spark": pyspark.__version__,
            "python": platform.python_version(),
        },
        "ingest": ingest,
        "als": [],
        "pipeline": {},
    }
    out = ROOT / "benchmarks" / "results" / "latest.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| events | full ingest ev/s | bare read+write ev/s | ratio | repetitions (median) |")
    print("|---|---|---|---|---|")
    print(
        f"| {ingest['events']:,} | {ingest['events_per_s']:,.0f} | "
        f"{ingest['bare_events_per_s']:,.0f} | {ingest['ratio_vs_bare']:.2f} | "
        f"{ingest['repetitions']} |"
    )
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
