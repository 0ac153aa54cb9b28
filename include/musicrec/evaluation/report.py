"""The evaluation report: metrics JSON plus an HTML page with plots a person would look at."""

from __future__ import annotations

import base64
import html
import io as _io
from typing import Any

from musicrec.evaluation.metrics import KS, NAMES


def _png(fig: Any) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(results: dict[str, dict[str, dict]]) -> list[tuple[str, str]]:
    """Bar charts per metric (model vs baselines) and precision/recall at k, as base64 PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for subset, models in results.items():
        metrics = [f"{m}@{k}" for k in KS for m in NAMES]
        fig, ax = plt.subplots(figsize=(9, 3.2))
        width = 0.8 / max(len(models), 1)
        for i, (name, values) in enumerate(models.items()):
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, [values.get(m, 0.0) for m in metrics], width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], metrics, rotation=30)
        ax.set_title(f"{subset}: model vs baselines (higher is better)")
        ax.legend()
        out.append((f"{subset}: metrics", _png(fig)))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for name, values in models.items():
            ax.plot(
                [values.get(f"recall@{k}", 0) for k in KS],
                [values.get(f"precision@{k}", 0) for k in KS],
                marker="o",
                label=name,
            )
            for k in KS:
                ax.annotate(
                    f"k={k}", (values.get(f"recall@{k}", 0), values.get(f"precision@{k}", 0))
                )
        ax.set_xlabel("recall@k")
        ax.set_ylabel("precision@k")
        ax.set_title(f"{subset}: precision vs recall")
        ax.legend()
        out.append((f"{subset}: precision/recall", _png(fig)))
        plt.close(fig)
    return out


def render(
    title: str,
    results: dict[str, dict[str, dict]],
    gate: dict[str, Any],
    cold: dict[str, Any] | None = None,
) -> str:
    rows = []
    for subset, models in results.items():
        metric_names = [f"{m}@{k}" for k in KS for m in NAMES] + [
            "expected_percentile_rank",
            "coverage@10",
            "users",
        ]
        head = "".join(f"<th>{html.escape(n)}</th>" for n in metric_names)
        body = ""
        for name, values in models.items():
            cells = "".join(f"<td>{_fmt(values.get(n))}</td>" for n in metric_names)
            body += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
        rows.append(f"<h2>{html.escape(subset)}</h2><table><tr><th></th>{head}</tr>{body}</table>")
    images = "".join(
        f"<figure><img src='data:image/png;base64,{b64}'><figcaption>"
        f"{html.escape(name)}</figcaption></figure>"
        for name, b64 in plots(results)
    )
    verdict = "PASSED" if gate.get("passed") else "FAILED"
    cold_line = ""
    if cold:
        cold_line = (
            f"<p>Cold held-out items (unknown to the model, left out of the metrics): "
            f"{cold['cold_pairs']} of {cold['holdout_pairs']} pairs "
            f"({100 * cold['cold_share']:.1f}%); {cold['users_only_cold']} users had only "
            "those and are not scored.</p>"
        )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in gate.get("reasons", []))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "figure{display:inline-block;margin:1em}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Quality gate: <b>{verdict}</b></p><ul>{reasons}</ul>"
        f"{cold_line}"
        f"{''.join(rows)}{images}</body></html>"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))
