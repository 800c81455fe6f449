"""Cases a first review found: isolation of in-memory databases, restarts of sleeping
durable tasks, the test clock around wake-ups, and rows the engine cannot handle."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hatchlite import Context, DurableContext, EmptyModel, Hatchet
from hatchlite.testing import TestClock
from tests.conftest import query


def test_in_memory_databases_do_not_share_definitions() -> None:
    first, second = Hatchet(db=":memory:"), Hatchet(db=":memory:")
    try:

        @first.task(name="same")
        def one(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return {"from": "first"}

        @second.task(name="same")
        def two(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return {"from": "second"}

        assert one.run() == {"from": "first"}
        assert two.run() == {"from": "second"}
    finally:
        first.close()
        second.close()


def test_sleeping_durable_task_survives_a_long_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    clock = TestClock(datetime(2030, 1, 1, tzinfo=UTC))

    def define(client: Hatchet) -> object:
        @client.durable_task(name="napper")
        async def napper(input: EmptyModel, ctx: DurableContext) -> dict[str, float]:
            await ctx.aio_sleep_for(timedelta(hours=1))
            return {"woke": (await ctx.aio_now()).timestamp()}

        return napper

    client = Hatchet(db=db, clock=clock)
    ref = define(client).run_no_wait()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while query(db, "SELECT count(*) FROM durable_events WHERE status = 'PENDING'") != [(1,)]:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    client.close()  # the worker stops; the sleeping task goes back to the queue
    clock.advance(timedelta(minutes=10))  # longer than the 5 min schedule timeout
    client = Hatchet(db=db, clock=clock)
    try:
        define(client)
        ref = client.runs.get_run_ref(ref.workflow_run_id)
        clock.advance(timedelta(minutes=55))
        out = ref.result()
        assert out["napper"]["woke"] == datetime(2030, 1, 1, 1, 5, tzinfo=UTC).timestamp()
    finally:
        client.close()


def test_auto_advance_does_not_skip_past_a_task_that_just_woke(tmp_path: Path) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    client = Hatchet(db=str(tmp_path / "two.db"), clock=TestClock(start, auto_advance=True))

    @client.durable_task(input_validator=dict)
    async def sleeper(input: dict[str, int], ctx: DurableContext) -> dict[str, float]:
        await ctx.aio_sleep_for(timedelta(hours=input["hours"]))
        return {"woke": (await ctx.aio_now()).timestamp() - start.timestamp()}

    try:
        items = [sleeper.create_bulk_run_item({"hours": h}) for h in (1, 2)]
        assert sleeper.run_many(items) == [{"woke": 3600.0}, {"woke": 7200.0}]
    finally:
        client.close()


def test_a_task_no_process_can_run_fails_its_run_and_the_engine_goes_on(
    hatchet: Hatchet, db_path: str
) -> None:
    @hatchet.task()
    def known(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    assert known.run() == {"ok": 1}
    # A row of a task that no definition has any more (removed while runs were queued).
    run_id = str(uuid.uuid4())
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO workflow_runs (id, workflow_name, status, is_dag, input, "
            "additional_metadata, priority, created_at) "
            "VALUES (?, 'known', 'QUEUED', 1, '{}', '{}', 1, 0)",
            (run_id,),
        )
        conn.execute(
            "INSERT INTO task_runs (id, workflow_run_id, workflow_name, task_name, status, "
            "priority, available_at, created_at) VALUES (?, ?, 'known', 'renamed', 'QUEUED', "
            "1, 0, 0)",
            (str(uuid.uuid4()), run_id),
        )
    conn.close()
    assert known.run() == {"ok": 1}  # the engine is not stuck
    status = hatchet.runs.get_details(run_id)
    assert status.status.value == "FAILED"
    assert "not in the registered definition" in str(status.task_runs["renamed"].error)
