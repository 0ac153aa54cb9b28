"""The serving store on a real PostgreSQL server and on SQLite: atomic switch, crash safety,
least privilege, hostile identifiers, rollback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from musicrec.exceptions import ConfigError
from musicrec.serving.store import PostgresStore, SqliteStore

ROOT = Path(__file__).resolve().parents[1]


NAMES = {1: "A", 2: "B", 3: None}  # item 3 has no name


def write_version(root: Path, marker: float, users: int = 3000) -> Path:
    """A version whose every score equals ``marker``: a reader can tell versions apart. Each
    user has 10 recommendations (one row of lists), item 1 two related items; 97 items."""
    recs = pa.table(
        {
            "user_id": [f"u{u}" for u in range(users)],
            "item_idx": pa.array(
                [[(u * 10 + r) % 97 for r in range(10)] for u in range(users)],
                pa.list_(pa.int32()),
            ),
            "score": pa.array([[marker] * 10] * users, pa.list_(pa.float32())),
        }
    )
    related = pa.table(
        {
            "item_idx": pa.array([1], pa.int32()),
            "related_item_idx": pa.array([[2, 3]], pa.list_(pa.int32())),
            "similarity": pa.array([[marker, marker]], pa.list_(pa.float32())),
        }
    )
    items = pa.table(
        {
            "item_idx": pa.array(range(97), pa.int32()),
            "item_id": [f"i{n}" for n in range(97)],
            "item_name": [NAMES.get(n, f"Artist {n}") for n in range(97)],
            "streams": [100 - n for n in range(97)],
        }
    )
    folder = root / f"v{marker}"
    for kind, table in (("recommendations", recs), ("related_items", related), ("items", items)):
        (folder / kind).mkdir(parents=True)
        pq.write_table(table, folder / kind / "part-0.parquet")
    return folder


@pytest.fixture
def pg_db(pg_server):
    """A fresh database owned by a publisher role, plus a reader role, per test."""
    name = f"serving_{time.monotonic_ns()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        for role in ("publisher", "reader"):
            conn.execute(
                f"DO $$BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object "
                "THEN NULL; END$$"
            )
    with psycopg.connect(pg_server.url(db=name), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA serving AUTHORIZATION publisher")
        conn.execute("ALTER ROLE publisher SET search_path = serving")
        conn.execute("ALTER ROLE reader SET search_path = serving")
        conn.execute("GRANT USAGE ON SCHEMA serving TO reader")
    return {
        "publisher": pg_server.url("publisher", db=name),
        "reader": pg_server.url("reader", db=name),
    }


def pg_store(pg_db) -> PostgresStore:
    return PostgresStore(reader_role="reader", url=pg_db["publisher"])


def poll(read, stop: threading.Event, seen: list) -> None:
    while not stop.is_set():
        try:
            seen.append(read())
        except Exception as exc:  # recorded: the test asserts on it
            seen.append(("error", repr(exc)))


@pytest.mark.postgres
def test_pg_switch_is_atomic_under_a_polling_reader(pg_db, tmp_path):
    store = pg_store(pg_db)
    store.publish("v1", "m1", write_version(tmp_path, 1.0))
    stop, seen = threading.Event(), []
    with psycopg.connect(pg_db["reader"], autocommit=True) as conn:

        def read():
            return conn.execute(
                "SELECT count(*), min(score), max(score) FROM recommendations"
            ).fetchone()

        reader = threading.Thread(target=poll, args=(read, stop, seen))
        reader.start()
        store.publish("v2", "m2", write_version(tmp_path, 2.0, users=4000))
        store.publish("v3", "m3", write_version(tmp_path, 3.0, users=2000))
        time.sleep(0.2)
        stop.set()
        reader.join()
    assert len(seen) > 10
    allowed = {(30000, 1.0, 1.0), (40000, 2.0, 2.0), (20000, 3.0, 3.0)}
    assert set(seen) <= allowed, set(seen) - allowed
    assert (20000, 3.0, 3.0) in seen


@pytest.mark.postgres
def test_pg_publisher_killed_mid_load_leaves_old_version(pg_db, tmp_path):
    store = pg_store(pg_db)
    store.publish("v1", "m1", write_version(tmp_path, 1.0))
    folder = write_version(tmp_path, 2.0)
    script = f"""
import os
from musicrec.serving import store as serving
store = serving.PostgresStore(reader_role="reader", url={pg_db["publisher"]!r})
original = store.load
def dying_load(cur, table, columns, path):
    original(cur, table, columns, path)
    os._exit(9)  # killed with the COPY done and the transaction open
