"""Validate one interval's accepted events with the Great Expectations suite.

    python spark_jobs/validate.py --data-root data --start 2026-01-05 --end 2026-01-06

Exits 3 (not retryable) with a readable summary when an expectation fails. Data Docs for every
run are kept under ``<data-root>/reports/data_docs/<batch>/``. The step is
``musicrec.steps.validate``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from musicrec import constants as c
from musicrec.ingest import suite
from musicrec.lake import io
from musicrec.runtime.jobs import entry, session_for
from musicrec.steps import validate as step

log = logging.getLogger("musicrec.validate")


def main(argv: Sequence[str] | None = None) -> int:
    interval, cfg, args = step.parse_args(argv)
    suite.preload()  # overlaps the session's start
    spark = session_for(args, step.NAME)
    manifest = step.run(spark, args.data_root, interval, cfg, args.accepted, args.run_id)
    io.write_manifest(args.data_root, manifest)
    step.enforce(manifest)
    log.info(
        "validation passed for %s: %d expectations; Data Docs %s",
        manifest["batch"],
        manifest["expectations_evaluated"],
        manifest["outputs"]["data_docs"],
    )
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
