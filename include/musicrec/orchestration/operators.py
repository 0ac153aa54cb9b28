"""SparkSubmitOperator with a connection guard, fail-fast exit codes and an error tail."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator
from typing import Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from musicrec.constants import NON_RETRYABLE_EXIT_CODES

TAIL_LINES = 30
_EXIT = re.compile(r"Error code is: (\d+)")
_SPARK_INFO = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ")


class TailingSparkSubmitHook(SparkSubmitHook):
    """Keeps the last lines spark-submit printed, for alerts and failure messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def _process_spark_submit_log(self, itr: Iterator[Any]) -> None:
        def remember() -> Iterator[Any]:
            for line in itr:
                if not _SPARK_INFO.match(str(line)):  # keep the tail about the failure
                    self.tail.append(str(line).rstrip())
                yield line

        super()._process_spark_submit_log(remember())


class MusicrecSparkSubmitOperator(SparkSubmitOperator):
    """Fails fast when retrying cannot help; otherwise lets Airflow retry.

    * a missing connection would silently make the provider submit to master ``yarn``:
      refuse instead;
    * exit codes 2 (bad arguments) and 3 (validation or quality gate rejected the data) raise
      AirflowFailException, which Airflow does not retry.
    """

    def _get_hook(self) -> SparkSubmitHook:
        hook = super()._get_hook()
        tailing = TailingSparkSubmitHook.__new__(TailingSparkSubmitHook)
        tailing.__dict__.update(hook.__dict__)
        tailing.tail = collections.deque(maxlen=TAIL_LINES)
        return tailing

    def execute(self, context: Any) -> None:
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(self._conn_id)
        except Exception as exc:  # AirflowNotFoundException and friends
            raise AirflowFailException(
                f"Spark connection {self._conn_id!r} is not defined: refusing to let the Spark "
                "provider fall back to master 'yarn'. Define it (e.g. AIRFLOW_CONN_SPARK_DEFAULT)."
            ) from exc
        if not conn.host:
            raise AirflowFailException(f"Spark connection {self._conn_id!r} has no master host")
        try:
            super().execute(context)
        except AirflowException as exc:
            tail = "\n".join(getattr(self._hook, "tail", []) or [])
            match = _EXIT.search(str(exc))
            code = int(match.group(1)) if match else None
            message = f"spark-submit {self.task_id} failed (exit code {code}). Last lines:\n{tail}"
            if code in NON_RETRYABLE_EXIT_CODES:
                raise AirflowFailException(f"NOT RETRYABLE: {message}") from exc
            raise AirflowException(message) from exc
