"""The database file: schema, WAL, and clear refusals of files that are not ours."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hatchlite import Context, EmptyModel, Hatchet
from hatchlite.exceptions import DatabaseError
from hatchlite.store.schema import LATEST_VERSION, MIGRATIONS
from tests.conftest import query


def _run_one(client: Hatchet) -> None:
    @client.task()
    def one(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"one": 1}

    assert one.run() == {"one": 1}


def test_new_database_is_migrated_and_in_wal_mode(hatchet: Hatchet, db_path: str) -> None:
    _run_one(hatchet)
    assert query(db_path, "PRAGMA user_version") == [(LATEST_VERSION,)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert query(db_path, "SELECT value FROM hatchlite_meta WHERE key='app'") == [("hatchlite",)]
    run = query(
        db_path,
        "SELECT status, created_at <= started_at, started_at <= finished_at FROM workflow_runs",
    )
    assert run == [("COMPLETED", 1, 1)]
    task = query(
        db_path,
        "SELECT status, queued_at IS NOT NULL, started_at IS NOT NULL, "
        "finished_at IS NOT NULL, output FROM task_runs",
    )
    assert task == [("COMPLETED", 1, 1, 1, '{"one":1}')]


def test_reopening_keeps_data(db_path: str) -> None:
    first = Hatchet(db=db_path)
    _run_one(first)
    first.close()
    second = Hatchet(db=db_path)
    _run_one(second)
    second.close()
    assert query(db_path, "SELECT count(*) FROM workflow_runs") == [(2,)]


def _expect_refusal(path: str, match: str) -> None:
    before = Path(path).read_bytes()
    client = Hatchet(db=path)
    with pytest.raises(DatabaseError, match=match):
        _run_one(client)
    client.close()
    assert Path(path).read_bytes() == before, "the file was modified"


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    _expect_refusal(path, "not a hatchlite database")
    assert query(path, "SELECT name FROM users") == [("ada",)]


def test_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    _expect_refusal(str(path), "not a SQLite database|corrupt")


def test_newer_schema_is_refused_untouched(db_path: str) -> None:
    client = Hatchet(db=db_path)
    _run_one(client)
    client.close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    _expect_refusal(db_path, "newer hatchlite")


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    client = Hatchet(db=str(tmp_path / "nope" / "x.db"))
    with pytest.raises(DatabaseError, match="does not exist"):
        _run_one(client)
    client.close()


def test_read_only_database_is_a_clear_error(db_path: str) -> None:
    client = Hatchet(db=db_path)
    _run_one(client)
    client.close()
    read_only = Hatchet(db=f"file:{db_path}?mode=ro")
    with pytest.raises(DatabaseError, match="read-only"):
        _run_one(read_only)
    read_only.close()
    assert query(db_path, "SELECT count(*) FROM workflow_runs") == [(1,)]


def test_in_memory_database(tmp_path: Path) -> None:
    client = Hatchet(db=":memory:")
    _run_one(client)
    client.close()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("version", range(1, LATEST_VERSION))
def test_a_database_of_an_older_schema_is_migrated_and_keeps_its_runs(
    tmp_path: Path, version: int
) -> None:
    path = str(tmp_path / f"v{version}.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for target, statements in MIGRATIONS[:version]:
        for statement in statements:
            if callable(statement):
                statement(conn)
            else:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
    conn.execute(
        """INSERT INTO workflow_runs (id, workflow_name, status, is_dag, input,
               additional_metadata, priority, created_at)
           VALUES ('old-run', 'old', 'COMPLETED', 0, '{}', '{}', 1, 0)"""
    )
    conn.close()

    client = Hatchet(db=path)
    try:
        _run_one(client)
    finally:
        client.close()
    assert query(path, "PRAGMA user_version") == [(LATEST_VERSION,)]
    assert query(path, "SELECT count(*) FROM workflow_runs WHERE id = 'old-run'") == [(1,)]
