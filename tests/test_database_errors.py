"""Errors from the database file reach the user as clear `DatabaseError`s that name the
file and say what to do; worker rows stay bounded."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hatchlite import Context, EmptyModel, Hatchet, Worker, WorkerStatus
from hatchlite.exceptions import DatabaseError
from hatchlite.store.db import Database
from hatchlite.store.workers import KEEP_INACTIVE_WORKERS
from tests.conftest import query, wait_until

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


def _run_one(client: Hatchet) -> None:
    @client.task()
    def one(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"one": 1}

    assert one.run() == {"one": 1}


# -- damaged pages ---------------------------------------------------------------------


def _database_with_runs(db_path: str, runs: int = 40) -> list[str]:
    """A closed hatchlite database with `runs` completed runs; returns their ids."""
    client = Hatchet(db=db_path)

    @client.task()
    def padded(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"pad": "x" * 1500}  # about two task runs per page

    refs = padded.run_many_no_wait([padded.create_bulk_run_item() for _ in range(runs)])
    for ref in refs:
        ref.result()
    client.close()
    query(db_path, "PRAGMA wal_checkpoint(TRUNCATE)")
    return [ref.workflow_run_id for ref in refs]


def _damage_task_runs_page(db_path: str, which: int, table: str = "task_runs") -> None:
    """Overwrite one leaf page of a table (task_runs; by position) with garbage."""
    try:
        pages = query(
            db_path,
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path",
            (table,),
        )
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table")
    assert len(pages) >= 5, pages
    page_size = int(str(query(db_path, "PRAGMA page_size")[0][0]))
    pageno = int(str(pages[which][0]))
    assert not os.path.exists(db_path + "-wal") or os.path.getsize(db_path + "-wal") == 0
    with open(db_path, "r+b") as fh:
        fh.seek((pageno - 1) * page_size)
        fh.write(b"\xff" * page_size)


def _assert_damage_message(exc: DatabaseError, db_path: str) -> None:
    text = str(exc)
    assert db_path in text
    assert "damaged" in text
    assert "backup" in text
    assert ".recover" in text
    assert isinstance(exc.__cause__, sqlite3.DatabaseError)


@pytest.mark.timeout(60)
def test_a_damaged_page_is_a_clear_error_and_the_rest_still_works(db_path: str) -> None:
    run_ids = _database_with_runs(db_path)
    _damage_task_runs_page(db_path, which=5)
    client = Hatchet(db=db_path)
    try:
        failed = 0
        for run_id in run_ids:
            try:
                details = client.runs.get_details(run_id)
            except DatabaseError as exc:
                _assert_damage_message(exc, db_path)
                failed += 1
            else:
                assert details.external_id == run_id
                assert details.task_runs["padded"].output == {"pad": "x" * 1500}
        assert 1 <= failed < len(run_ids)
        _run_one(client)  # new runs do not touch the damaged page
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_a_write_to_a_damaged_page_is_a_clear_error(db_path: str) -> None:
    _database_with_runs(db_path)
    _damage_task_runs_page(db_path, which=-1)  # where the next task run goes
    client = Hatchet(db=db_path)
    try:
        with pytest.raises(DatabaseError) as caught:
            _run_one(client)
        _assert_damage_message(caught.value, db_path)
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_damage_only_the_engine_touches_fails_the_waiting_caller(db_path: str) -> None:
    _database_with_runs(db_path, runs=400)
    # Finishing a task appends its attempt here: the engine's own step fails from now on.
    _damage_task_runs_page(db_path, which=-1, table="task_attempts")
    client = Hatchet(db=db_path)
    try:
        with pytest.raises(DatabaseError) as caught:
            _run_one(client)  # before: waited forever while the step failed in a loop
        _assert_damage_message(caught.value, db_path)
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_damage_found_while_opening_is_a_clear_error(db_path: str) -> None:
    _database_with_runs(db_path, runs=1)
    with open(db_path, "r+b") as fh:
        fh.seek(100)  # page 1 after the file header: the schema's b-tree page
        fh.write(b"\xff" * 200)
    before = Path(db_path).read_bytes()
    client = Hatchet(db=db_path)
    try:
        with pytest.raises(DatabaseError) as caught:
            _run_one(client)
        _assert_damage_message(caught.value, db_path)
    finally:
        client.close()
    assert Path(db_path).read_bytes() == before, "the file was modified"


# -- errors of single jobs ---------------------------------------------------------------


@pytest.mark.timeout(30)
def test_store_errors_name_the_file_and_python_errors_stay_themselves(db_path: str) -> None:
    db = Database(db_path)
    db.open()
    try:
        with pytest.raises(ZeroDivisionError):
            db.run_sync(lambda conn: 1 // 0)
        with pytest.raises(DatabaseError, match="no such table") as caught:
            db.run_sync(lambda conn: conn.execute("SELECT * FROM no_such_table"))
        assert db_path in str(caught.value)
        assert "integrity_check" in str(caught.value)
        assert db.run_sync(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    finally:
        db.close()


@pytest.mark.timeout(30)
def test_a_failing_batch_hook_fails_its_batch_not_the_database_thread(db_path: str) -> None:
    db = Database(db_path)
    db.open()
    try:
        calls = 0

        def hook(conn: sqlite3.Connection) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("hook bug")

        db.on_batch = hook
        with pytest.raises(RuntimeError, match="hook bug"):
            db.run_sync(lambda conn: conn.execute("INSERT INTO hatchlite_meta VALUES ('a', 'b')"))
        # The thread lives on, and the failed batch wrote nothing.
        assert db.run_sync(
            lambda conn: conn.execute("SELECT count(*) FROM hatchlite_meta WHERE key = 'a'")
        ).fetchone() == (0,)
    finally:
        db.close()


@pytest.mark.timeout(30)
async def test_a_full_disk_fails_every_job_of_the_batch_it_undid(db_path: str) -> None:
    db = Database(db_path)
    db.open()
    try:
        pages = db.run_sync(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        db.run_sync(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"), write=False)

        def insert(key: str, size: int) -> Callable[[sqlite3.Connection], None]:
            def job(conn: sqlite3.Connection) -> None:
                conn.execute("INSERT INTO hatchlite_meta VALUES (?, ?)", (key, "x" * size))

            return job

        # Hold the database thread so both writes land in one group-committed batch.
        gate = threading.Event()
        held = db.submit(lambda conn: gate.wait(5), write=False)
        small = db.submit(insert("small", 10))
        big = db.submit(insert("big", 400_000))
        gate.set()
        outcomes = await asyncio.gather(held, small, big, return_exceptions=True)
        assert isinstance(outcomes[2], DatabaseError), outcomes
        assert "full" in str(outcomes[2]) and db_path in str(outcomes[2])
        # SQLite rolled the whole transaction back: nothing may be reported written
        # that is not in the file.
        acknowledged = {
            key
            for key, outcome in zip(["small", "big"], outcomes[1:], strict=True)
            if not isinstance(outcome, BaseException)
        }
        stored = {
            row[0]
            for row in db.run_sync(
                lambda c: c.execute("SELECT key FROM hatchlite_meta WHERE key != 'app'").fetchall()
            )
        }
        assert stored == acknowledged
        db.run_sync(lambda c: c.execute("PRAGMA max_page_count = 1000000"), write=False)
        await db.run(insert("after", 10))
    finally:
        db.close()
    assert query(db_path, "SELECT key FROM hatchlite_meta WHERE key = 'after'") == [("after",)]


# -- a read-only folder ------------------------------------------------------------------


def _attempt(db: str) -> str:
    """Open `db` and run one task: "ok", or the DatabaseError's message."""
    client = Hatchet(db=db)
    try:
        _run_one(client)
    except DatabaseError as exc:
        return str(exc)
    finally:
        client.close()
    return "ok"


