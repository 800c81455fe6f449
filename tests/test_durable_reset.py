"""`runs.reset_durable_task`: fork a finished durable task's history at a node and run
it again from there, keeping the entries before the node and archiving the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatchlite import Context, DurableContext, EmptyModel, Hatchet
from hatchlite.store.durable import ResetError
from hatchlite.store.runs import RunNotFinishedError
from hatchlite.testing import TestClock
from tests.conftest import query

START = datetime(2030, 1, 1, tzinfo=UTC)


def branches(db: str, task_id: str) -> list[tuple[object, ...]]:
    return query(
        db,
        "SELECT branch_id, node_id, kind FROM durable_branches WHERE task_run_id = ? "
        "ORDER BY branch_id, node_id",
        (task_id,),
    )


async def test_reset_runs_the_task_again_from_the_node(tmp_path: Path) -> None:
    db = str(tmp_path / "reset.db")
    clock = TestClock(START, auto_advance=True)
    client = Hatchet(db=db, clock=clock)
    starts: list[str] = []

    # Never evicted: each start counted here is a run from the top or a reset's.
    @client.durable_task(execution_timeout=timedelta(minutes=5), eviction_policy=None)
    async def flow(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
        starts.append("start")
        before = await ctx.aio_now()  # node 1
        await ctx.aio_sleep_for(timedelta(hours=1))  # node 2
        after = await ctx.aio_now()  # node 3
        return {"before": before.isoformat(), "after": after.isoformat()}

    try:
        ref = await flow.aio_run_no_wait()
        first = await asyncio.wait_for(ref.aio_result(), 5)
        task_id = ref.workflow_run_id  # a standalone task: the run id is the task's
        assert first == {
            "before": START.isoformat(),
            "after": (START + timedelta(hours=1)).isoformat(),
        }

        clock.advance(timedelta(days=1))
        reset = await client.runs.aio_reset_durable_task(task_id, node_id=3, branch_id=1)
        assert (reset.task_external_id, reset.node_id, reset.branch_id) == (task_id, 3, 2)
        second = (
            await asyncio.wait_for(client.runs.get_run_ref(ref.workflow_run_id).aio_result(), 5)
        )["flow"]
        # Nodes 1 and 2 are replayed (same `before`, no new sleep); node 3 runs afresh.
        assert second["before"] == first["before"]
        assert second["after"] == (START + timedelta(days=1, hours=1)).isoformat()

        await client.runs.aio_reset_durable_task(task_id, node_id=2, branch_id=2)
        third = (
            await asyncio.wait_for(client.runs.get_run_ref(ref.workflow_run_id).aio_result(), 5)
        )["flow"]
        assert third["before"] == first["before"]
        assert datetime.fromisoformat(third["after"]) >= START + timedelta(days=1, hours=2)
    finally:
        await client.aio_close()
    assert starts == ["start"] * 3
    assert branches(db, task_id) == [(1, 3, "NOW"), (2, 2, "WAIT"), (2, 3, "NOW")]
    [(branch,)] = query(db, "SELECT durable_branch FROM task_runs WHERE id = ?", (task_id,))
    assert branch == 3
    reopened = Hatchet(db=db, auto_worker=False)
    try:
        history = reopened.runs.get_durable_history(task_id)
    finally:
        reopened.close()
    assert history.current_branch == 3
    assert [(e.branch_id, e.node_id, e.kind, e.current) for e in history.entries] == [
        (1, 3, "NOW", False),
        (2, 2, "WAIT", False),
        (2, 3, "NOW", False),
        (3, 1, "NOW", True),
        (3, 2, "WAIT", True),
        (3, 3, "NOW", True),
    ]
    assert history.entries[0].result == first["after"]


async def test_bad_resets_change_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "bad.db")
    clock = TestClock(START, auto_advance=True)
    client = Hatchet(db=db, clock=clock)

    @client.durable_task(execution_timeout=timedelta(minutes=5))
    async def waits(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
        await ctx.aio_now()
        await ctx.aio_wait_for_event("never")
        return {"done": True}

    @client.durable_task(execution_timeout=timedelta(minutes=5))
    async def quick(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
        await ctx.aio_now()
        return {"done": True}

    @client.task()
    def plain(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"done": True}

    try:
        done = await quick.aio_run_no_wait()
        await asyncio.wait_for(done.aio_result(), 5)
        with pytest.raises(ResetError, match="no node 7 on branch 1: its nodes are 1 to 1"):
            await client.runs.aio_reset_durable_task(done.workflow_run_id, 7, 1)
        with pytest.raises(ResetError, match="is on branch 1 of its history, not 2"):
            await client.runs.aio_reset_durable_task(done.workflow_run_id, 1, 2)
        with pytest.raises(ResetError, match="no task run with id 'nope'"):
            await client.runs.aio_reset_durable_task("nope", 1, 1)
        ran = await plain.aio_run_no_wait()
        await asyncio.wait_for(ran.aio_result(), 5)
        with pytest.raises(ResetError, match="is not durable"):
            await client.runs.aio_reset_durable_task(ran.workflow_run_id, 1, 1)
        waiting = await waits.aio_run_no_wait()
        await asyncio.sleep(0.2)
        with pytest.raises(RunNotFinishedError, match="only finished runs"):
            await client.runs.aio_reset_durable_task(waiting.workflow_run_id, 1, 1)
        nodes = query(
            db,
            "SELECT count(*) FROM durable_events WHERE task_run_id = ?",
            (waiting.workflow_run_id,),
        )
        assert nodes == [(2,)]  # nothing was archived
    finally:
        await client.aio_close()
    assert query(db, "SELECT count(*) FROM durable_branches") == [(0,)]
