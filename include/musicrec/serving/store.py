"""The serving database: versioned tables, an atomic switch of views, rollback.

PostgreSQL when a database URL is given (bulk COPY), else an embedded SQLite file. Every
published version gets its own tables ``<kind>__<version>``; consumers read the views
``recommendations``, ``related_items`` and ``items``, which one transaction re-points to the
new version: readers see the complete old version or the complete new one, never a mix.
SQL is parameterised; identifiers (version names) are quoted, never formatted into SQL.

The registry table ``serving_versions`` is the one record of what is serving: its current row
names the version, the model it was built from and the date it is as of. Publish, rollback,
evaluate (the champion) and retention all read it; nothing else records it.
"""

from __future__ import annotations

import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from musicrec.exceptions import ConfigError

log = logging.getLogger(__name__)

KINDS: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    # kind: (columns with portable types, index column lists)
    "recommendations": (
        [
            ("user_id", "TEXT"),
            ("rank", "INTEGER"),
            ("item_id", "TEXT"),
            ("score", "REAL"),
            ("item_name", "TEXT"),
        ],
        ["user_id, rank"],
    ),
    "related_items": (
        [
            ("item_id", "TEXT"),
            ("rank", "INTEGER"),
            ("related_item_id", "TEXT"),
            ("similarity", "REAL"),
            ("related_item_name", "TEXT"),
        ],
        ["item_id, rank"],
    ),
    "items": ([("item_id", "TEXT"), ("item_name", "TEXT"), ("streams", "INTEGER")], ["item_id"]),
}
REGISTRY = "serving_versions"
MAX_VERSION_BYTES = 40  # PostgreSQL identifiers are cut at 63 bytes: keep room for the kind


def check_version(version: str) -> str:
    if not version or len(version.encode()) > MAX_VERSION_BYTES:
        raise ConfigError(f"version name must be 1..{MAX_VERSION_BYTES} bytes: {version!r}")
    return version


def table_name(kind: str, version: str) -> str:
    return f"{kind}__{check_version(version)}"


