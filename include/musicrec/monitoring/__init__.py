"""On-call: executor health of every Spark application, from its event log, and the one
definition of trouble that the alerts and the on-call view share. Pure Python (no pyspark):
the Airflow side imports it."""