store.load = dying_load
store.publish("v2", "m2", __import__("pathlib").Path({str(folder)!r}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 9, done.stderr
    assert store.current() == "v1"
    with psycopg.connect(pg_db["reader"]) as conn:
        assert conn.execute("SELECT min(score), count(*) FROM recommendations").fetchone() == (
            1.0,
            30000,
        )
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'serving'")
        }
    assert not [t for t in tables if t.endswith("__v2")]
    store.publish("v2", "m2", folder)  # the next run succeeds
    assert store.current() == "v2"


@pytest.mark.postgres
def test_pg_reader_has_select_only_after_switches(pg_db, tmp_path):
    store = pg_store(pg_db)
    store.publish("v1", "m1", write_version(tmp_path, 1.0))
    store.publish("v2", "m2", write_version(tmp_path, 2.0))
    with psycopg.connect(pg_db["reader"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM related_items").fetchone() == (2,)
        assert conn.execute("SELECT item_name FROM items WHERE item_id = 'i1'").fetchone() == ("A",)
        for statement in (
            "INSERT INTO items VALUES ('x', NULL, 0)",  # a view of one table: insertable
            "UPDATE items SET item_name = 'x'",
            "DELETE FROM items",
            "CREATE TABLE serving.evil (x int)",
            "DROP VIEW recommendations",
            'SELECT * FROM "recommendations__v2"',
            "SELECT * FROM serving_versions",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.postgres
def test_pg_hostile_version_is_an_identifier_not_sql(pg_db, tmp_path):
    store = pg_store(pg_db)
    hostile = 'x"; DROP TABLE serving_versions; --'
    store.publish(hostile, "m", write_version(tmp_path, 1.0))
    assert store.current() == hostile
    with psycopg.connect(pg_db["publisher"]) as conn:
        assert conn.execute("SELECT count(*) FROM serving_versions").fetchone() == (1,)
    with pytest.raises(ConfigError):
        store.publish("v" * 41, "m", write_version(tmp_path, 2.0))


@pytest.mark.postgres
def test_pg_rollback_and_retention(pg_db, tmp_path):
    store = pg_store(pg_db)
    for v in (1.0, 2.0, 3.0, 4.0):
        store.publish(f"v{int(v)}", "m", write_version(tmp_path, v), keep=3)
    assert [v["version"] for v in store.versions()] == ["v2", "v3", "v4"]
    store.rollback("v2")
    with psycopg.connect(pg_db["reader"]) as conn:
        assert conn.execute("SELECT max(score) FROM recommendations").fetchone() == (2.0,)
    with pytest.raises(ConfigError):
        store.rollback("v1")


@pytest.mark.unit
def test_sqlite_default_publish_switch_rollback(tmp_path):
    import sqlite3

    store = SqliteStore(path=tmp_path / "serving.db")
    store.publish("v1", "m1", write_version(tmp_path, 1.0), as_of="2026-01-01")
    stop, seen = threading.Event(), []
    conn = sqlite3.connect(tmp_path / "serving.db", check_same_thread=False)

    def read():  # two users' lists: v2 has no user u2500
        return conn.execute(
            "SELECT count(*), min(score), max(score) FROM recommendations "
            "WHERE user_id IN ('u0', 'u2500')"
        ).fetchone()

    reader = threading.Thread(target=poll, args=(read, stop, seen))
    reader.start()
    store.publish("v2", "m2", write_version(tmp_path, 2.0, users=1000), as_of="2026-01-02")
    deadline = time.monotonic() + 30
    while (10, 2.0, 2.0) not in seen and time.monotonic() < deadline:
        time.sleep(0.01)  # until the reader has seen the new version
    stop.set()
    reader.join()
    assert len(seen) > 10 and (10, 2.0, 2.0) in seen, seen[-3:]
    assert set(seen) <= {(20, 1.0, 1.0), (10, 2.0, 2.0)}, set(seen)
    assert store.serving()["as_of"] == "2026-01-02" and store.serving()["model"] == "m2"
    store.rollback("v1")
    assert conn.execute("SELECT max(score) FROM recommendations").fetchone() == (1.0,)
    assert store.serving() | {"published_at": None} == {
        "version": "v1",
        "model": "m1",
        "as_of": "2026-01-01",
        "current": True,
        "published_at": None,
    }
    index = conn.execute("SELECT name FROM sqlite_master WHERE type='index'").fetchall()
    assert ("recommendations__v2__i0",) in index


@pytest.mark.unit
def test_sqlite_loads_each_kind_when_its_source_is_ready_and_switches_after(tmp_path):
    """The publish step loads one kind while Spark writes the next: ``source`` is asked for
    each kind in turn, after the previous one is loaded; ``before_switch`` runs once all are,
    while readers still see the old version; if it raises, nothing is published."""
    import sqlite3

    store = SqliteStore(path=tmp_path / "serving.db")
    store.publish("v1", "m1", write_version(tmp_path, 1.0))
    reader = sqlite3.connect(tmp_path / "serving.db")
    old_score = "SELECT max(score) FROM recommendations"
    calls: list[tuple] = []
    load = store.load

    def recorded_load(cur, table, columns, path):
        calls.append(("load", table))
        return load(cur, table, columns, path)

    store.load = recorded_load  # type: ignore[method-assign]
    folder = write_version(tmp_path, 2.0)

    def source(kind: str) -> Path:
        calls.append(("source", kind))
        return folder / kind

    def before_switch() -> None:
        calls.append(("before switch", reader.execute(old_score).fetchone()[0]))

    store.publish("v2", "m2", Path("/nonexistent"), source=source, before_switch=before_switch)
    assert calls == [
        ("source", "recommendations"),
        ("load", "recommendations__v2"),
        ("source", "related_items"),
        ("load", "related_items__v2"),
        ("source", "items"),
        ("load", "items__v2"),
        ("before switch", 1.0),
    ]
    assert store.current() == "v2" and reader.execute(old_score).fetchone() == (2.0,)

    def failing_swap() -> None:
        raise OSError("the Parquet could not be swapped in")

    with pytest.raises(OSError, match="swapped in"):
        store.publish("v3", "m3", write_version(tmp_path, 3.0), before_switch=failing_swap)
    assert store.current() == "v2" and reader.execute(old_score).fetchone() == (2.0,)
    tables = reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert not [t for (t,) in tables if t.endswith("__v3")]


@pytest.mark.unit
def test_sqlite_loads_nulls_as_null_in_every_column_type(tmp_path):
    """Values reach SQLite through numpy where that is exact; a null stays NULL, never NaN."""
    import sqlite3

    folder = write_version(tmp_path, 1.0, users=2)
    pq.write_table(
        pa.table(
            {
                "item_idx": pa.array([0, 1, 2], pa.int32()),
                "item_id": pa.array(["i1", None, "i3"], pa.large_string()),
                "item_name": ["A", None, "C"],
                "streams": pa.array([5, None, 7], pa.int64()),
            }
        ),
        folder / "items" / "part-0.parquet",
    )
    SqliteStore(path=tmp_path / "serving.db").publish("v1", "m1", folder)
    rows = sqlite3.connect(tmp_path / "serving.db").execute(
        "SELECT item_id, item_name, streams, typeof(streams) FROM items ORDER BY rowid"
    )
    assert rows.fetchall() == [
        ("i1", "A", 5, "integer"),
        (None, None, None, "null"),
        ("i3", "C", 7, "integer"),
    ]


@pytest.mark.unit
def test_column_values_through_numpy_only_where_they_are_the_python_values():
    from datetime import datetime

    from musicrec.serving.store import _python_values

    stamps = pa.array([datetime(2026, 1, 2, 3, 4, 5), None], pa.timestamp("ns"))
    assert _python_values(stamps) == stamps.to_pylist()  # numpy's tolist: integers
    assert _python_values(pa.array([1.5, None])) == [1.5, None]
    values = _python_values(pa.array([3, 4], pa.int32()))
    assert values == [3, 4] and all(type(v) is int for v in values)
    assert _python_values(pa.array(["a", None], pa.large_string())) == ["a", None]


@pytest.mark.unit
def test_a_registry_from_before_as_of_gains_the_column(tmp_path):
    import sqlite3

    db = tmp_path / "serving.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE serving_versions (version TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "published_at TEXT NOT NULL, is_current INTEGER NOT NULL DEFAULT 0, "
            "rows_recommendations INTEGER, rows_related_items INTEGER)"
        )
        conn.execute("INSERT INTO serving_versions VALUES ('old', 'm0', '2026-01-01', 1, 1, 1)")
    store = SqliteStore(path=db)
    assert store.serving()["as_of"] is None  # unknown, never guessed
    store.publish("v1", "m1", write_version(tmp_path, 1.0), as_of="2026-01-05")
    assert store.serving()["as_of"] == "2026-01-05"


def served_rows(query):
    """What the three views serve for user u1 and item i1, and the registry's counts."""
    return (
        query(
            "SELECT user_id, rank, item_id, score, item_name FROM recommendations "
            "WHERE user_id = 'u1' ORDER BY rank"
        ),
        query(
            "SELECT item_id, rank, related_item_id, similarity, related_item_name "
            "FROM related_items ORDER BY item_id, rank"
        ),
        query(
            "SELECT item_id, item_name, streams FROM items WHERE item_id IN ('i1', 'i3') "
            "ORDER BY item_id"
        ),
        query("SELECT count(*), count(DISTINCT user_id) FROM recommendations"),
        query("SELECT rows_recommendations, rows_related_items FROM serving_versions"),
    )


EXPECTED = (
    [("u1", r + 1, f"i{10 + r}", 0.5, f"Artist {10 + r}") for r in range(10)],
    [("i1", 1, "i2", 0.5, "B"), ("i1", 2, "i3", 0.5, None)],
    [("i1", "A", 99), ("i3", None, 97)],
    [(30, 3)],
    [(30, 2)],
)


@pytest.mark.unit
def test_sqlite_views_expand_each_list_in_order_with_ids_and_names(tmp_path):
    import sqlite3

    SqliteStore(path=tmp_path / "serving.db").publish("v1", "m", write_version(tmp_path, 0.5, 3))
    conn = sqlite3.connect(tmp_path / "serving.db")
    assert served_rows(lambda q: conn.execute(q).fetchall()) == EXPECTED
    types = "SELECT DISTINCT typeof(rank), typeof(score), typeof(item_id) FROM recommendations"
    assert conn.execute(types).fetchall() == [("integer", "real", "text")]


@pytest.mark.postgres
def test_pg_views_expand_each_list_in_order_with_ids_and_names(pg_db, tmp_path):
    pg_store(pg_db).publish("v1", "m", write_version(tmp_path, 0.5, 3))
    with psycopg.connect(pg_db["publisher"]) as conn:
        assert served_rows(lambda q: conn.execute(q).fetchall()) == EXPECTED


@pytest.mark.unit
@pytest.mark.parametrize(
    "score, message",
    [
        (pa.array([[1.0, float("nan")]], pa.list_(pa.float32())), "not finite"),
        (pa.array([[1.0]], pa.list_(pa.float32())), "different lengths"),
        (pa.array([None], pa.list_(pa.float32())), "null"),
        (pa.array([[1.0, None]], pa.list_(pa.float32())), "null"),
    ],
)
def test_a_list_no_view_can_serve_is_refused_and_nothing_is_published(tmp_path, score, message):
    store = SqliteStore(path=tmp_path / "serving.db")
    store.publish("v1", "m", write_version(tmp_path, 1.0, 3))
    folder = write_version(tmp_path, 2.0, 3)
    bad = pa.table(
        {"user_id": ["u0"], "item_idx": pa.array([[1, 2]], pa.list_(pa.int32())), "score": score}
    )
    pq.write_table(bad, folder / "recommendations" / "part-0.parquet")
    with pytest.raises(ValueError, match=message):
        store.publish("v2", "m", folder)
    assert store.current() == "v1"


@pytest.mark.unit
def test_a_version_published_before_lists_is_still_served_after_a_rollback(tmp_path):
    """Tables of a row per recommendation (names in every row), as publish wrote them before
    lists: rollback serves them as they are, and the next publish switches to lists."""
    import sqlite3

    db = tmp_path / "serving.db"
    store = SqliteStore(path=db)
    store.publish("v1", "m", write_version(tmp_path, 0.5, 3))
    with sqlite3.connect(db) as conn:
        conn.execute(
            'CREATE TABLE "recommendations__old" (user_id TEXT, rank INTEGER, '
            "item_id TEXT, score REAL, item_name TEXT)"
        )
        conn.execute("""INSERT INTO "recommendations__old" VALUES ('u1', 1, 'i7', 0.25, 'G')""")
        conn.execute(
            'CREATE TABLE "related_items__old" (item_id TEXT, rank INTEGER, '
            "related_item_id TEXT, similarity REAL, related_item_name TEXT)"
        )
        conn.execute('CREATE TABLE "items__old" (item_id TEXT, item_name TEXT, streams INTEGER)')
        conn.execute(
            "INSERT INTO serving_versions (version, model, published_at, is_current) "
            "VALUES ('old', 'm0', '2026-01-01', 0)"
        )
    store.rollback("old")
    read = sqlite3.connect(db)
    assert read.execute("SELECT * FROM recommendations").fetchall() == [("u1", 1, "i7", 0.25, "G")]
    store.rollback("v1")
    assert served_rows(lambda q: read.execute(q).fetchall())[0] == EXPECTED[0]
