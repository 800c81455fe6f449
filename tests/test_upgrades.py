"""Code upgrades: each run keeps the shape (tasks, parents, conditions) it was created
with, so a redeploy never settles an in-flight run with another version's DAG."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hatchlite import Context, EmptyModel, FailedTaskRunExceptionGroup, Hatchet, Workflow
from tests.conftest import ROOT, query


def v1(client: Hatchet) -> Workflow[EmptyModel]:
    """a -> b -> c"""
    wf = client.workflow(name="pipeline")

    @wf.task()
    def a(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"v": "1"}

    @wf.task(parents=[a])
    def b(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"after": str(ctx.task_output(a)["v"])}

    @wf.task(parents=[b])
    def c(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"c": "done"}

    return wf


def v2(client: Hatchet) -> Workflow[EmptyModel]:
    """a -> b and a -> d: `c` removed, `d` added."""
    wf = client.workflow(name="pipeline")

    @wf.task()
    def a(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"v": "2"}

    @wf.task(parents=[a])
    def b(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"after": str(ctx.task_output(a)["v"])}

    @wf.task(parents=[a])
    def d(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"d": "new"}

    return wf


def v3(client: Hatchet) -> Workflow[EmptyModel]:
    """v1's tasks, all still there, plus `d` after `c`."""
    wf = v1(client)
    c = wf.task_by_name("c")

    @wf.task(parents=[c])
    def d(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"d": "new"}

    return wf


def queue_with(db: str, version: str) -> str:
    """A run created by another process running `version`'s code, with no worker: in
    flight across the redeploy to the code of this process."""
    code = (
        "import sys\n"
        "from hatchlite import Hatchet\n"
        "from tests import test_upgrades as t\n"
        "client = Hatchet(db=sys.argv[1], auto_worker=False)\n"
        f"print(t.{version}(client).run_no_wait().workflow_run_id)\n"
        "client.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, db],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-1]


async def serve(client: Hatchet, wf: Workflow[EmptyModel]) -> tuple[object, asyncio.Task[None]]:
    worker = client.worker("upgraded", workflows=[wf])
    task = asyncio.create_task(worker.aio_start())
    return worker, task


async def test_an_in_flight_run_finishes_with_the_shape_it_was_created_with(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "added.db")
    old_run = queue_with(db, "v1")
    client = Hatchet(db=db, auto_worker=False)
    wf = v3(client)  # adds `d` after `c`
    worker, serving = await serve(client, wf)
    try:
        ref = await wf.aio_run_no_wait()
        new = await asyncio.wait_for(ref.aio_result(), 5)
        old_ref = client.runs.get_run_ref(old_run)
        old = await asyncio.wait_for(old_ref.aio_result(), 5)
    finally:
        worker.stop()  # type: ignore[attr-defined]
        await serving
        await client.aio_close()
    assert sorted(old) == ["a", "b", "c"]  # the old run never grows `d`
    assert sorted(new) == ["a", "b", "c", "d"]


async def test_a_task_the_new_code_removed_fails_its_run_saying_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "removed.db")
    old_run = queue_with(db, "v1")
    client = Hatchet(db=db, auto_worker=False)
    wf = v2(client)  # `c` removed, `d` added
    with caplog.at_level(logging.WARNING, logger="hatchlite"):
        worker, serving = await serve(client, wf)
        try:
            old_ref = client.runs.get_run_ref(old_run)
            with pytest.raises(FailedTaskRunExceptionGroup) as failed:
                await asyncio.wait_for(old_ref.aio_result(), 5)
            new = await asyncio.wait_for(wf.aio_run(), 5)
        finally:
            worker.stop()  # type: ignore[attr-defined]
            await serving
            await client.aio_close()
    [error] = failed.value.exceptions
    assert "task 'c' is not in the registered definition" in error.exc
    statuses = dict(
        query(db, "SELECT task_name, status FROM task_runs WHERE workflow_run_id = ?", (old_run,))
    )
    assert statuses == {"a": "COMPLETED", "b": "COMPLETED", "c": "FAILED"}  # no `d`
    assert sorted(new) == ["a", "b", "d"]
    assert "1 in-flight run(s) of workflow pipeline were created with another version" in (
        caplog.text
    )
    assert old_run in caplog.text


async def test_shapes_are_stored_once_per_version(tmp_path: Path) -> None:
    db = str(tmp_path / "versions.db")
    queue_with(db, "v1")
    queue_with(db, "v1")
    queue_with(db, "v2")
    rows = query(db, "SELECT count(*), count(DISTINCT shape_hash) FROM workflow_runs")
    assert rows == [(3, 2)]
    assert query(db, "SELECT count(*) FROM workflow_shapes") == [(2,)]


async def test_a_process_gets_its_own_version_whoever_registered_last(tmp_path: Path) -> None:
    """A rolling deploy: this process runs v2; another, still on v1, triggers after it.
    The v1 run has v1's tasks (not the last registered v2's)."""
    db = str(tmp_path / "rolling.db")
    client = Hatchet(db=db, auto_worker=False)
    try:
        v2(client).run_no_wait()  # registers v2 and makes a v2 run
        old_run = queue_with(db, "v1")  # the v1 process triggers after
    finally:
        await client.aio_close()
    tasks = query(db, "SELECT task_name FROM task_runs WHERE workflow_run_id = ?", (old_run,))
    assert sorted(str(t) for (t,) in tasks) == ["a", "b", "c"]
    hashes = query(db, "SELECT count(DISTINCT shape_hash) FROM workflow_runs")
    assert hashes == [(2,)]


async def test_runs_made_before_shapes_were_versioned_keep_theirs(tmp_path: Path) -> None:
    """A database from before schema 8: its in-flight runs are stamped with the shape
    their workflow had, and a deploy of new code does not settle them with the new one."""
    db = str(tmp_path / "old-schema.db")
    old_run = queue_with(db, "v1")
    conn = sqlite3.connect(db)  # back to schema 7, as an older hatchlite left it
    conn.executescript(
        """ALTER TABLE workflow_runs DROP COLUMN shape_hash;
           ALTER TABLE workflows DROP COLUMN shape_hash;
           DROP TABLE workflow_shapes;
           ALTER TABLE task_runs DROP COLUMN durable_branch;
           DROP TABLE durable_branches;
           DROP TABLE durable_child_waits;
           DROP INDEX task_runs_batched;
           DROP INDEX task_runs_batch;
           ALTER TABLE task_runs DROP COLUMN batch_key;
           ALTER TABLE task_runs DROP COLUMN batch_id;
           PRAGMA user_version = 7;"""
    )
    conn.close()
    client = Hatchet(db=db, auto_worker=False)
    wf = v2(client)  # `c` removed
    worker, serving = await serve(client, wf)
    try:
        with pytest.raises(FailedTaskRunExceptionGroup, match="failed"):
            await asyncio.wait_for(client.runs.get_run_ref(old_run).aio_result(), 5)
    finally:
        worker.stop()  # type: ignore[attr-defined]
        await serving
        await client.aio_close()
    statuses = dict(
        query(db, "SELECT task_name, status FROM task_runs WHERE workflow_run_id = ?", (old_run,))
    )
    assert statuses == {"a": "COMPLETED", "b": "COMPLETED", "c": "FAILED"}
