"""Who executes: the implicit worker, explicit workers, trigger-only clients."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hatchlite import Context, EmptyModel, Hatchet, LoopAlreadyRunningError, WorkerStatus
from hatchlite.exceptions import SyncCallInEngineLoopError
from tests.conftest import query


def test_clients_on_one_database_share_one_engine(db_path: str) -> None:
    a = Hatchet(db=db_path)
    b = Hatchet(db=db_path)
    try:
        assert a._engine is b._engine

        @a.task()
        def defined_on_a(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return {"by": "a"}

        # A run triggered through either client is served by the process's one engine.
        run_id = defined_on_a.run_no_wait().workflow_run_id
        assert b.runs.get_run_ref(run_id).result() == {"defined_on_a": {"by": "a"}}
    finally:
        a.close()


def test_default_database_comes_from_the_environment(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, db_path: str
) -> None:
    monkeypatch.setenv("HATCHLITE_DB", db_path)
    client = Hatchet()
    assert client.db == db_path
    client.close()


def test_trigger_only_client_enqueues_and_a_worker_executes(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HATCHLITE_AUTO_WORKER", "0")
    client = Hatchet(db=db_path)
    ran = threading.Event()

    @client.task()
    def job(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        ran.set()
        return {"ok": True}

    ref = job.run_no_wait()
    assert not ran.wait(0.2)  # nobody executes in a trigger-only process
    assert query(db_path, "SELECT status FROM task_runs") == [("QUEUED",)]
    worker = client.worker("late", workflows=[job])
    assert worker.status is WorkerStatus.INITIALIZED
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        assert ref.result() == {"ok": True}
        assert worker.status is WorkerStatus.HEALTHY
    finally:
        worker.stop()
        thread.join(10)
        client.close()
    assert not thread.is_alive()


def test_explicit_worker_serves_only_its_workflows(db_path: str) -> None:
    client = Hatchet(db=db_path)

    @client.task()
    def served(input: EmptyModel, ctx: Context) -> None:
        return None

    @client.task()
    def not_served(input: EmptyModel, ctx: Context) -> None:
        return None

    worker = client.worker("only-served", workflows=[served])
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        served.run()
        # With an explicit worker started, no implicit worker runs beside it.
        ref = not_served.run_no_wait()
        served.run()
        status = query(db_path, "SELECT status FROM task_runs WHERE id = ?", (ref.workflow_run_id,))
        assert status == [("QUEUED",)]
    finally:
        worker.stop()
        thread.join(10)
        client.close()


async def test_worker_start_refuses_a_running_loop(hatchet: Hatchet) -> None:
    @hatchet.task()
    def t(input: EmptyModel, ctx: Context) -> None:
        return None

    with pytest.raises(LoopAlreadyRunningError):
        hatchet.worker("w", workflows=[t]).start()


async def test_aio_start_and_stop(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task()
    async def t(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"v": 1}

    worker = client.worker("aio", workflows=[t])
    serving = asyncio.ensure_future(worker.aio_start())
    assert await t.aio_run() == {"v": 1}
    worker.stop()
    await asyncio.wait_for(serving, 10)
    await client.aio_close()


def test_blocking_call_inside_an_async_task_is_a_clear_error(hatchet: Hatchet) -> None:
    @hatchet.task()
    def inner(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.task()
    async def outer(input: EmptyModel, ctx: Context) -> dict[str, str]:
        try:
            inner.run()
        except SyncCallInEngineLoopError as exc:
            return {"error": str(exc)}
        return {"error": ""}

    assert "aio_run" in outer.run()["error"]
