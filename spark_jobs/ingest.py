"""Ingest one interval of landing files: accepted, quarantined or duplicate, exactly once.

    python spark_jobs/ingest.py --data-root data --start 2026-01-05 --end 2026-01-06

Re-running an interval replaces exactly that interval's partitions; the manifest
(``manifests/ingest/<batch>.json``) records read = accepted + quarantined + duplicates.
The step is ``musicrec.steps.ingest``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from musicrec import constants as c
from musicrec.lake import io
from musicrec.runtime.jobs import entry, session_for
from musicrec.steps import ingest as step

log = logging.getLogger("musicrec.ingest")


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = step.parse_args(argv)
    manifest = step.run(session_for(args, step.NAME), cfg, args.run_id)
    io.write_manifest(cfg.data_root, manifest)
    log.info("%s", step.summary(manifest))
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
