"""PySpark's worker daemon, without re-reading every zip archive on every task.

PySpark's worker calls ``importlib.invalidate_caches()`` at the start of every task. On
Python 3.11 that makes every ``zipimporter`` re-read its archive's whole directory, and pip's
pyspark puts ``pyspark.zip``, py4j's zip and the spark-core jar first on the workers' path:
about 15 ms per archive and importer, 0.15-0.25 s per task on this machine, before the task
does anything (measured with strace; a trivial job 0.25 s -> 0.10 s). The grid ALS layouts
run one short Python job per half-iteration, so that was most of their fixed cost.

The archives do not change while an application runs (py-files are fixed at submit), so
their importers keep what they read. Python 3.12 reads lazily and needs none of this.
Used in embedded mode (``spark_conf.LOCAL_OVERRIDES``), where the workers run the driver's
own interpreter and this module is importable before any py-files arrive.
"""

from __future__ import annotations

import sys
import zipimport

if sys.version_info < (3, 12):
    zipimport.zipimporter.invalidate_caches = lambda self: None  # type: ignore[method-assign]

from pyspark import daemon  # after the patch: the workers it forks inherit it

if __name__ == "__main__":
    daemon.manager()
