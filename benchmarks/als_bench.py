"""ALS on one generated interactions table: the product, MLlib defaults, and `implicit`.

Everything on the same train split, quality scored by the product's evaluation code on the
same holdout. Timings alternate between contenders across repetitions; medians are reported,
and each layout's ratio to `implicit` is the median of its repetitions' own pairs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from musicrec.generator.interactions import (
    AS_OF,
    SIZES,
    interactions,
    write_dictionaries,
    write_table,
)
from musicrec.runtime import submit

ROOT = Path(__file__).resolve().parents[1]
RANK, ITERATIONS = 32, 10


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB, each page once: the sum
    of their proportional set sizes (``smaps_rollup``). A plain VmRSS sum counts a page
    shared by two processes twice; Hadoop's local file system forks ``chmod`` for every file
    a Spark job writes, and each fork shows the whole JVM's pages until it execs (measured:
    2.6 GB JVM read as 5.1 GB trees), as a Python worker forked from its daemon does."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run a command; return its stdout and the peak RSS of its process tree."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.5)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{submit.failure_text(err)}")
    return out, peak[0]


def spark_script(script: str, args: list[str]) -> list[str]:
    return submit.app_command(ROOT / "benchmarks" / script, args)


def implicit_fit(train, use_cg: bool, reg: float, alpha: float):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's docs: BLAS threads off, its own threads on
        model = AlternatingLeastSquares(
            factors=RANK,
            iterations=ITERATIONS,
            regularization=reg,
            alpha=alpha,
            use_cg=use_cg,
            random_state=1,
            calculate_training_loss=False,
            num_threads=2,
        )
        started = time.monotonic()
        model.fit(train, show_progress=False)
        return model, time.monotonic() - started


def validation_ndcg(model, fit_part, val_part, users: int = 5000) -> float:
    """NDCG@10 of unseen items on a validation split (implicit's own ndcg_at_k breaks with
    scipy >= 1.15, so a few lines of numpy over its batch ``recommend``)."""
    rows = np.flatnonzero(np.diff(val_part.indptr) > 0)[:users]
    ids, _ = model.recommend(rows, fit_part[rows], N=10, filter_already_liked_items=True)
    discount = 1.0 / np.log2(np.arange(2, 12))
    total = 0.0
    for row, recs in zip(rows, ids, strict=True):
        relevant = set(val_part.indices[val_part.indptr[row] : val_part.indptr[row + 1]])
        dcg = sum(discount[k] for k, item in enumerate(recs) if item in relevant)
        total += dcg / discount[: min(len(relevant), 10)].sum()
    return total / max(len(rows), 1)


def implicit_tune(train) -> dict:
    """Its own conventions: regularization not scaled by counts, alpha on the raw rating."""
    from implicit.evaluation import train_test_split

    fit_part, val_part = train_test_split(train, train_percentage=0.8, random_state=1)
    fit_part, val_part = fit_part.tocsr(), val_part.tocsr()
    trials = []
    for reg in (1.0, 10.0, 30.0, 100.0):  # 10 was the edge of the earlier (0.01..10) grid
        for alpha in (1.0, 5.0, 10.0, 40.0):
            model, _ = implicit_fit(fit_part, True, reg, alpha)
            score = validation_ndcg(model, fit_part, val_part)
            trials.append({"regularization": reg, "alpha": alpha, "ndcg@10": float(score)})
    return max(trials, key=lambda t: t["ndcg@10"]) | {"trials": trials}


LAYOUTS = ("mllib", "half-gridify", "full-gridify")


def layout_args(common: list[str], layout: str, search: bool, fixed: dict | None) -> list[str]:
    """Train-step arguments: its own search (rank fixed), or the values chosen at medium."""
    from musicrec.model.search import ALPHA_GRID, REG_GRID

    args = [*common, "--layout", layout, "--rank", str(RANK), "--max-iter", str(ITERATIONS)]
    if search:
        regs = ",".join(str(r) for r in REG_GRID[layout])
        args += ["--search", "--search-ranks", str(RANK), "--search-reg-params", regs]
        args += ["--search-alphas", ",".join(str(a) for a in ALPHA_GRID[layout])]
    elif fixed and layout in fixed:
        args += [
            "--alpha",
            str(fixed[layout]["alpha"]),
            "--reg-param",
            str(fixed[layout]["reg_param"]),
        ]
    return args


def als_benchmark(
    size_name: str,
    repeats: int,
    search: bool,
    fixed: dict | None = None,
    measure: tuple[str, ...] = LAYOUTS,
) -> dict:
    """The layouts in ``measure`` (all three unless told) and `implicit`, side by side on one
    generated split. ``fixed``: {layout: {alpha, reg_param}, "implicit": {regularization,
    alpha}} instead of searching (large: the values every search chose at medium)."""
    import scipy.sparse as sp
    from musicrec.config import DEFAULT_LAYOUT

    if DEFAULT_LAYOUT not in measure or not set(measure) <= set(LAYOUTS):
        raise SystemExit(
            f"layouts {','.join(measure)}: must be among {','.join(LAYOUTS)} and include the "
            f"default, {DEFAULT_LAYOUT} (its model goes through the evaluate step)"
        )

    work = Path(tempfile.mkdtemp(prefix="musicrec-als-bench-"))
    env = submit.environment()
    size = SIZES[size_name]
    started = time.monotonic()
    splits = interactions(size, seed=1)
    table = work / "lake" / "interactions" / "artist"
    shape = write_table(splits, table)
    write_dictionaries(splits, work)  # for the publish step
    generate_s = time.monotonic() - started
    train_pd = splits["train"]
    csr = sp.csr_matrix(
        (train_pd["rating"].to_numpy(), (train_pd["user_idx"], train_pd["item_idx"])),
        shape=(size.users, size.items),
        dtype=np.float32,
    )
    del splits
    tuned = dict(fixed["implicit"]) if fixed else implicit_tune(csr)
    common = ["--data-root", str(work), "--interactions", str(table), "--as-of", AS_OF]
    runs: dict[str, dict] = {
        n: {"fit": [], "kernel": [], "step": [], "rss": 0.0, "meta": None, "search": []}
        for n in measure
    }
    implicit_s: dict[str, list[float]] = {"cg": [], "cholesky": []}
    chosen: dict[str, dict] = {}
    if search:  # each layout's own search, in a spark-submit of its own (not timed)
        for layout in measure:
            model_id = f"search-{layout}"
            args = layout_args(common, layout, True, None)
            run_measured(submit.command("train", [*args, "--model-id", model_id]), env)
            meta = json.loads((work / "models" / "runs" / model_id / "metadata.json").read_text())
            chosen[layout] = meta["params"]
            runs[layout]["search"] = meta["search"]
    else:
        chosen = dict(fixed or {})
    # The default layout runs last in each repetition, right before `implicit` CG: the pair's
    # ratio is measured minutes apart at most, and the reported ratio is their median.
    order = sorted(measure, key=lambda layout: layout == DEFAULT_LAYOUT)
    for rep in range(repeats):  # contenders alternated: machine noise hits them alike
        for layout in order:
            model_id = f"bench-{layout}"
            # A fresh application every time, as a daily train task runs: the fit includes
            # what a first fit costs (JIT, the first Arrow and shuffle passes).
            args = layout_args(common, layout, False, chosen)
            step_started = time.monotonic()
            _, rss = run_measured(submit.command("train", [*args, "--model-id", model_id]), env)
            runs[layout]["step"].append(time.monotonic() - step_started)
            meta = json.loads((work / "models" / "runs" / model_id / "metadata.json").read_text())
            runs[layout]["meta"] = meta
            runs[layout]["fit"].append(meta["timings"]["fit_seconds"])
            runs[layout]["kernel"].append(meta["fit"].get("kernel_seconds"))
            runs[layout]["rss"] = max(runs[layout]["rss"], rss)
        for name, use_cg in (("cg", True), ("cholesky", False)):
            model, seconds = implicit_fit(csr, use_cg, tuned["regularization"], tuned["alpha"])
            implicit_s[name].append(seconds)
            if name == "cg" and rep == 0:
                factors = work / "implicit.npz"
                np.savez(factors, users=model.user_factors, items=model.item_factors)

    # Quality: the default layout through the product's evaluate step (with popularity), the
    # others and `implicit` scored by the same ranking code on the same holdout.
    default_dir = work / "models" / "runs" / f"bench-{DEFAULT_LAYOUT}"
    evaluate = [*common, "--model", str(default_dir), "--min-lift", "0", "--max-drop", "1"]
    evaluate_started = time.monotonic()
    _, evaluate_rss = run_measured(submit.command("evaluate", evaluate), env)
    evaluate_s = time.monotonic() - evaluate_started
    metrics = json.loads(
        (work / "reports" / "evaluation" / default_dir.name / "metrics.json").read_text()
    )["results"]
    # Then the same model published (recommendations for every user, related items, SQLite).
    publish_started = time.monotonic()
    _, publish_rss = run_measured(
        submit.command("publish", [*common, "--model", str(default_dir)]), env
    )
    publish_s = time.monotonic() - publish_started
    scores = {DEFAULT_LAYOUT: {s: metrics[s]["als"] for s in ("all", "new")}}
    for layout in measure:
        if layout != DEFAULT_LAYOUT:
            scores[layout] = score(table, work / "models" / "runs" / f"bench-{layout}", work, env)
    implicit_scores = score(table, factors, work, env)

    def median(xs: list[float]) -> float:
        return float(statistics.median(xs))

    implicit_runs = implicit_s["cg"]

    def over_implicit(fits: list[float]) -> list[float]:
        """Each run over the `implicit` CG fit of its own repetition."""
        return [f / i for f, i in zip(fits, implicit_runs, strict=True)]

    m, n, nnz = shape["users"], shape["items"], shape["nnz"]
    flops = ITERATIONS * (2 * nnz * RANK**2 + (m + n) * RANK**3 / 3)
    pop_all = metrics["all"]["popularity"]
    layouts = {}
    for layout in measure:
        meta = runs[layout]["meta"]
        layouts[layout.replace("-", "_")] = {
            "fit_s": median(runs[layout]["fit"]),
            "fit_runs_s": runs[layout]["fit"],
            "implicit_ratio_runs": [round(x, 3) for x in over_implicit(runs[layout]["fit"])],
            "implicit_ratio": median(over_implicit(runs[layout]["fit"])),
            # Grid layouts: the tasks' kernel time in each run, beside `implicit`'s runs.
            "kernel_runs_s": runs[layout]["kernel"],
            # The whole spark-submit: JVM, session, read, Python workers, fit, write.
            "train_step_s": median(runs[layout]["step"]),
            "search": runs[layout].get("search", []),
            "ndcg10": scores[layout]["all"]["ndcg@10"],
            "new_ndcg10": scores[layout]["new"]["ndcg@10"],
            "shuffle_write_mb_per_iter": meta["fit"].get("shuffle_write_mb_per_iter"),
            "peak_rss_mb": runs[layout]["rss"],
            "params": {"alpha": meta["params"]["alpha"], "reg_param": meta["params"]["reg_param"]},
            "fit": meta["fit"],
        }
    default = layouts[DEFAULT_LAYOUT.replace("-", "_")]
    return {
        "size": size_name,
        "users": m,
        "items": n,
        "nnz": nnz,
        "rank": RANK,
        "iterations": ITERATIONS,
        "default_layout": DEFAULT_LAYOUT,
        "layouts": layouts,
        "train_s": default["fit_s"],
        "implicit_cg_s": median(implicit_runs),
        "implicit_cg_runs_s": implicit_runs,  # each right after its repetition's default layout
        "implicit_cholesky_s": median(implicit_s["cholesky"]),
        "gflops_per_s": flops / default["fit_s"] / 1e9,
        "peak_rss_mb": default["peak_rss_mb"],
        "evaluate_s": evaluate_s,  # the whole spark-submit: ALS and popularity, both subsets
        "evaluate_peak_rss_mb": evaluate_rss,
        "publish_s": publish_s,  # the whole spark-submit, into the SQLite store
        "publish_peak_rss_mb": publish_rss,
        "ndcg10": default["ndcg10"],
        "implicit_ndcg10": implicit_scores["all"]["ndcg@10"],
        "popularity_ndcg10": pop_all["ndcg@10"],
        "ndcg10_lift_over_popularity": default["ndcg10"] / max(pop_all["ndcg@10"], 1e-12),
        "new_items": {
            "ndcg10": default["new_ndcg10"],
            "implicit_ndcg10": implicit_scores["new"]["ndcg@10"],
            "popularity_ndcg10": metrics["new"]["popularity"]["ndcg@10"],
        },
        "params": {
            **{layout: layouts[layout.replace("-", "_")]["params"] for layout in measure},
            "implicit": {k: tuned[k] for k in ("regularization", "alpha")},
        },
        "hyperparameters": "fixed (chosen at medium)" if fixed else "searched",
        "repetitions": repeats,
        "holdout_pairs": shape["holdout_pairs"],
        "generate_s": generate_s,
        "work": str(work),
    }


def score(table: Path, model: Path, work: Path, env: dict[str, str]) -> dict:
    """NDCG and friends of a model folder or an `implicit` factors file, by the product's
    ranking code on the holdout (``benchmarks/score_factors.py``)."""
    out, _ = run_measured(
        spark_script("score_factors.py", [str(table), AS_OF, str(model), str(work / "ck")]), env
    )
    return json.loads(next(x for x in out.splitlines() if x.startswith("SCORES "))[7:])


if __name__ == "__main__":
    print(
        json.dumps(als_benchmark(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "search"), indent=2)
    )
