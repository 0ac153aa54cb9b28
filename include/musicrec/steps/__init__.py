"""One module per pipeline step (the task ids of the DAG): its options, built from ``config``,
and ``run``, the composition root that reads through ``lake``, calls the concern packages'
transforms and writes. ``spark_jobs/<step>.py`` parses, builds the session, calls ``run``
and writes the manifest."""
