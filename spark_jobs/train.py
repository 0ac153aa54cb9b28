"""Train implicit ALS on a prepared interactions table and save a versioned model.

    python spark_jobs/train.py --data-root data --interactions data/lake/interactions/artist \
        --as-of 2026-01-14 [--rank 32 --reg-param 0.05 --alpha 10 --max-iter 10] [--search]

The model goes to ``models/runs/<model-id>`` only when complete. The step is
``musicrec.steps.train``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from musicrec import constants as c
from musicrec.lake import io
from musicrec.runtime.jobs import entry, session_for
from musicrec.steps import train as step

log = logging.getLogger("musicrec.train")


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = step.parse_args(argv)
    manifest = step.run(session_for(args, step.NAME), cfg, args)
    io.write_manifest(args.data_root, manifest)
    log.info(
        "trained %s in %.1f s: %s",
        manifest["model_id"],
        manifest["timings"]["fit_seconds"],
        manifest["data"],
    )
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
