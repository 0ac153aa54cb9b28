"""A job with a poison partition: every attempt of partition 3 kills its executor JVM.

    spark-submit tests/apps/poison_job.py <data root>

What a record that crashes native code or exhausts memory does on a cluster. The job goes
through ``musicrec.jobs.entry`` like every product job, so its exit code is the one the DAG
sees.
"""

import os
import signal
from pathlib import Path

from musicrec.runtime.jobs import base_parser, entry, session_for


def executor_jvm() -> int:
    """The CoarseGrainedExecutorBackend JVM this Python worker runs under."""
    pid = os.getppid()
    while pid > 1:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"CoarseGrainedExecutorBackend" in cmdline:
            return pid
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise RuntimeError("not running inside a Spark executor")


def poison(index, rows):
    if index == 3:
        os.kill(executor_jvm(), signal.SIGKILL)
    yield from rows


def main(argv=None) -> int:
    args = base_parser("poison partition").parse_args(argv)
    spark = session_for(args, "poison")
    total = spark.sparkContext.parallelize(range(1000), 6).mapPartitionsWithIndex(poison).sum()
    print(f"RESULT {total}")
    return 0


if __name__ == "__main__":
    entry(main)
