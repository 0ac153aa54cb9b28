"""The Great Expectations suite for an interval's accepted events, defined in code.

Run inside the Spark job (the GX Airflow provider cannot be installed with Airflow 3.3).
Two batches are validated: the interval's accepted rows, and a one-row frame of the ingest
manifest's counts (the quarantine ratio). Data Docs HTML is written for every run.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from musicrec import constants as c
from musicrec.config import ValidationConfig

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass(frozen=True)
class Bounds:
    """Run-specific limits the suite needs, computed by the job from config and history."""

    window_start: datetime
    window_end: datetime
    max_ms_played: int
    min_rows: int
    max_rows: int | None
    quarantine_max_ratio: float


@dataclass
class Outcome:
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    data_docs: str | None = None

    def summary(self, batch: str) -> str:
        head = (
            f"validation FAILED for batch {batch}: {len(self.failures)} of "
            f"{self.evaluated} expectations failed"
        )
        lines = [head] + [
            f"- {f['expectation']}({f['kwargs']}): {f['observed']}" for f in self.failures
        ]
        if self.data_docs:
            lines.append(f"Data Docs: {self.data_docs}")
        return "\n".join(lines)


def volume_bounds(history: list[int], cfg: ValidationConfig) -> tuple[int, int | None]:
    """Accepted-row band from the trailing mean; without history only a floor applies."""
    if not history:
        return cfg.min_rows, None
    mean = sum(history) / len(history)
    return max(cfg.min_rows, int(mean * (1 - cfg.volume_band))), int(mean * (1 + cfg.volume_band))


def event_expectations(b: Bounds) -> list:
    import great_expectations.expectations as gxe

    types = {
        c.EVENT_ID: "StringType",
        c.USER_ID: "StringType",
        c.TRACK_ID: "StringType",
        c.ARTIST_ID: "StringType",
        c.EVENT_TS: "TimestampType",
        c.MS_PLAYED: "LongType",
    }
    out: list = []
    for column, type_ in types.items():
        out.append(gxe.ExpectColumnToExist(column=column))
        out.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_=type_))
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    out += [
        gxe.ExpectColumnValuesToBeUnique(column=c.EVENT_ID),
        gxe.ExpectColumnValuesToBeBetween(
            column=c.MS_PLAYED, min_value=0, max_value=b.max_ms_played
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column=c.EVENT_TS, min_value=b.window_start, max_value=b.window_end
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=b.min_rows, max_value=b.max_rows),
    ]
    return out


def count_expectations(b: Bounds) -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="quarantine_ratio", min_value=0.0, max_value=b.quarantine_max_ratio
        )
    ]


def _failure(result: Any) -> dict[str, Any]:
    cfg = result.expectation_config
    res = result.result or {}
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    if res.get("unexpected_count") is not None:
        sample = res.get("partial_unexpected_list") or []
        observed = f"{res['unexpected_count']} unexpected row(s), e.g. {sample[:5]}"
    elif res.get("observed_value") is not None:
        observed = f"observed {res['observed_value']}"
    else:
        observed = str(result.exception_info) if result.exception_info else "failed"
    return {
        "expectation": cfg.type,
        "kwargs": ", ".join(f"{k}={v}" for k, v in kwargs.items()),
        "observed": observed,
    }


_preloading: threading.Thread | None = None


def preload() -> threading.Thread:
    """Import Great Expectations (about 4 s here) in a thread while the Spark session starts,
    which waits on the JVM; ``run_suite`` joins it before using GX."""
    global _preloading

    def load() -> None:
        import great_expectations.expectations  # noqa: F401  (imports great_expectations)

    _preloading = threading.Thread(target=load, name="gx-import", daemon=True)
    _preloading.start()
    return _preloading


def run_suite(
    events: DataFrame, counts: DataFrame, bounds: Bounds, docs_dir: Path, suite_name: str
) -> Outcome:
    """Validate both batches and build Data Docs under ``docs_dir``."""
    if _preloading is not None:
        _preloading.join()  # an import error, if any, is raised by the imports below
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(
        site_name="reports",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = ctx.data_sources.add_spark(name="lake")
    definitions = []
    for name, expectations in (
        ("accepted_events", event_expectations(bounds)),
        ("ingest_counts", count_expectations(bounds)),
    ):
        batch_def = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite_name}.{name}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        definitions.append(
            ctx.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch_def, suite=suite)
            )
        )
    results = []
    for definition, frame in zip(definitions, (events, counts), strict=True):
        results.append(
            definition.run(
                batch_parameters={"dataframe": frame},
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
            )
        )
    ctx.build_data_docs()
    failures = [_failure(r) for res in results for r in res.results if not r.success]
    evaluated = sum(len(res.results) for res in results)
    index = docs_dir / "index.html"
    return Outcome(not failures, evaluated, failures, index.as_uri() if index.exists() else None)
