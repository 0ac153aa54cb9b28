"""musicrec: listening logs to implicit-ALS music recommendations on Spark.

The one importable package of the project. Spark jobs in ``spark_jobs/`` are thin shells over
the pure transforms here; executors receive this package through ``--py-files`` (a zip built by
``make dist``), never through a shared file system.
"""

__version__ = "0.1.0"