def _attempt_as_nobody(paths: list[str]) -> str:
    """Run in a subprocess started as root: import and warm up everything while still
    root (the interpreter may live where user nobody cannot read), then drop to nobody."""
    assert _attempt(":memory:") == "ok"
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    except PermissionError:
        return json.dumps(None)
    return json.dumps([_attempt(path) for path in paths])


def _attempts_in_read_only_folder(folder: str, paths: list[str]) -> list[str]:
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            return [_attempt(path) for path in paths]
        finally:
            os.chmod(folder, 0o755)
    # Root ignores file modes: run the attempt as user nobody.
    os.chmod(folder, 0o555)
    try:
        code = (
            "import sys\n"
            "from tests.test_database_errors import _attempt_as_nobody\n"
            "print(_attempt_as_nobody(sys.argv[1:]))\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, *paths],
            cwd="/",
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.chmod(folder, 0o755)
    assert proc.returncode == 0, proc.stderr
    messages = json.loads(proc.stdout.strip().splitlines()[-1])
    if messages is None:
        pytest.skip("cannot switch to user nobody here")
    assert isinstance(messages, list)
    return messages


@pytest.mark.timeout(90)
def test_a_read_only_folder_is_named_as_the_problem() -> None:
    folder = tempfile.mkdtemp(prefix="hatchlite-ro-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)  # traversable by user nobody
        path = os.path.join(folder, "app.db")
        client = Hatchet(db=path)
        _run_one(client)
        client.close()
        os.chmod(path, 0o666)  # the file itself is writable by anyone
        # The plain path is checked before opening; the URI form skips that check and
        # meets SQLite's own error, which must say the same.
        messages = _attempts_in_read_only_folder(folder, [path, f"file:{path}"])
        for message in messages:
            assert folder in message, message
            assert "app.db-wal" in message and "app.db-shm" in message, message
            assert "writable" in message, message
        assert sorted(os.listdir(folder)) == ["app.db"]
        assert _attempt(path) == "ok"  # writable again
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


# -- worker rows -------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_inactive_worker_rows_are_bounded(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task()
    async def t(input: EmptyModel, ctx: Context) -> None:
        return None

    async def start(name: str) -> tuple[Worker, asyncio.Future[None]]:
        worker = client.worker(name, workflows=[t])
        serving = asyncio.ensure_future(worker.aio_start())
        await wait_until(lambda: worker.status == WorkerStatus.HEALTHY)
        return worker, serving

    staying, staying_serving = await start("staying")
    starts = KEEP_INACTIVE_WORKERS + 30
    try:
        for i in range(starts):
            worker, serving = await start(f"short-{i}")
            worker.stop()
            await asyncio.wait_for(serving, 10)
        rows = query(db_path, "SELECT status, count(*) FROM workers GROUP BY status")
        counts = {status: count for status, count in rows}
        assert counts == {"ACTIVE": 1, "INACTIVE": KEEP_INACTIVE_WORKERS}
        assert query(db_path, "SELECT name FROM workers WHERE status = 'ACTIVE'") == [("staying",)]
        # The newest stopped workers are the ones kept.
        kept = {row[0] for row in query(db_path, "SELECT name FROM workers")}
        assert f"short-{starts - 1}" in kept and "short-0" not in kept
        await asyncio.wait_for(t.aio_run(), 10)  # the staying worker still serves
    finally:
        staying.stop()
        await asyncio.wait_for(staying_serving, 10)
        await client.aio_close()
