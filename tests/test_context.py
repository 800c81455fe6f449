"""What a running task sees through its Context."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from datetime import timedelta

import pytest
from pydantic import BaseModel

from hatchlite import Context, EmptyModel, Hatchet
from tests.conftest import query


class In(BaseModel):
    name: str


def test_identity_and_input(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="ctx", input_validator=In)

    @wf.task(retries=3)
    def look(input: In, ctx: Context) -> dict[str, object]:
        return {
            "workflow_input": ctx.workflow_input,
            "retry_count": ctx.retry_count,
            "attempt_number": ctx.attempt_number,
            "max_attempts": ctx.max_attempts,
            "task_name": ctx.task_name,
            "workflow_name": ctx.workflow_name,
            "task_run_id": ctx.task_run_id,
            "step_run_id": ctx.step_run_id,
            "workflow_run_id": ctx.workflow_run_id,
            "cancelled": ctx.is_cancelled,
        }

    ref = wf.run_no_wait(In(name="x"))
    out = ref.result()["look"]
    assert out["workflow_input"] == {"name": "x"}
    assert (out["retry_count"], out["attempt_number"], out["max_attempts"]) == (0, 1, 4)
    assert (out["task_name"], out["workflow_name"]) == ("look", "ctx")
    # A one-task workflow's run id is its task's id (Hatchet's rule).
    assert out["task_run_id"] == out["step_run_id"] == out["workflow_run_id"]
    assert out["workflow_run_id"] == ref.workflow_run_id
    assert out["cancelled"] is False


def test_task_output_errors(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="outputs")

    @wf.task()
    def a(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"a": 1}

    @wf.task()
    def b(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"b": 1}

    @wf.task(parents=[a])
    def c(input: EmptyModel, ctx: Context) -> dict[str, object]:
        try:
            ctx.task_output(b)
        except ValueError as exc:
            missing = str(exc)
        return {"a": ctx.task_output(a), "missing": missing, "skipped": ctx.was_skipped(a)}

    assert wf.run()["c"] == {
        "a": {"a": 1},
        "missing": "Step output for 'b' not found",
        "skipped": False,
    }


def test_logs_are_stored_with_the_task_run(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task()
    async def chatty(input: EmptyModel, ctx: Context) -> dict[str, str]:
        ctx.log("hello")
        await ctx.aio_log({"structured": True})
        return {"id": ctx.task_run_id}

    @hatchet.task()
    def chatty_sync(input: EmptyModel, ctx: Context) -> dict[str, str]:
        ctx.log("from a thread")
        return {"id": ctx.task_run_id}

    # Logs are written in the same step that records the task's end.
    task_id = chatty.run()["id"]
    sync_id = chatty_sync.run()["id"]
    rows = query(
        db_path,
        "SELECT message, level, retry_count FROM task_logs WHERE task_run_id = ? ORDER BY id",
        (task_id,),
    )
    assert rows == [("hello", "INFO", 0), ('{"structured": true}', "INFO", 0)]
    assert query(db_path, "SELECT message FROM task_logs WHERE task_run_id = ?", (sync_id,)) == [
        ("from a thread",)
    ]


def test_refresh_timeout_extends_the_deadline(hatchet: Hatchet) -> None:
    @hatchet.task(execution_timeout=timedelta(seconds=0.3))
    async def slow(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        ctx.refresh_timeout(timedelta(seconds=5))
        await asyncio.sleep(0.5)
        return {"finished": True}

    assert slow.run() == {"finished": True}


def test_release_slot_lets_the_next_task_start(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    released = threading.Event()
    second_started = threading.Event()

    @client.task()
    def holder(input: EmptyModel, ctx: Context) -> None:
        ctx.release_slot()
        released.set()
        assert second_started.wait(5), "the second task never got the freed slot"

    @client.task()
    def second(input: EmptyModel, ctx: Context) -> None:
        second_started.set()

    worker = client.worker("one", slots=1, workflows=[holder, second])
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        ref = holder.run_no_wait()
        assert released.wait(5)
        second.run()
        ref.result()
    finally:
        worker.stop()
        thread.join(10)
        client.close()


def test_lifespan_value_reaches_tasks(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    events: list[str] = []

    async def lifespan() -> AsyncGenerator[dict[str, str], None]:
        events.append("setup")
        yield {"db": "connection"}
        events.append("teardown")

    @client.task()
    def uses(input: EmptyModel, ctx: Context) -> dict[str, object]:
        return {"lifespan": ctx.lifespan}

    worker = client.worker("life", workflows=[uses], lifespan=lifespan)
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        assert uses.run() == {"lifespan": {"db": "connection"}}
    finally:
        worker.stop()
        thread.join(10)
        client.close()
    assert events == ["setup", "teardown"]


def test_mock_run_needs_no_engine() -> None:
    client = Hatchet(db=":memory:")
    wf = client.workflow(name="unit")

    @wf.task()
    def first(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"x": 1}

    @wf.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"y": ctx.task_output(first)["x"] + ctx.retry_count}

    @wf.task()
    async def third(input: EmptyModel, ctx: Context) -> dict[str, object]:
        return {"lifespan": ctx.lifespan}

    assert second.mock_run(parent_outputs={"first": {"x": 41}}, retry_count=1) == {"y": 42}
    assert asyncio.run(third.aio_mock_run(lifespan="L")) == {"lifespan": "L"}
    with pytest.raises(TypeError):
        third.mock_run()
