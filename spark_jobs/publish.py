"""Publish a model that passed the gate: top-N per user and related items, to serving.

    python spark_jobs/publish.py --data-root data --model data/models/runs/artist-2026-01-14 \
        --interactions data/lake/interactions/artist --as-of 2026-01-14 [--database-url URL]
    python spark_jobs/publish.py list --data-root data
    python spark_jobs/publish.py rollback --data-root data --version artist-2026-01-13

The step is ``musicrec.steps.publish``; ``list`` and ``rollback`` need no Spark.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from musicrec import constants as c
from musicrec.exceptions import ConfigError
from musicrec.lake import io
from musicrec.runtime.jobs import entry, session_for
from musicrec.steps import publish as step

log = logging.getLogger("musicrec.publish")


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = step.parse_args(argv)
    if args.command == "list":
        print(json.dumps(step.store_of(args).versions(), indent=2))
        return c.EXIT_OK
    if args.command == "rollback":
        if not args.version:
            raise ConfigError("rollback needs --version (see `list`)")
        step.store_of(args).rollback(args.version)
        log.info("serving version %s again", args.version)
        return c.EXIT_OK
    manifest = step.run(session_for(args, step.NAME), cfg, args)
    io.write_manifest(args.data_root, manifest)
    log.info("published %s: %s", manifest["version"], manifest.get("rows", "nothing switched"))
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
