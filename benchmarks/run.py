"""`make bench BENCH=small|medium|large`: measured side by side in one run.

Sections: ingestion throughput against a bare read-and-write of the same files (target
>= 0.7x); ALS (the product's train step, MLlib defaults and the `implicit` library on the same
split, quality scored by the product's evaluation); one daily DAG run on a full window.
Results go to benchmarks/results/latest.json and are printed as Markdown tables; ``--only``
measures some sections and keeps the others' last results (each carries its date and commit).
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

from musicrec.generator.cli import generate
from musicrec.generator.world import WorldSpec
from musicrec.generator.writer import FaultRates
from musicrec.runtime import submit

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
            raise SystemExit(
                f"ingest failed during the benchmark:\n{submit.failure_text(done.stderr)}"
            )
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


PIPELINE_EVENTS = {"small": 100_000, "medium": 1_000_000, "large": 1_000_000}


def previous() -> dict:
    path = ROOT / "benchmarks" / "results" / "latest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--only",
        default="ingest,als,pipeline",
        help="comma-separated sections to measure (ingest, als, pipeline, import); the "
        "others keep their last results",
    )
    p.add_argument(
        "--layouts",
        default="mllib,half-gridify,full-gridify",
        help="ALS layouts to measure (the default layout always; large: full-gridify takes "
        "about 20 minutes a fit)",
    )
    p.add_argument(
        "--formats",
        default="hetrec2k,lastfm360k,lastfm1k",
        help="import section: datasets to write at their real size and import",
    )
    args = p.parse_args()
    sections = set(args.only.split(","))
    import pyspark

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    stamp = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "size": args.size,
    }
    old = previous()
    result = {
        **stamp,
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "java": _java(),
            "spark": pyspark.__version__,
            "python": platform.python_version(),
        },
        "ingest": old.get("ingest", {}),
        "als": old.get("als", []),
        "pipeline": old.get("pipeline", {}),
        "import": old.get("import", {}),
    }
    if "ingest" in sections:
        work = Path(tempfile.mkdtemp(prefix="musicrec-bench-"))
        try:
            result["ingest"] = {**ingest_benchmark(SIZES[args.size], work, args.repeats), **stamp}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if "als" in sections:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from als_bench import als_benchmark

        # Large: no search (each fit is minutes); the values both searches chose at medium.
        medium = next((a for a in result["als"] if a.get("size") == "medium"), None)
        fixed = medium["params"] if args.size == "large" and medium else None
        search = args.size != "large"
        measure = tuple(args.layouts.split(","))
        entry = {
            **als_benchmark(args.size, args.repeats, search=search, fixed=fixed, measure=measure),
            **stamp,
        }
        shutil.rmtree(entry.pop("work"), ignore_errors=True)
        result["als"] = [a for a in result["als"] if a.get("size") != args.size] + [entry]
    if "pipeline" in sections:
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "pipeline_bench.py"),
                "--events-per-day",
                str(PIPELINE_EVENTS[args.size]),
            ],
            capture_output=True,
            text=True,
        )
        line = next((x for x in out.stdout.splitlines() if x.startswith("PIPELINE ")), None)
        if line is None:
            raise SystemExit(f"pipeline benchmark failed:\n{submit.failure_text(out.stderr)}")
        result["pipeline"] = {**json.loads(line[9:]), **stamp}
    if "import" in sections:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from import_bench import import_benchmark

        formats = tuple(args.formats.split(","))
        measured = {k: {**v, **stamp} for k, v in import_benchmark(formats).items()}
        result["import"] = {**result["import"], **measured}
    out_file = ROOT / "benchmarks" / "results" / "latest.json"
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    written = [out_file, *plots(result, out_file.parent)]
    print("written " + ", ".join(str(p) for p in written))
    return 0


LAYOUT_KEYS = (
    ("half_gridify", "half gridify"),
    ("full_gridify", "full gridify"),
    ("mllib", "MLlib"),
)


def layouts_of(a: dict) -> dict:
    """Per-layout figures of one size (empty for results from before the layouts)."""
    return a.get("layouts") or {}


def plots(r: dict, folder: Path) -> list[Path]:
    """als.png: fit time and NDCG@10 per size, each layout against `implicit` and popularity."""
    als = [a for a in r.get("als", []) if layouts_of(a)]
    if not als:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = {"small": 0, "medium": 1, "large": 2}
    als = sorted(als, key=lambda a: order.get(a["size"], 9))
    sizes = [f"{a['size']}\n{a['nnz'] / 1e6:.2g}M pairs" for a in als]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))

    def grouped(ax, bars: list[tuple[str, object]], ylabel: str) -> None:
        width = 0.8 / len(bars)
        for i, (label, value) in enumerate(bars):
            xs = [x + (i - (len(bars) - 1) / 2) * width for x in range(len(als))]
            ax.bar(xs, [value(a) for a in als], width, label=label)  # type: ignore[operator]
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(len(als)), sizes)
        ax.legend(fontsize=8)

    def layout(key: str, field: str):
        return lambda a: layouts_of(a).get(key, {}).get(field, 0.0)

    times = [(label, layout(key, "fit_s")) for key, label in LAYOUT_KEYS]
    times.append(("implicit CG", lambda a: a["implicit_cg_s"]))
    grouped(left, times, "fit seconds (log), rank 32, 10 iterations")
    left.set_yscale("log")
    quality = [(label, layout(key, "ndcg10")) for key, label in LAYOUT_KEYS]
    quality += [
        ("implicit CG", lambda a: a["implicit_ndcg10"]),
        ("most popular", lambda a: a["popularity_ndcg10"]),
    ]
    grouped(right, quality, "NDCG@10, holdout day, all streams")
    fig.suptitle(f"ALS layouts ({r['machine']['cores']} cores, Spark {r['machine']['spark']})")
    fig.tight_layout()
    path = folder / "als.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def _each(figures: list[dict | None], field: str, spec: str) -> str:
    """One field of each layout's figures, "-" for a layout not measured."""
    return ", ".join("-" if x is None else format(x.get(field) or 0, spec) for x in figures)


