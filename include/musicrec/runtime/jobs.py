"""What every ``spark_jobs/`` script shares: arguments, session, logging, exit codes."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from musicrec import constants as c
from musicrec.exceptions import ConfigError, DataRejectedError

log = logging.getLogger("musicrec")


def base_parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-root", type=Path, required=True, help="root of landing/, lake/ ...")
    p.add_argument(
        "--master",
        default=None,
        help="Spark master when not launched by spark-submit (default local[*,4])",
    )
    p.add_argument(
        "--event-log-dir",
        type=Path,
        default=None,
        help="write Spark event logs here (for the History Server)",
    )
    p.add_argument("--run-id", default="manual", help="Airflow run id, recorded in manifests")
    return p


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("py4j", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def session_for(args: argparse.Namespace, app: str):  # -> SparkSession, imported lazily
    from musicrec.runtime.session import build_session

    return build_session(
        f"musicrec-{app}",
        checkpoint_dir=args.data_root / c.CHECKPOINTS / app,
        master=args.master,
        event_log_dir=args.event_log_dir,
    )


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a job's main and map failures to exit codes the DAG understands.

    Data rejected (validation, quality gate) and bad arguments are not retryable: retrying
    the same data cannot help. Anything else exits 1 and Airflow retries it.
    """
    setup_logging()
    started = time.monotonic()
    try:
        code = main(argv)
    except DataRejectedError as exc:
        log.error("DATA REJECTED (not retryable):\n%s", exc.summary)
        code = c.EXIT_DATA_REJECTED
    except ConfigError as exc:
        log.error("BAD ARGUMENTS (not retryable): %s", exc)
        code = c.EXIT_BAD_ARGS
    except Exception as exc:  # the last line of defence, logged in full
        poison = poison_task(exc)
        if poison:
            log.error("POISON TASK (not retryable): %s", poison)
            code = c.EXIT_POISON_TASK
        else:
            log.error(
                "FAILED (retryable): %s: %s\n%s", type(exc).__name__, exc, traceback.format_exc()
            )
            code = c.EXIT_RETRYABLE
    _drop_cached_data()
    log.info("exit code %d after %.1f s", code, time.monotonic() - started)
    return code


_ABORTED = re.compile(
    r"(Task \S+ in stage \S+ failed \d+ times|cannot run anywhere due to node and executor "
    r"excludeOnFailure)"
)
_LOST = re.compile(r"ExecutorLostFailure \([^)]*\)[^\n]*")


def poison_task(exc: BaseException) -> str | None:
    """A one-line explanation if Spark aborted a job because one task kept killing its
    executor (every attempt ended in ExecutorLostFailure), else None."""
    text = str(exc)
    aborted, lost = _ABORTED.search(text), _LOST.search(text)
    if aborted is None or lost is None:
        return None
    return (
        f"{aborted.group(0)}; last attempt: {lost.group(0).strip()}. A task that loses its "
        "executor on every attempt is a poison partition: find the input that kills it "
        "(e.g. a huge record, native crash) instead of retrying the application."
    )


def _drop_cached_data() -> None:
    """A job's cached frames must not outlive it: a later job in the same session (tests,
    notebooks) would otherwise match a cached plan whose files were since swapped."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.catalog.clearCache()


def stop_spark() -> None:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def _event_log_of_active_session() -> tuple[str, Path] | None:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        return None
    conf = active.sparkContext.getConf()
    if conf.get("spark.eventLog.enabled", "false").lower() != "true":
        return None
    directory = conf.get("spark.eventLog.dir", "")
    path = Path(directory.removeprefix("file://").removeprefix("file:"))
    return active.sparkContext.applicationId, path


def report_executor_health(app_id: str, event_dir: Path) -> dict | None:
    """After the application ended: summarize its event log for on-call.

    Logged as one line, printed as ``EXECUTOR_HEALTH <json>`` for the Airflow operator (XCom,
    alert on lost executors) and appended to ``<event dir>/../monitoring/executor_health.jsonl``.
    Monitoring never fails a job: problems here are logged and ignored.
    """
    import json

    from musicrec.monitoring import executor_health

    try:
        found = executor_health.find_log(event_dir, app_id)
        if found is None:
            log.warning("no event log for %s in %s", app_id, event_dir)
            return None
        summary = executor_health.summarize(found)
        log.info("%s", executor_health.headline(summary))
        print("EXECUTOR_HEALTH " + json.dumps(summary), flush=True)
        history = event_dir.parent / c.EXECUTOR_HEALTH_HISTORY
        history.parent.mkdir(parents=True, exist_ok=True)
        with open(history, "a") as out:
            out.write(json.dumps(summary) + "\n")
        return summary
    except Exception as exc:  # monitoring must not fail the job
        log.warning("executor health summary failed: %s", exc)
        return None


def entry(main: Callable[[Sequence[str] | None], int]) -> None:
    """``if __name__ == "__main__"`` of every job: run, stop Spark, report executor health
    (when event logging is on), exit with the code."""
    code = run(main)
    app = _event_log_of_active_session()
    stop_spark()
    if app is not None:
        report_executor_health(*app)
    raise SystemExit(code)
