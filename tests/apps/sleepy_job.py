"""A Spark application that never finishes on its own: for timeout and kill tests.

    spark-submit tests/apps/sleepy_job.py <checkpoint dir>

Python tasks sleep inside PySpark workers, so the process tree is complete: the SparkSubmit
JVM, the Python driver and the worker daemons.
"""

import sys
import time

from musicrec.runtime.session import build_session


def nap(x: int) -> int:
    time.sleep(3600)
    return x


if __name__ == "__main__":
    spark = build_session("musicrec-sleepy", checkpoint_dir=sys.argv[1])
    print("SLEEPY started", flush=True)
    spark.sparkContext.parallelize(range(2), 2).map(nap).collect()
