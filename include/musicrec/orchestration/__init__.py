"""Airflow-side helpers. Imported by the DAG at parse time: no pyspark or GX imports here."""
