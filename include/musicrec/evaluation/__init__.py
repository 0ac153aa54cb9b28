"""Is the model good? Top-k metrics (``metrics``), per-user ranking on a holdout
(``ranking``), the most-popular baseline (``baselines``), the quality gate (``gate``) and the
HTML report (``report``)."""
