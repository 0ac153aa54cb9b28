"""Binarize and confidence-weight a trailing window of accepted events for implicit ALS.

    python spark_jobs/prepare.py --data-root data --date 2026-01-14 [--window-days 28]

Writes ``lake/interactions/<level>/as_of=<date>/split=train|holdout`` and extends the
persistent id dictionaries. The step is ``musicrec.steps.prepare``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from musicrec import constants as c
from musicrec.lake import io
from musicrec.runtime.jobs import entry, session_for
from musicrec.steps import prepare as step

log = logging.getLogger("musicrec.prepare")


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = step.parse_args(argv)
    spark = session_for(args, step.NAME)
    manifest = step.run(spark, cfg, args.data_root, args.accepted, args.date, args.run_id)
    io.write_manifest(args.data_root, manifest)
    counts = manifest["counts"]
    log.info("prepare %s: train %s, holdout %s", args.date, counts["train"], counts["holdout"])
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
