"""Running Spark: the configuration presets (``spark_conf``), the session builder
(``session``), what every job shares (``jobs``: arguments, exit codes, executor health),
spark-submit command lines (``submit``) and a standalone cluster on one machine (``cluster``)."""