def als_rows(r: dict) -> list[str]:
    lines = [
        "| size | users x items, nnz | half gridify s | full gridify s | MLlib s | implicit CG s "
        "| half / implicit | MLlib / half | shuffle MB/iter (half, full, MLlib) "
        "| NDCG@10 (half, full, MLlib, implicit, popularity) | peak RSS MB (half, full, MLlib) "
        "| runs | date, commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in r["als"]:
        ls = layouts_of(a)
        if not ls:
            continue
        measured = [ls.get(k) for k, _ in LAYOUT_KEYS]  # None: not measured at this size
        half, _, mllib = measured
        assert half is not None  # the default layout is always measured
        quality = _each(measured, "ndcg10", ".3f")
        quality += f", {a['implicit_ndcg10']:.3f}, {a['popularity_ndcg10']:.3f}"
        versus_mllib = "-" if mllib is None else f"{mllib['fit_s'] / half['fit_s']:.1f}x"
        # The median of each repetition's pair (half gridify, then `implicit` right after).
        versus_implicit = half.get("implicit_ratio", half["fit_s"] / a["implicit_cg_s"])
        lines.append(
            f"| {a['size']} | {a['users']:,} x {a['items']:,}, {a['nnz']:,} | "
            f"{' | '.join(_each([x], 'fit_s', '.1f') for x in measured)} | "
            f"{a['implicit_cg_s']:.1f} | {versus_implicit:.2f}x | "
            f"{versus_mllib} | {_each(measured, 'shuffle_write_mb_per_iter', ',.0f')} | "
            f"{quality} | {_each(measured, 'peak_rss_mb', ',.0f')} | "
            f"{a['repetitions']} | {a.get('date', '')[:10]}, {a.get('git_commit', '')} |"
        )
    return lines


def step_rows(r: dict) -> list[str]:
    """The default layout's model through the train, evaluate and publish steps (each a whole
    spark-submit), evaluate and publish against the train step (issue 18: <= 2x at large)."""
    lines = [
        "| size | train step s | evaluate s (/ train) | publish s (/ train) "
        "| peak RSS MB (train, evaluate, publish) | date, commit |",
        "|---|---|---|---|---|---|",
    ]
    for a in r["als"]:
        half = layouts_of(a).get(a.get("default_layout", "").replace("-", "_"))
        if not half or "train_step_s" not in half:
            continue
        train = half["train_step_s"]
        versus = [
            "-" if key not in a else f"{a[key]:.0f} ({a[key] / train:.2f}x)"
            for key in ("evaluate_s", "publish_s")
        ]
        rss = [half.get("peak_rss_mb"), a.get("evaluate_peak_rss_mb"), a.get("publish_peak_rss_mb")]
        lines.append(
            f"| {a['size']} | {train:.0f} | {' | '.join(versus)} | "
            + ", ".join("-" if x is None else f"{x:,.0f}" for x in rss)
            + f" | {a.get('date', '')[:10]}, {a.get('git_commit', '')} |"
        )
    return lines


def markdown(r: dict) -> str:
    lines = []
    i = r.get("ingest") or {}
    if i:
        lines += [
            "| events | full ingest ev/s | bare read+write ev/s | ratio | runs (median) "
            "| date, commit |",
            "|---|---|---|---|---|---|",
            f"| {i['events']:,} | {i['events_per_s']:,.0f} | {i['bare_events_per_s']:,.0f} | "
            f"{i['ratio_vs_bare']:.2f} | {i['repetitions']} | {i.get('date', '')[:10]}, "
            f"{i.get('git_commit', '')} |",
            "",
        ]
    if r.get("als"):
        lines += [*als_rows(r), "", *step_rows(r), ""]
    pl = r.get("pipeline") or {}
    if pl:
        tasks = ", ".join(f"{k} {v:.0f}" for k, v in pl["task_s"].items())
        ratio = pl.get("prepare_window_ratio")
        ratio = f"{ratio:.2f}x" if ratio is not None else "-"
        lines += [
            "| events/day | window | DAG run wall s | by task (s) | Airflow overhead s "
            "| prepare 28 d / 7 d | date, commit |",
            "|---|---|---|---|---|---|---|",
            f"| {pl['events_per_day']:,} | {pl['window_days']} d | {pl['wall_s']:.0f} | {tasks} | "
            f"{pl['airflow_overhead_s']:.0f} | {ratio} | {pl.get('date', '')[:10]}, "
            f"{pl.get('git_commit', '')} |",
        ]
    lines += import_rows(r.get("import") or {})
    return "\n".join(lines)


def import_rows(imp: dict) -> list[str]:
    if not imp:
        return []
    out = [
        "",
        "| dataset (generated, real size) | rows | import s (target) | peak RSS MB (target) "
        "| rejected | date, commit |",
        "|---|---|---|---|---|---|",
    ]
    for fmt, m in imp.items():
        out.append(
            f"| {fmt} ({m['file_mb']:,} MB) | {m['counts']['rows_read']:,} | "
            f"{m['seconds']:.0f} ({m['target_seconds']}) | {m['peak_rss_mb']:,} "
            f"({m['target_peak_rss_mb']:,}) | {m['counts']['rejected_rows']} | "
            f"{m.get('date', '')[:10]}, {m.get('git_commit', '')} |"
        )
    for fmt, m in imp.items():
        steps = m.get("steps")
        if steps:
            ndcg = steps["ndcg_at_10"]
            out.append("")
            out.append(
                f"On the {fmt} snapshot: "
                + ", ".join(
                    f"{k} {steps[k]['seconds']:.0f} s ({steps[k]['peak_rss_mb']:,} MB)"
                    for k in ("train", "evaluate", "publish")
                )
                + f"; NDCG@10 {ndcg['als']:.3f} against popularity {ndcg['popularity']:.3f}."
            )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
