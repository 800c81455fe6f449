"""Shared fixtures: every test gets its own SQLite file and its own engine."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll `predicate` until it holds; fail the test after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.002)


def wait_until_sync(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """The blocking form of `wait_until`, for tests that drive other processes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


async def outcome(ref: Any, timeout: float = 3.0) -> Any:
    """`await ref.aio_result()`, bounded in real time."""
    return await asyncio.wait_for(ref.aio_result(), timeout)


ROOT = Path(__file__).resolve().parent.parent


def spawn_worker(module: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m tests.procs.<module> *args` (a worker process), output to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", f"tests.procs.{module}", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def worker_up(db: str, proc: subprocess.Popen[bytes]) -> bool:
    """The worker process exited, or registered itself as ACTIVE on `db`."""
    if proc.poll() is not None:
        return True
    try:
        sql = "SELECT 1 FROM workers WHERE pid = ? AND status = 'ACTIVE'"
        return bool(query(db, sql, (proc.pid,)))
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