def _batches(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetDataset(str(path)).read(columns=columns).to_batches(50_000)


def _python_values(column: pa.Array) -> list:
    """A column as Python values through numpy: 10x faster than ``to_pylist`` (18M rows of
    recommendations: 35 s of a 81 s SQLite load). Only where numpy's values are the Python
    ones: strings (None for nulls either way), and numbers or booleans without nulls (numpy
    would give NaN); any other type (timestamps: numpy's ``tolist`` may give integers) or a
    numeric column with nulls keeps ``to_pylist``."""
    kind = column.type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    plain = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if text or (plain and not column.null_count):
        return column.to_numpy(zero_copy_only=False).tolist()
    return column.to_pylist()


@dataclass
class Store(ABC):
    """Common logic; subclasses provide connection, quoting and bulk load."""

    reader_role: str | None = None

    # --- what each database provides ---------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A cursor inside one transaction: committed on success, rolled back on error."""

    @abstractmethod
    def load(self, cur: Any, table: str, columns: list[str], path: Path) -> int:
        """Bulk-load the Parquet folder ``path`` into ``table``; return the row count."""

    @abstractmethod
    def sql(self, template: str, *names: str) -> Any:
        """``template`` with each ``{}`` replaced by a quoted identifier from ``names``."""

    @abstractmethod
    def replace_view(self, cur: Any, view: str, table: str) -> None:
        """Point ``view`` at ``table`` (and re-grant readers where the database has roles)."""

    @abstractmethod
    def list_tables(self, cur: Any) -> list[str]:
        """Tables of the serving schema."""

    param = "?"
    drop_table = "DROP TABLE IF EXISTS {}"

    # --- shared -------------------------------------------------------------------------------
    @abstractmethod
    def columns(self, cur: Any, table: str) -> set[str]:
        """Column names of a table."""

    def ensure_registry(self, cur: Any) -> None:
        cur.execute(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {} (version TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "published_at TEXT NOT NULL, is_current INTEGER NOT NULL DEFAULT 0, "
                "rows_recommendations INTEGER, rows_related_items INTEGER, as_of TEXT)",
                REGISTRY,
            )
        )
        if "as_of" not in self.columns(cur, REGISTRY):  # a registry from before as_of
            cur.execute(self.sql("ALTER TABLE {} ADD COLUMN as_of TEXT", REGISTRY))

    def versions(self) -> list[dict[str, Any]]:
        """Every registered version, oldest published first."""
        with self.transaction() as cur:
            self.ensure_registry(cur)
            cur.execute(
                self.sql(
                    "SELECT version, model, published_at, is_current, as_of FROM {} "
                    "ORDER BY published_at, version",
                    REGISTRY,
                )
            )
            return [
                {
                    "version": r[0],
                    "model": r[1],
                    "published_at": r[2],
                    "current": bool(r[3]),
                    "as_of": r[4],
                }
                for r in cur.fetchall()
            ]

    def serving(self) -> dict[str, Any] | None:
        """What is serving now: version, model, as_of, published_at (None before any)."""
        current = [v for v in self.versions() if v["current"]]
        return current[0] if current else None

    def current(self) -> str | None:
        serving = self.serving()
        return serving["version"] if serving else None

    def publish(
        self,
        version: str,
        model: str,
        parquet_root: Path,
        keep: int = 3,
        as_of: str | None = None,
        source: Callable[[str], Path] | None = None,
        before_switch: Callable[[], None] | None = None,
    ) -> dict:
        """Load the version's Parquet into new tables and switch the views, atomically.

        ``source(kind)``: the kind's Parquet folder, once it is written (default
        ``parquet_root / kind``): the publish step loads one kind while Spark writes the next.
        ``before_switch``: called inside the transaction once every kind is loaded, before the
        views move (the step swaps its Parquet in there); if it raises, nothing is published.
        """
        check_version(version)
        counts: dict[str, int] = {}
        with self.transaction() as cur:
            self.ensure_registry(cur)
            dropped = self._drop_unregistered(cur, also=version)
            for kind, (columns, indexes) in KINDS.items():
                table = table_name(kind, version)
                cols = ", ".join(f"{n} {t}" for n, t in columns)
                cur.execute(self.sql(f"CREATE TABLE {{}} ({cols})", table))
                path = source(kind) if source else parquet_root / kind
                counts[kind] = self.load(cur, table, [n for n, _ in columns], path)
                for i, index in enumerate(indexes):
                    cur.execute(
                        self.sql(f"CREATE INDEX {{}} ON {{}} ({index})", f"{table}__i{i}", table)
                    )
            cur.execute(
                self.sql(f"DELETE FROM {{}} WHERE version = {self.param}", REGISTRY), (version,)
            )
            p = self.param
            cur.execute(
                self.sql(
                    "INSERT INTO {} (version, model, published_at, is_current, "
                    "rows_recommendations, rows_related_items, as_of) VALUES "
                    f"({p}, {p}, {p}, 0, {p}, {p}, {p})",
                    REGISTRY,
                ),
                (
                    version,
                    model,
                    datetime.now(UTC).isoformat(),
                    counts["recommendations"],
                    counts["related_items"],
                    as_of,
                ),
            )
            if before_switch is not None:
                before_switch()
            self._switch(cur, version)
            removed = self._retire(cur, keep)
        log.info(
            "published %s %s (dropped leftovers %s, retired %s)", version, counts, dropped, removed
        )
        return {"version": version, "rows": counts, "retired": removed, "leftovers": dropped}

    def rollback(self, version: str) -> None:
        with self.transaction() as cur:
            self.ensure_registry(cur)
            cur.execute(
                self.sql(f"SELECT 1 FROM {{}} WHERE version = {self.param}", REGISTRY), (version,)
            )
            if cur.fetchone() is None:
                raise ConfigError(f"no such published version: {version!r}")
            self._switch(cur, version)

    def _switch(self, cur: Any, version: str) -> None:
        for kind in KINDS:
            self.replace_view(cur, kind, table_name(kind, version))
        cur.execute(
            self.sql(
                f"UPDATE {{}} SET is_current = CASE WHEN version = {self.param} THEN 1 ELSE 0 END",
                REGISTRY,
            ),
            (version,),
        )

    def _drop_unregistered(self, cur: Any, also: str) -> list[str]:
        """Tables of versions that never completed (or of ``also``, being replaced)."""
        cur.execute(self.sql("SELECT version FROM {}", REGISTRY))
        registered = {r[0] for r in cur.fetchall()} - {also}
        dropped = []
        for table in self.list_tables(cur):
            kind, _, version = table.partition("__")
            if kind in KINDS and version and version not in registered:
                cur.execute(self.sql(self.drop_table, table))
                dropped.append(table)
        return dropped

    def _retire(self, cur: Any, keep: int) -> list[str]:
        cur.execute(
            self.sql(
                "SELECT version FROM {} WHERE is_current = 0 ORDER BY "
                "published_at DESC, version DESC",
                REGISTRY,
            )
        )
        old = [r[0] for r in cur.fetchall()][max(keep - 1, 0) :]
        for version in old:
            for kind in KINDS:
                cur.execute(self.sql(self.drop_table, table_name(kind, version)))
            cur.execute(
                self.sql(f"DELETE FROM {{}} WHERE version = {self.param}", REGISTRY), (version,)
            )
        return old


@dataclass
class SqliteStore(Store):
    path: Path = Path("serving.db")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # readers keep reading during a publish
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    def sql(self, template: str, *names: str) -> str:
        return template.format(*(self.quote(n) for n in names))

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def load(self, cur: sqlite3.Cursor, table: str, columns: list[str], path: Path) -> int:
        marks = ", ".join("?" * len(columns))
        statement = self.sql(f"INSERT INTO {{}} ({', '.join(columns)}) VALUES ({marks})", table)
        n = 0
        for batch in _batches(path, columns):
            rows = list(zip(*(_python_values(batch.column(c)) for c in columns), strict=True))
            cur.executemany(statement, rows)
            n += len(rows)
        return n

    def replace_view(self, cur: sqlite3.Cursor, view: str, table: str) -> None:
        cur.execute(self.sql("DROP VIEW IF EXISTS {}", view))
        cur.execute(self.sql("CREATE VIEW {} AS SELECT * FROM {}", view, table))

    def list_tables(self, cur: sqlite3.Cursor) -> list[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return [r[0] for r in cur.fetchall()]

    def columns(self, cur: sqlite3.Cursor, table: str) -> set[str]:
        cur.execute(f"PRAGMA table_info({self.quote(table)})")
        return {r[1] for r in cur.fetchall()}


@dataclass
class PostgresStore(Store):
    url: str = ""
    param = "%s"
    # Replacing the version being served drops its views too; the same transaction recreates
    # them (and their grants) before anyone can see the gap.
    drop_table = "DROP TABLE IF EXISTS {} CASCADE"

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        import psycopg

        with psycopg.connect(self.url) as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def sql(self, template: str, *names: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(*(sql.Identifier(n) for n in names))

    def load(self, cur: Any, table: str, columns: list[str], path: Path) -> int:
        import pyarrow.csv as pcsv
        from psycopg import sql

        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        )
        n = 0
        with cur.copy(statement) as copy:
            for batch in _batches(path, columns):
                sink = pa.BufferOutputStream()
                pcsv.write_csv(
                    pa.Table.from_batches([batch]), sink, pcsv.WriteOptions(include_header=False)
                )
                copy.write(sink.getvalue().to_pybytes())
                n += batch.num_rows
        return n

    def replace_view(self, cur: Any, view: str, table: str) -> None:
        cur.execute(self.sql("CREATE OR REPLACE VIEW {} AS SELECT * FROM {}", view, table))
        if self.reader_role:
            # Grants stay on a replaced view, but say it again: least privilege is explicit.
            cur.execute(self.sql("GRANT SELECT ON {} TO {}", view, self.reader_role))

    def list_tables(self, cur: Any) -> list[str]:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return [r[0] for r in cur.fetchall()]

    def columns(self, cur: Any, table: str) -> set[str]:
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {r[0] for r in cur.fetchall()}


def open_store(
    database_url: str | None, sqlite_path: Path, reader_role: str | None = None
) -> Store:
    if database_url:
        return PostgresStore(reader_role=reader_role, url=database_url)
    return SqliteStore(reader_role=None, path=sqlite_path)


SQLITE_FILE = "serving/serving.db"  # under the data root


def add_store_options(parser: Any) -> None:
    """``--database-url`` / ``--reader-role``: where the serving store is (every step that
    reads or changes what is serving takes the same two)."""
    parser.add_argument(
        "--database-url",
        default=None,
        type=lambda v: v or None,  # the DAG passes "" when no database is configured
        help="PostgreSQL URL of the serving store (default: SQLite under the data root)",
    )
    parser.add_argument(
        "--reader-role",
        default=None,
        type=lambda v: v or None,
        help="PostgreSQL role granted SELECT on the views",
    )


def store_for(data_root: Path, database_url: str | None, reader_role: str | None = None) -> Store:
    return open_store(database_url, data_root / SQLITE_FILE, reader_role)
