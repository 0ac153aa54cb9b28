"""SparkSubmitOperator with a connection guard, fail-fast exit codes and an error tail."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from musicrec.constants import NON_RETRYABLE_EXIT_CODES
from musicrec.orchestration.links import SparkHistoryLink, application_url
from musicrec.runtime import spark_conf

TAIL_LINES = 30
HEALTH_PREFIX = "EXECUTOR_HEALTH "  # the line musicrec.jobs prints after each application
_EXIT = re.compile(r"Error code is: (\d+)")
_CODE = re.compile(r"\(exit code (\d+)\)")  # in the message execute raises
_SPARK_INFO = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ")


class TailingSparkSubmitHook(SparkSubmitHook):
    """Keeps the last lines spark-submit printed, and kills its whole process tree.

    spark-submit in client mode is a process tree: the SparkSubmit JVM (driver, and in local
    mode the executors), the Python driver it starts, and PySpark worker daemons. The
    provider kills only the top process on a timeout, which orphans the Python driver. Here
    spark-submit starts in a session of its own and ``on_kill`` signals the whole group.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.health: dict[str, Any] | None = None

    def submit(self, application: str = "", **kwargs: Any) -> str | None:
        kwargs.setdefault("start_new_session", True)
        return super().submit(application, **kwargs)

    def on_kill(self) -> None:
        process = getattr(self, "_submit_sp", None)
        group = None
        if process is not None and process.poll() is None:
            try:
                group = os.getpgid(process.pid)
            except ProcessLookupError:
                group = None
        if group is not None and group != os.getpgrp():
            kill_group(group, self.log)  # SIGTERM first: Spark's shutdown hooks clean up
        super().on_kill()  # cluster-side kills (standalone driver, YARN, Kubernetes)
        if process is not None:
            try:
                process.wait(timeout=30)
            except Exception:  # best effort: reap, never mask the timeout
                self.log.warning("spark-submit pid %d did not exit after kill", process.pid)

    def _process_spark_submit_log(self, itr: Iterator[Any]) -> None:
        def remember() -> Iterator[Any]:
            for line in itr:
                text = str(line)
                if text.startswith(HEALTH_PREFIX):
                    with contextlib.suppress(ValueError):
                        self.health = json.loads(text[len(HEALTH_PREFIX) :])
                elif not _SPARK_INFO.match(text):  # keep the tail about the failure
                    self.tail.append(text.rstrip())
                yield line

        super()._process_spark_submit_log(remember())


