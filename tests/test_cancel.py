"""Cancellation, as Hatchet does it: `hatchet.runs.cancel`, `ctx.cancel()`, the
cancellation flag seen by sync tasks, queued runs, and what refs return afterwards."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hatchlite import BulkCancelReplayOpts, Context, EmptyModel, Hatchet
from hatchlite.exceptions import RunNotFoundError
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.types import V1TaskStatus
from tests.conftest import outcome, query, wait_until

# A hang is a failure: no test here should take more than a fraction of a second.
pytestmark = pytest.mark.timeout(20)


async def wait_event(event: threading.Event, timeout: float = 2.0) -> None:
    assert await asyncio.to_thread(event.wait, timeout), f"event not set within {timeout}s"


def task_rows(db_path: str, run_id: str) -> dict[str, tuple[Any, ...]]:
    """task name -> (status, started_at, output) of one run."""
    rows = query(
        db_path,
        "SELECT task_name, status, started_at, output FROM task_runs WHERE workflow_run_id = ?",
        (run_id,),
    )
    return {r[0]: r[1:] for r in rows}


def run_status(db_path: str, run_id: str) -> str:
    return str(query(db_path, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


async def test_cancel_a_running_async_task(hatchet: Hatchet, db_path: str) -> None:
    started = threading.Event()
    got_cancelled = threading.Event()
    after_sleep: list[bool] = []
    flag_when_cancelled: list[bool] = []

    @hatchet.task()
    async def long_wait(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            flag_when_cancelled.append(ctx.is_cancelled)
            got_cancelled.set()
            raise
        after_sleep.append(True)
        return {"finished": True}

    ref = await long_wait.aio_run(wait_for_result=False)
    run_id = ref.workflow_run_id
    await wait_event(started)
    assert hatchet.runs.get_status(run_id) == V1TaskStatus.RUNNING

    real_start = time.monotonic()
    await hatchet.runs.aio_cancel(run_id)
    await wait_event(got_cancelled)  # the coroutine sees asyncio.CancelledError
    await wait_until(lambda: hatchet.runs.get_status(run_id) == V1TaskStatus.CANCELLED)
    assert time.monotonic() - real_start < 1.0
    assert after_sleep == []
    assert flag_when_cancelled == [True]

    # result() raises for a cancelled run; aio_result() returns normally.
    with pytest.raises(ValueError, match=f"Workflow run {run_id} was cancelled."):
        ref.result()
    assert await outcome(ref) == {}  # a standalone: its validator applied to {}
    assert await outcome(hatchet.runs.get_run_ref(run_id)) == {}
    with pytest.raises(ValueError, match="was cancelled"):
        hatchet.runs.get_run_ref(run_id).result()

    assert run_status(db_path, run_id) == "CANCELLED"
    assert task_rows(db_path, run_id)["long_wait"][0] == "CANCELLED"
    detail = hatchet.runs.get_details(run_id)
    assert detail.status == V1TaskStatus.CANCELLED and detail.done
    assert detail.task_runs["long_wait"].error is None  # cancelled: no error text
    attempts = query(
        db_path, "SELECT retry_count, status FROM task_attempts WHERE task_run_id = ?", (run_id,)
    )
    assert attempts == [(0, "CANCELLED")]  # cancelled attempts are not retried


async def test_cancel_a_dag_while_its_first_task_runs(hatchet: Hatchet, db_path: str) -> None:
    first_started = threading.Event()
    first_cancelled = threading.Event()
    ran: list[str] = []
    wf = hatchet.workflow(name="cancel-dag")

    @wf.task()
    async def first(input: EmptyModel, ctx: Context) -> dict[str, int]:
        first_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            first_cancelled.set()
            raise
        return {"first": 1}

    @wf.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ran.append("second")
        return {"second": 2}

    @wf.task(parents=[second])
    def third(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ran.append("third")
        return {"third": 3}

    @wf.task()
    def quick(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ran.append("quick")
        return {"quick": 0}

    ref = await wf.aio_run(wait_for_result=False)
    run_id = ref.workflow_run_id
    await wait_event(first_started)
    await wait_until(lambda: task_rows(db_path, run_id)["quick"][0] == "COMPLETED")

    hatchet.runs.cancel(run_id)
    await wait_event(first_cancelled)
    await wait_until(lambda: hatchet.runs.get_status(run_id) == V1TaskStatus.CANCELLED)

    rows = task_rows(db_path, run_id)
    assert {name: row[0] for name, row in rows.items()} == {
        "first": "CANCELLED",
        "second": "CANCELLED",
        "third": "CANCELLED",
        "quick": "COMPLETED",
    }
    assert rows["second"][1] is None and rows["third"][1] is None  # never started
    assert ran == ["quick"]
    # aio_result: the tasks with output only; result(): cancelled -> ValueError.
    assert await outcome(ref) == {"quick": {"quick": 0}}
    with pytest.raises(ValueError, match=f"Workflow run {run_id} was cancelled."):
        ref.result()


async def test_sync_task_sees_the_cancellation_flag(hatchet: Hatchet, db_path: str) -> None:
    started = threading.Event()
    noticed = threading.Event()
    returned = threading.Event()
    seen: dict[str, bool] = {}

    @hatchet.task()
    def polling(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        try:
            seen["before"] = ctx.is_cancelled or ctx.exit_flag
            started.set()
            stop = time.monotonic() + 2.0
            while time.monotonic() < stop:  # the `cancellation` example's loop
                if ctx.is_cancelled:
                    seen["is_cancelled"] = True
                    seen["exit_flag"] = ctx.exit_flag
                    noticed.set()
                    break
                noticed.wait(0.002)
            return {"done": True}
        finally:
            returned.set()

    ref = polling.run_no_wait()
    run_id = ref.workflow_run_id
    await wait_event(started)
    assert seen["before"] is False

    await hatchet.runs.aio_cancel(run_id)
    await wait_event(noticed)
    assert seen == {"before": False, "is_cancelled": True, "exit_flag": True}
    await wait_until(lambda: hatchet.runs.get_status(run_id) == V1TaskStatus.CANCELLED)
    # The task returned a value after the cancel: the run is still cancelled.
    assert await outcome(ref) == {}
    with pytest.raises(ValueError, match="was cancelled"):
        ref.result()
    await wait_event(returned)
    await RUNTIME.acall(hatchet._engine.flush)
    status, _, output = task_rows(db_path, run_id)["polling"]
    assert (status, output) == ("CANCELLED", None)  # its late output is dropped


async def test_async_task_cancels_its_own_run(hatchet: Hatchet, db_path: str) -> None:
    got_cancelled = threading.Event()
    flags: list[bool] = []

    @hatchet.task()
    async def self_cancelling(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        await ctx.aio_cancel()
        flags.append(ctx.is_cancelled)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            got_cancelled.set()
            raise
        return {"finished": True}

    ref = self_cancelling.run_no_wait()
    run_id = ref.workflow_run_id
    assert await outcome(ref) == {}  # returns normally: cancelled, not failed
    await wait_event(got_cancelled)
    assert flags == [True]
    assert hatchet.runs.get_status(run_id) == V1TaskStatus.CANCELLED
    assert run_status(db_path, run_id) == "CANCELLED"
    with pytest.raises(ValueError, match="was cancelled"):
        ref.result()


async def test_sync_task_cancels_its_own_dag_run(hatchet: Hatchet, db_path: str) -> None:
    ran: list[str] = []
    wf = hatchet.workflow(name="self-cancel-dag")

    @wf.task()
    def decide(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        ctx.cancel()
        return {"cancelled": ctx.is_cancelled}

    @wf.task(parents=[decide])
    def never(input: EmptyModel, ctx: Context) -> None:
        ran.append("never")

    ref = wf.run_no_wait()
    run_id = ref.workflow_run_id
    assert await outcome(ref) == {}
    await wait_until(lambda: run_status(db_path, run_id) == "CANCELLED")
    rows = task_rows(db_path, run_id)
    assert rows["decide"][0] == rows["never"][0] == "CANCELLED"
    assert rows["never"][1] is None
    assert ran == []
    with pytest.raises(ValueError, match=f"Workflow run {run_id} was cancelled."):
        ref.result()


async def test_cancel_a_queued_run_without_a_worker(tmp_path: Path) -> None:
    db = str(tmp_path / "queued.db")
    client = Hatchet(db=db, auto_worker=False)
    ran: list[str] = []
    try:

        @client.task()
        async def queued(input: EmptyModel, ctx: Context) -> dict[str, str]:
            ran.append(ctx.workflow_run_id)
            return {"ran": ctx.workflow_run_id}

        ref = await queued.aio_run(wait_for_result=False)
        run_id = ref.workflow_run_id
        assert client.runs.get_status(run_id) == V1TaskStatus.QUEUED

        await client.runs.aio_cancel(run_id)
        assert client.runs.get_status(run_id) == V1TaskStatus.CANCELLED
        assert await outcome(ref) == {}
        with pytest.raises(ValueError, match="was cancelled"):
            ref.result()

        # A worker that starts now runs new runs, never the cancelled one.
        worker = client.worker("late", workflows=[queued])
        serving = asyncio.ensure_future(worker.aio_start())
        try:
            later = await queued.aio_run()
            assert later["ran"] != run_id
        finally:
            worker.stop()
            await asyncio.wait_for(serving, 10)
        assert ran == [later["ran"]]
        assert task_rows(db, run_id)["queued"][:2] == ("CANCELLED", None)
    finally:
        await client.aio_close()


async def test_cancel_unknown_or_finished_runs(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task()
    def finished(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"v": 1}

    ref = finished.run_no_wait()
    assert ref.result() == {"v": 1}
    # Cancelling a run that already ended changes nothing.
    hatchet.runs.cancel(ref.workflow_run_id)
    assert hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.COMPLETED
    assert ref.result() == {"v": 1}

    # An unknown id is a clear error, as for get_details; a bulk cancel naming one
    # cancels nothing.
    unknown = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(RunNotFoundError, match=unknown):
        hatchet.runs.cancel(unknown)
    with pytest.raises(RunNotFoundError, match=unknown):
        await hatchet.runs.aio_cancel(unknown)
    pending = finished.run_no_wait()
    with pytest.raises(RunNotFoundError, match="nothing was cancelled"):
        hatchet.runs.bulk_cancel(BulkCancelReplayOpts(ids=[pending.workflow_run_id, unknown]))
    assert pending.result() == {"v": 1}
    with pytest.raises(RunNotFoundError):
        hatchet.runs.get_status(unknown)
    assert query(db_path, "SELECT count(*) FROM workflow_runs") == [(2,)]


async def test_bulk_cancel_cancels_every_listed_run(hatchet: Hatchet, db_path: str) -> None:
    started = threading.Semaphore(0)
    release = threading.Event()

    @hatchet.task()
    def blocked(input: EmptyModel, ctx: Context) -> None:
        started.release()
        release.wait(2)

    refs = [blocked.run_no_wait() for _ in range(3)]
    try:
        for _ in refs:
            assert await asyncio.to_thread(started.acquire, True, 2)
        ids = [r.workflow_run_id for r in refs[:2]]
        await hatchet.runs.aio_bulk_cancel(BulkCancelReplayOpts(ids=ids))
        for run_id in ids:
            await wait_until(
                lambda run_id=run_id: hatchet.runs.get_status(run_id) == V1TaskStatus.CANCELLED
            )
        assert hatchet.runs.get_status(refs[2].workflow_run_id) == V1TaskStatus.RUNNING
    finally:
        release.set()
    assert await outcome(refs[2]) == EmptyModel()
    assert run_status(db_path, refs[2].workflow_run_id) == "COMPLETED"
