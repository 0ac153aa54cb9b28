"""The benchmark report: Markdown tables and the plot from a results file of the set shape."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import run as bench

ALS = {
    "size": "small",
    "users": 20,
    "items": 4,
    "nnz": 200_000,
    "rank": 32,
    "iterations": 10,
    "train_s": 1.8,
    "layouts": {
        name: {
            "fit_s": fit,
            "ndcg10": ndcg,
            "shuffle_write_mb_per_iter": shuffle,
            "peak_rss_mb": 2500.0,
        }
        for name, fit, ndcg, shuffle in (
            ("half_gridify", 1.8, 0.21, 0.0),
            ("full_gridify", 6.0, 0.22, 420.0),
            ("mllib", 15.0, 0.2, 12.0),
        )
    },
    "implicit_cg_s": 0.9,
    "implicit_cholesky_s": 1.6,
    "gflops_per_s": 0.45,
    "peak_rss_mb": 2500.0,
    "ndcg10": 0.21,
    "map10": 0.15,
    "precision10": 0.05,
    "implicit_ndcg10": 0.23,
    "popularity_ndcg10": 0.07,
    "repetitions": 3,
    "date": "2026-11-28T00:00:00+00:00",
    "git_commit": "abc1234",
}
RESULT = {
    "date": "2026-11-28T00:00:00+00:00",
    "git_commit": "abc1234",
    "machine": {"cores": 2, "memory_gb": 24, "java": "17", "spark": "4.1.3"},
    "ingest": {
        "events": 5_000_000,
        "events_per_s": 60_000.0,
        "bare_events_per_s": 120_000.0,
        "ratio_vs_bare": 0.5,
        "repetitions": 3,
    },
    "als": [
        ALS,
        {**ALS, "size": "medium", "nnz": 1_500_000, "implicit_ndcg10": 0.15},
        {"size": "large", "nnz": 17_000_000},  # a result from before the layouts: no row
    ],
    "pipeline": {
        "events_per_day": 1_000_000,
        "window_days": 28,
        "wall_s": 600.0,
        "task_s": {"ingest": 60.0, "train": 100.0},
        "airflow_overhead_s": 30.0,
        "prepare_window_ratio": 1.31,
    },
}


@pytest.mark.unit
def test_markdown_has_a_row_per_measurement():
    text = bench.markdown(RESULT)
    assert "| 5,000,000 | 60,000 | 120,000 | 0.50 | 3 |" in text
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| small") or line.startswith("| medium")
    ]
    assert len(rows) == 2 and "0.210, 0.220, 0.200, 0.230, 0.070" in rows[0]
    assert "| 1.8 | 6.0 | 15.0 | 0.9 | 2.00x | 8.3x | 0, 420, 12 |" in rows[0]
    assert "0.150, 0.070" in rows[1] and not [r for r in text.splitlines() if "| large" in r]
    assert "| 1,000,000 | 28 d | 600 | ingest 60, train 100 | 30 | 1.31x |" in text


@pytest.mark.unit
def test_a_size_measured_without_some_layouts_shows_dashes_for_them():
    half = {"half_gridify": ALS["layouts"]["half_gridify"]}
    half_only = {**ALS, "size": "large", "layouts": half}
    (row,) = [r for r in bench.als_rows({**RESULT, "als": [half_only]}) if r.startswith("| large")]
    assert "| 1.8 | - | - | 0.9 | 2.00x | - | 0, -, - | 0.210, -, -, 0.230, 0.070 |" in row
    assert "| 2,500, -, - |" in row


@pytest.mark.unit
def test_half_gridify_against_implicit_is_the_median_of_its_repetitions_pairs():
    """A pair is one repetition's half-gridify fit and the `implicit` fit right after it; the
    table shows their median ratio, not a ratio of two medians taken minutes apart."""
    half = {**ALS["layouts"]["half_gridify"], "implicit_ratio": 1.17}
    paired = {**ALS, "layouts": {**ALS["layouts"], "half_gridify": half}}
    (row,) = [r for r in bench.als_rows({**RESULT, "als": [paired]}) if r.startswith("| small")]
    assert "| 1.8 | 6.0 | 15.0 | 0.9 | 1.17x | 8.3x |" in row


@pytest.mark.unit
def test_the_steps_table_sets_evaluate_and_publish_against_the_train_step():
    half = {**ALS["layouts"]["half_gridify"], "train_step_s": 50.0}
    large = {
        **ALS,
        "size": "large",
        "default_layout": "half-gridify",
        "layouts": {"half_gridify": half},
        "evaluate_s": 120.0,
        "evaluate_peak_rss_mb": 5000.0,
        "publish_s": 90.0,
        "publish_peak_rss_mb": 4000.0,
    }
    before_publish = {k: v for k, v in large.items() if not k.startswith("publish")}
    rows = bench.step_rows({**RESULT, "als": [ALS, large, {**before_publish, "size": "medium"}]})
    assert len(rows) == 4  # header, rule, and no row for a size without the train step's time
    assert rows[2].startswith("| large | 50 | 120 (2.40x) | 90 (1.80x) | 2,500, 5,000, 4,000 |")
    assert rows[3].startswith("| medium | 50 | 120 (2.40x) | - | 2,500, 5,000, - |")


@pytest.mark.unit
def test_plot_is_written_for_the_als_sizes(tmp_path):
    (path,) = bench.plots(json.loads(json.dumps(RESULT)), tmp_path)
    assert path.name == "als.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert bench.plots({**RESULT, "als": []}, tmp_path / "none") == []


def test_failure_text_keeps_the_traceback_not_the_shutdown_logs():
    from musicrec.runtime.submit import failure_text

    stderr = "\n".join(
        ["26/11/28 09:54:46 INFO SparkEnv: Registering MapOutputTracker"] * 5
        + ["Traceback (most recent call last):", "AttributeError: no attribute 'Ranking'"]
        + ["26/11/28 09:54:47 WARN Utils: shutdown hook"] * 500
        + ["26/11/28 09:54:47 ERROR Executor: task failed"]
    )
    text = failure_text(stderr)
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        "AttributeError: no attribute 'Ranking'",
        "26/11/28 09:54:47 ERROR Executor: task failed",
    ]