def kill_group(group: int, log: Any, grace_s: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``grace_s``."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            log.info("spark-submit process group %d stopped", group)
            return
        time.sleep(0.2)
    log.warning("spark-submit process group %d ignored SIGTERM: sending SIGKILL", group)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


class MusicrecSparkSubmitOperator(SparkSubmitOperator):
    """Fails fast when retrying cannot help; otherwise lets Airflow retry.

    * a missing connection would silently make the provider submit to master ``yarn``:
      refuse instead;
    * exit codes 2 (bad arguments) and 3 (validation or quality gate rejected the data) raise
      AirflowFailException, which Airflow does not retry;
    * after a successful run, the application's executor-health summary goes to the task log
      and XCom, an ``executors_lost`` alert is sent if executors died, and the task gets a
      link to the application in the Spark History Server.
    """

    operator_extra_links = (SparkHistoryLink(),)

    def _get_hook(self) -> SparkSubmitHook:
        hook = super()._get_hook()
        tailing = TailingSparkSubmitHook.__new__(TailingSparkSubmitHook)
        tailing.__dict__.update(hook.__dict__)
        tailing.tail = collections.deque(maxlen=TAIL_LINES)
        tailing.health = None
        return tailing

    def execute(self, context: Any) -> None:
        started = datetime.now(UTC)
        failure: BaseException | None = None
        try:
            self._submit(context)
        except BaseException as exc:  # a timeout is a BaseException: recorded, re-raised
            failure = exc
            raise
        finally:
            self._record_try(context, started, failure)

    def _submit(self, context: Any) -> None:
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
        # Driver JVM options and heap: the driver's session builder is too late for them.
        given: dict[str, Any] = getattr(self, "conf", None) or {}
        job = Path(self.application).stem  # spark_jobs/<job>.py
        launch = spark_conf.step_launch_conf(conn.host, job, self.application_args or [])
        self.conf = {**launch, **given}
        try:
            super().execute(context)
            self._report_health(context)
        except AirflowException as exc:
            tail = "\n".join(getattr(self._hook, "tail", []) or [])
            match = _EXIT.search(str(exc))
            code = int(match.group(1)) if match else None
            message = f"spark-submit {self.task_id} failed (exit code {code}). Last lines:\n{tail}"
            if code in NON_RETRYABLE_EXIT_CODES:
                raise AirflowFailException(f"NOT RETRYABLE: {message}") from exc
            raise AirflowException(message) from exc

    def _record_try(self, context: Any, started: datetime, failure: BaseException | None) -> None:
        """The try's record for the on-call view (``musicrec.monitoring.tries``): written for
        every ending, including a failure before any Spark task ran. Never fails the task."""
        try:
            from airflow.sdk.exceptions import AirflowTaskTimeout

            from musicrec.monitoring import tries

            ti = context["ti"]
            args = [str(a) for a in (self.application_args or [])]
            if "--data-root" not in args:
                return
            data_root = args[args.index("--data-root") + 1]
            match = _CODE.search(str(failure)) if failure is not None else None
            code = int(match.group(1)) if match else (None if failure else 0)
            fail_fast = isinstance(failure, AirflowFailException)
            klass = tries.exit_class(code, timed_out=isinstance(failure, AirflowTaskTimeout))
            if fail_fast and code is None:
                klass = "configuration"  # refused before spark-submit (the connection)
            will_retry = failure is not None and not fail_fast and ti.try_number <= ti.max_tries
            logical = context.get("logical_date")
            row = tries.record(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                logical_date=logical.isoformat() if logical is not None else None,
                task_id=ti.task_id,
                try_number=ti.try_number,
                result=tries.outcome(failure is not None, will_retry),
                code=code,
                klass=klass,
                started_at=started,
                ended_at=datetime.now(UTC),
                log_url=ti.log_url,
                health=getattr(getattr(self, "_hook", None), "health", None),
                error=str(failure) if failure is not None else None,
            )
            tries.append(Path(data_root), row)
        except Exception as exc:  # monitoring must not fail (or mask) the task
            self.log.warning("could not record the task try for on-call: %s", exc)

    def _report_health(self, context: Any) -> None:
        """Executor health of the finished application: task log, XCom, alert on losses."""
        health = getattr(self._hook, "health", None)
        if not health:
            return
        from musicrec.monitoring.executor_health import headline, trouble
        from musicrec.orchestration.notifier import MusicrecAlertNotifier

        self.log.info("%s", headline(health))
        self.log.info("Spark History Server: %s", application_url(health.get("app_id")))
        context["ti"].xcom_push(key="executor_health", value=health)
        reasons = trouble(health)
        if reasons:
            # Succeeded, but in trouble on the way (lost executors, failed tasks): seen
            # before it becomes a failure. The on-call view's filter is the same definition.
            MusicrecAlertNotifier(kind="spark_trouble").notify(
                {**context, "executor_health": health, "trouble": reasons}
            )


def spark_task(
    task_id: str,
    application: str,
    application_args: list[str],
    py_files: str,
    env_vars: dict[str, str] | None = None,
    **kwargs: Any,
) -> MusicrecSparkSubmitOperator:
    """A Spark task as the DAG runs it: this interpreter for PySpark, loopback, library path.

    The driver and the Python workers use the interpreter Airflow runs in (the project's
    virtual environment), so pyspark, numpy and the library versions match the scheduler's.
    Executors on other machines (docker-compose.yaml's Spark image) may have that Python
    elsewhere: ``$MUSICREC_EXECUTOR_PYTHON`` names it there.
    """
    import os
    import sys
    from pathlib import Path

    include = str(Path(py_files).resolve().parents[1] / "include")
    return MusicrecSparkSubmitOperator(
        task_id=task_id,
        application=application,
        conn_id="spark_default",
        py_files=py_files,
        name=f"musicrec-{task_id}",
        conf={
            "spark.pyspark.python": os.environ.get("MUSICREC_EXECUTOR_PYTHON", sys.executable),
            "spark.pyspark.driver.python": sys.executable,
        },
        env_vars={"SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": include, **(env_vars or {})},
        application_args=application_args,
        **kwargs,
    )
