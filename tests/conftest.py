"""Shared fixtures: every test gets its own SQLite file and its own engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchlite import Hatchet


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "hatchlite.db")


@pytest.fixture
def hatchet(db_path: str) -> Iterator[Hatchet]:
    client = Hatchet(db=db_path)
    yield client
    client.close()


def query(db_path: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the database file directly, as a separate connection would."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
