"""The quality gate: pure decision from metrics, with a message that says by how much."""

from __future__ import annotations

from typing import Any

from musicrec.config import GateConfig


def decide(
    model: dict[str, float],
    popularity: dict[str, float],
    published: dict[str, float] | None,
    cfg: GateConfig,
) -> dict[str, Any]:
    """Pass only if the model beats popularity by the lift and does not regress the champion."""
    m = cfg.metric
    value, base = model[m], popularity[m]
    reasons, passed = [], True
    need = cfg.min_lift * base
    if value < need:
        passed = False
        reasons.append(
            f"{m} {value:.4f} is below {cfg.min_lift:g} x popularity baseline "
            f"{base:.4f} = {need:.4f} (short by {need - value:.4f})"
        )
    else:
        reasons.append(f"{m} {value:.4f} >= {cfg.min_lift:g} x popularity {base:.4f} = {need:.4f}")
    if published is not None:
        floor = (1 - cfg.max_drop) * published[m]
        if value < floor:
            passed = False
            drop = 1 - value / published[m] if published[m] else 1.0
            reasons.append(
                f"{m} {value:.4f} is {drop:.1%} below the published model's {published[m]:.4f} "
                f"(allowed drop {cfg.max_drop:.0%}, floor {floor:.4f})"
            )
        else:
            reasons.append(f"{m} {value:.4f} >= floor {floor:.4f} from the published model")
    else:
        reasons.append("no published model yet: regression check skipped")
    return {
        "passed": passed,
        "metric": m,
        "subset": cfg.gate_subset,
        "value": value,
        "popularity": base,
        "published": None if published is None else published[m],
        "reasons": reasons,
    }
