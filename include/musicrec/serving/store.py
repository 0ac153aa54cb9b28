"""The serving database: versioned tables, an atomic switch of views, rollback.

PostgreSQL when a database URL is given (bulk COPY), else an embedded SQLite file. Every
published version gets its own tables ``<kind>__<version>``; consumers read the views
``recommendations`` (user_id, rank, item_id, score, item_name), ``related_items`` (item_id,
rank, related_item_id, similarity, related_item_name) and ``items`` (item_id, item_name,
streams), which one transaction re-points to the new version: readers see the complete old
version or the complete new one, never a mix. SQL is parameterised; identifiers (version
names) are quoted, never formatted into SQL.

A version stores each user's (and each item's) ranked list as one row of two arrays (item
indices, scores: PostgreSQL arrays, JSON text in SQLite), and item ids and names once, in
``items``; the views expand the lists and join the names. At the large size that is 293k rows
instead of 18M: the row count, not the bytes, is what a database load costs.

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
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from musicrec.exceptions import ConfigError

log = logging.getLogger(__name__)

# kind: (its Parquet columns with portable types, index column lists). A "[]" type is a list:
# one row holds a user's (an item's) whole ranked list; the view numbers its elements from 1.
KINDS: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "recommendations": (
        [("user_id", "TEXT"), ("item_idx", "INTEGER[]"), ("score", "REAL[]")],
        ["user_id"],
    ),
    "related_items": (
        [("item_idx", "INTEGER"), ("related_item_idx", "INTEGER[]"), ("similarity", "REAL[]")],
        ["item_idx"],
    ),
    "items": (
        [
            ("item_idx", "INTEGER"),
            ("item_id", "TEXT"),
            ("item_name", "TEXT"),
            ("streams", "INTEGER"),
        ],
        ["item_idx", "item_id"],
    ),
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


def _list_text(column: pa.Array, brackets: str) -> pa.Array:
    """A list column of numbers as text, a row's list in one value: "[3,1]" (JSON, SQLite) or
    "{3,1}" (a PostgreSQL array literal). Arrow writes the numbers in C++ (floats in their
    shortest round-trip form). A null list or element, or a number that is not finite (no JSON
    or array literal can hold it), is refused."""
    values = pc.list_flatten(column)
    if column.null_count or values.null_count:
        raise ValueError(f"a ranked list or one of its elements is null: {column.type}")
    if pa.types.is_floating(values.type) and not pc.all(pc.is_finite(values)).as_py():
        raise ValueError("a ranked list holds a score that is not finite")
    text = pc.binary_join(pc.cast(column, pa.list_(pa.string())), ",")
    return pc.binary_join_element_wise(brackets[0], text, brackets[1], "")


def _flat(batch: pa.RecordBatch, columns: list[str], brackets: str) -> tuple[list[pa.Array], int]:
    """The batch's ``columns`` with each list column as text (``_list_text``), and how many
    served rows the batch holds: its lists' elements (a row's lists must be of equal length),
    else its rows."""
    lists = [name for name in columns if pa.types.is_list(batch.schema.field(name).type)]
    if not lists:
        return [batch.column(name) for name in columns], batch.num_rows
    arrays = [
        _list_text(batch.column(name), brackets) if name in lists else batch.column(name)
        for name in columns
    ]
    lengths = [pc.list_value_length(batch.column(name)) for name in lists]
    if any(not pc.all(pc.equal(lengths[0], other)).as_py() for other in lengths[1:]):
        raise ValueError(f"lists {lists} of different lengths in one row")
    return arrays, int(pc.sum(lengths[0]).as_py() or 0)


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
    def replace_view(self, cur: Any, view: str, query: Any) -> None:
        """(Re)define ``view`` as ``query`` (and re-grant readers where the database has roles)."""

    @abstractmethod
    def list_tables(self, cur: Any) -> list[str]:
        """Tables of the serving schema."""

    param = "?"
    drop_table = "DROP TABLE IF EXISTS {}"
    # Per kind, its view over a version's tables: {0} the kind's table, {1} the version's items.
    views: ClassVar[dict[str, str]] = {}

    def table_type(self, portable: str) -> str:
        return portable

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
                cols = ", ".join(f"{n} {self.table_type(t)}" for n, t in columns)
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
        items = table_name("items", version)
        # A version published before lists (a row per recommendation, names in every row)
        # is served as it was stored: rollback to it still works.
        flat = "item_idx" not in self.columns(cur, items)
        for kind in KINDS:
            query = "SELECT * FROM {0}" if flat else self.views[kind]
            self.replace_view(cur, kind, self.sql(query, table_name(kind, version), items))
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
    # A list is JSON text; json_each numbers its elements from 0 and the scores are read at
    # the same place.
    views = {
        "recommendations": (
            "SELECT r.user_id AS user_id, j.key + 1 AS rank, i.item_id AS item_id, "
            "CAST(json_extract(r.score, '$[' || j.key || ']') AS REAL) AS score, "
            "i.item_name AS item_name "
            "FROM {0} AS r JOIN json_each(r.item_idx) AS j "
            "LEFT JOIN {1} AS i ON i.item_idx = j.value"
        ),
        "related_items": (
            "SELECT s.item_id AS item_id, j.key + 1 AS rank, i.item_id AS related_item_id, "
            "CAST(json_extract(r.similarity, '$[' || j.key || ']') AS REAL) AS similarity, "
            "i.item_name AS related_item_name "
            "FROM {0} AS r JOIN {1} AS s ON s.item_idx = r.item_idx "
            "JOIN json_each(r.related_item_idx) AS j "
            "LEFT JOIN {1} AS i ON i.item_idx = j.value"
        ),
        "items": "SELECT item_id, item_name, streams FROM {0}",
    }

    def table_type(self, portable: str) -> str:
        return "TEXT" if portable.endswith("[]") else portable  # JSON

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
            arrays, served = _flat(batch, columns, "[]")
            cur.executemany(statement, zip(*(_python_values(a) for a in arrays), strict=True))
            n += served
        return n

    def replace_view(self, cur: sqlite3.Cursor, view: str, query: str) -> None:
        cur.execute(self.sql("DROP VIEW IF EXISTS {}", view))
        cur.execute(self.sql("CREATE VIEW {} AS ", view) + query)

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
    views = {
        "recommendations": (
            "SELECT r.user_id, u.rank::integer AS rank, i.item_id, u.score, i.item_name "
            "FROM {0} AS r CROSS JOIN LATERAL unnest(r.item_idx, r.score) "
            "WITH ORDINALITY AS u(item_idx, score, rank) "
            "LEFT JOIN {1} AS i ON i.item_idx = u.item_idx"
        ),
        "related_items": (
            "SELECT s.item_id, u.rank::integer AS rank, i.item_id AS related_item_id, "
            "u.similarity, i.item_name AS related_item_name "
            "FROM {0} AS r JOIN {1} AS s ON s.item_idx = r.item_idx "
            "CROSS JOIN LATERAL unnest(r.related_item_idx, r.similarity) "
            "WITH ORDINALITY AS u(item_idx, similarity, rank) "
            "LEFT JOIN {1} AS i ON i.item_idx = u.item_idx"
        ),
        "items": "SELECT item_id, item_name, streams FROM {0}",
    }

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
                arrays, served = _flat(batch, columns, "{}")
                sink = pa.BufferOutputStream()
                pcsv.write_csv(
                    pa.Table.from_arrays(arrays, names=columns),
                    sink,
                    pcsv.WriteOptions(include_header=False),
                )
                copy.write(sink.getvalue().to_pybytes())
                n += served
        return n

    def replace_view(self, cur: Any, view: str, query: Any) -> None:
        cur.execute(self.sql("CREATE OR REPLACE VIEW {} AS ", view) + query)
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
