"""The reference for ingestion throughput: a bare spark.read.json(...).write.parquet(...)."""

from __future__ import annotations

import json
import sys
import time

from musicrec.runtime.session import build_session


def main() -> None:
    source, target, checkpoint = sys.argv[1], sys.argv[2], sys.argv[3]
    spark = build_session("musicrec-bench-bare", checkpoint_dir=checkpoint)
    started = time.monotonic()
    spark.read.json(source).write.mode("overwrite").parquet(target)
    rows = spark.read.parquet(target).count()
    print("BARE " + json.dumps({"seconds": time.monotonic() - started, "rows": rows}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
