"""Evaluate a trained model on a time-based holdout against baselines, then apply the gate.

    python spark_jobs/evaluate.py --data-root data --model data/models/runs/artist-2026-01-14 \
        --interactions data/lake/interactions/artist --as-of 2026-01-14

The champion is the model the serving store says is serving. Exits 3 if the gate fails.
The step is ``musicrec.steps.evaluate``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from musicrec import constants as c
from musicrec.lake import io
from musicrec.runtime.jobs import entry, session_for
from musicrec.steps import evaluate as step

log = logging.getLogger("musicrec.evaluate")


def main(argv: Sequence[str] | None = None) -> int:
    gate, args = step.parse_args(argv)
    manifest = step.run(session_for(args, step.NAME), gate, args)
    io.write_manifest(args.data_root, manifest)
    log.info("%s", step.summary(manifest))
    step.enforce(manifest)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
