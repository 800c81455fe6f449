"""Durable task eviction and restore: a durable task that waits (a durable sleep, an
event, child runs) past its `EvictionPolicy.ttl`, or whose durable slot a newer task
needs, is dropped from memory (`is_evicted`, a DURABLE_EVICTED task event) and replayed
from its durable history when its wait resolves (DURABLE_RESTORING), when
`runs.restore_task` asks, or when the run is replayed; SIGTERM evicts a worker's waiting
runs and another worker process finishes them.

Each in-process test runs on its own database file with a manual test clock
(`HatchetTest(auto_advance=False)`): TTLs and sleeps of hours pass with `aio_advance`,
and every wait for the engine is an awaited condition, bounded in real time. The
SIGTERM test runs this module as a worker process (`python -m tests.test_eviction DB`).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    DurableContext,
    EmptyModel,
    EvictionPolicy,
    Hatchet,
    RestoreError,
    SleepCondition,
    Standalone,
    UserEventCondition,
    or_,
)
from hatchlite.models import V1RestoreTaskResponse, V1TaskEventType, V1WorkflowRunDetails
from hatchlite.testing import HatchetTest
from hatchlite.types import V1TaskStatus
from tests.conftest import ROOT, outcome, query, wait_until_sync
from tests.procs.effects import EFFECTS_ENV, record
from tests.procs.effects import read as read_effects

pytestmark = pytest.mark.timeout(30)

TTL = timedelta(minutes=1)
SHORT = EvictionPolicy(ttl=TTL)  # evicted one minute into a wait
EVICTED = V1TaskEventType.DURABLE_EVICTED
RESTORING = V1TaskEventType.DURABLE_RESTORING


class Item(BaseModel):
    n: int


class Doubled(BaseModel):
    value: int
    token: str


# -- helpers -----------------------------------------------------------------------


@pytest.fixture
def ht(tmp_path: Path) -> Iterator[HatchetTest]:
    """A database file of its own and a manual test clock (only `advance` moves it)."""
    harness = HatchetTest(str(tmp_path / "eviction.db"), auto_advance=False)
    try:
        yield harness
    finally:
        harness.close()


async def until(
    predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, what: str = ""
) -> None:
    """Poll `predicate` (sync or async) until it holds; fail after `timeout` real s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not met within {timeout}s: {what or predicate}")
        await asyncio.sleep(0.005)


def entry_status(db: str, task_id: str, node: int) -> str | None:
    """The status of durable history entry `node` of a task run (None: no entry)."""
    rows = query(
        db,
        "SELECT status FROM durable_events WHERE task_run_id = ? AND node_id = ?",
        (task_id, node),
    )
    return str(rows[0][0]) if rows else None


async def pending(ht: HatchetTest, task_id: str, node: int = 1) -> None:
    """Wait until the task run's durable call `node` is a wait that has not resolved."""
    await until(lambda: entry_status(ht.db, task_id, node) == "PENDING", what=f"node {node}")


async def task_detail(ht: HatchetTest, run_id: str, task_name: str | None = None) -> Any:
    details = await ht.client.runs.aio_get_details(run_id)
    if task_name is None:
        [detail] = details.task_runs.values()
        return detail
    return details.task_runs[task_name]


async def is_evicted(ht: HatchetTest, run_id: str, task_name: str | None = None) -> bool:
    return bool((await task_detail(ht, run_id, task_name)).is_evicted)


async def evicted_soon(ht: HatchetTest, run_id: str, task_name: str | None = None) -> None:
    await until(lambda: is_evicted(ht, run_id, task_name), what=f"{run_id} evicted")


def events_of(details: V1WorkflowRunDetails, task_id: str) -> list[V1TaskEventType]:
    """The task's event types, oldest first (by timestamp; equal instants by number)."""
    found = [e for e in details.task_events if e.task_id == task_id]
    return [e.event_type for e in sorted(found, key=lambda e: (e.timestamp, e.id))]


async def event_types(ht: HatchetTest, run_id: str, task_id: str) -> list[V1TaskEventType]:
    return events_of(await ht.client.runs.aio_get(run_id), task_id)


async def summary_evicted(ht: HatchetTest, run_id: str) -> bool:
    """`V1TaskSummary.is_evicted` of the run's one task, as `runs.get` shows it."""
    [task] = (await ht.client.runs.aio_get(run_id)).tasks
    return bool(task.is_evicted)


async def evict_by_ttl(ht: HatchetTest, *run_ids: str) -> None:
    """Move the clock past the TTL of tasks already waiting; wait for their eviction."""
    await ht.aio_advance(TTL + timedelta(seconds=5))
    for run_id in run_ids:
        await evicted_soon(ht, run_id)


def child_runs(db: str, name: str) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT parent_task_run_id, status FROM workflow_runs WHERE workflow_name = ?",
        (name,),
    )


def restore_error_ok(exc: BaseException, task_id: str) -> None:
    """A refused restore: a RestoreError (a ValueError) that says which task or why."""
    assert isinstance(exc, RestoreError) and isinstance(exc, ValueError), repr(exc)
    text = str(exc)
    assert task_id in text or "evict" in text.lower(), text


# -- 1. TTL eviction and automatic restore, per wait kind ----------------------------


async def test_sleep_past_the_ttl_is_evicted_then_restored_when_due(ht: HatchetTest) -> None:
    calls: list[int] = []
    finished: list[int] = []

    @ht.client.durable_task(name="napper", eviction_policy=SHORT)
    async def napper(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        try:
            slept = await ctx.aio_sleep_for(timedelta(hours=1))
        finally:
            finished.append(ctx.invocation_count)
        return {"slept": slept.duration.total_seconds(), "invocation": ctx.invocation_count}

    await ht.aio_serve(napper)
    ref = await napper.aio_run_no_wait()
    run_id = ref.workflow_run_id
    task_id = (await task_detail(ht, run_id)).external_id
    await pending(ht, task_id)

    # Half the TTL: still in memory.
    await ht.aio_advance(TTL / 2)
    assert not await is_evicted(ht, run_id)
    assert finished == []

    # Past the TTL: evicted. Its coroutine is dropped (the `finally` ran), the run is
    # still RUNNING, and both views and the event history say so.
    await ht.aio_advance(TTL)
    await evicted_soon(ht, run_id)
    await until(lambda: finished == [1], what="the finally of the evicted coroutine")
    details = await ht.client.runs.aio_get_details(run_id)
    assert details.status.value == "RUNNING"
    assert not details.done
    assert await summary_evicted(ht, run_id)
    [row] = [r for r in await ht.aio_runs() if r.workflow_run_external_id == run_id]
    assert row.is_evicted is True
    assert row.status == V1TaskStatus.RUNNING
    types = await event_types(ht, run_id, task_id)
    assert types.count(EVICTED) == 1
    assert RESTORING not in types
    assert entry_status(ht.db, task_id, 1) == "PENDING"  # the sleep still waits
    assert calls == [1]

    # The sleep is due: restored, replayed from its history, finished.
    await ht.aio_advance(timedelta(hours=1))
    assert await outcome(ref) == {"slept": 3600.0, "invocation": 2}
    assert calls == [1, 2]
    types = await event_types(ht, run_id, task_id)
    assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1
    assert types.index(EVICTED) < types.index(RESTORING)
    assert not await is_evicted(ht, run_id)
    assert not await summary_evicted(ht, run_id)
    assert await ht.client.runs.aio_get_status(run_id) == V1TaskStatus.COMPLETED


async def test_the_timeline_lists_eviction_events_in_time_order(ht: HatchetTest) -> None:
    """`runs.get(...).task_events` is oldest first (numbered in that order): an eviction
    an hour before its restore is listed before it."""

    @ht.client.durable_task(name="napper", eviction_policy=SHORT)
    async def napper(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        await ctx.aio_sleep_for(timedelta(hours=1))
        return {"invocation": ctx.invocation_count}

    await ht.aio_serve(napper)
    ref = await napper.aio_run_no_wait()
    await pending(ht, ref.workflow_run_id)
    await evict_by_ttl(ht, ref.workflow_run_id)
    await ht.aio_advance(timedelta(hours=1))
    assert await outcome(ref) == {"invocation": 2}
    timeline = (await ht.client.runs.aio_get(ref.workflow_run_id)).task_events
    listed = [(e.timestamp, e.event_type.value) for e in sorted(timeline, key=lambda e: e.id)]
    assert listed == sorted(listed, key=lambda s: s[0]), listed
    kinds = [kind for _, kind in listed]
    assert kinds.index("DURABLE_EVICTED") < kinds.index("DURABLE_RESTORING")


async def test_event_wait_in_a_workflow_is_evicted_then_restored_by_the_event(
    ht: HatchetTest,
) -> None:
    calls: list[int] = []
    orders = ht.client.workflow(name="orders")

    @orders.durable_task(eviction_policy=SHORT)
    async def await_payment(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        paid = await ctx.aio_wait_for_event("order:paid", "input.order == 'A-1'")
        return {"amount": paid["amount"], "invocation": ctx.invocation_count}

    await ht.aio_serve(orders)
    ref = await orders.aio_run_no_wait()
    run_id = ref.workflow_run_id
    task_id = (await task_detail(ht, run_id, "await_payment")).external_id
    await pending(ht, task_id)
    await ht.aio_advance(TTL + timedelta(seconds=5))
    await evicted_soon(ht, run_id, "await_payment")
    assert EVICTED in await event_types(ht, run_id, task_id)

    # An event its wait does not match restores nothing.
    await ht.aio_push_event("order:paid", {"order": "B-2", "amount": 1})
    await ht.aio_advance(timedelta(0))
    assert await is_evicted(ht, run_id, "await_payment")
    assert RESTORING not in await event_types(ht, run_id, task_id)
    assert calls == [1]

    await ht.aio_push_event("order:paid", {"order": "A-1", "amount": 42})
    assert await outcome(ref) == {"await_payment": {"amount": 42, "invocation": 2}}
    assert calls == [1, 2]
    types = await event_types(ht, run_id, task_id)
    assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1
    assert not await is_evicted(ht, run_id, "await_payment")


async def test_wait_for_conditions_is_evicted_then_restored_by_its_sleep(ht: HatchetTest) -> None:
    calls: list[int] = []

    @ht.client.durable_task(name="racer", eviction_policy=SHORT)
    async def racer(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        won = await ctx.aio_wait_for(
            "race", or_(SleepCondition(timedelta(hours=2)), UserEventCondition(event_key="go"))
        )
        return {"won": won, "invocation": ctx.invocation_count}

    await ht.aio_serve(racer)
    ref = await racer.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await pending(ht, run_id)
    await evict_by_ttl(ht, run_id)
    await ht.aio_advance(timedelta(hours=1))  # the sleep is not due yet
    assert await is_evicted(ht, run_id)
    assert calls == [1]

    await ht.aio_advance(timedelta(hours=1))
    won = {"CREATE": {"sleep:2h": [{"sleep_duration": "2h"}]}}
    assert await outcome(ref) == {"won": won, "invocation": 2}
    assert calls == [1, 2]
    types = await event_types(ht, run_id, run_id)
    assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1


def define_children(client: Hatchet) -> Standalone[Item, dict[str, int]]:
    """A child that sleeps `n` hours and is never evicted itself."""

    @client.durable_task(name="slow_child", input_validator=Item, eviction_policy=None)
    async def slow_child(input: Item, ctx: DurableContext) -> dict[str, int]:
        await ctx.aio_sleep_for(timedelta(hours=input.n))
        return {"n": input.n}

    return slow_child


async def child_ids(ht: HatchetTest, count: int) -> list[str]:
    await until(lambda: len(child_runs(ht.db, "slow_child")) == count, what="children")
    rows = query(ht.db, "SELECT id FROM workflow_runs WHERE workflow_name = 'slow_child'")
    return [str(r[0]) for r in rows]


async def test_waiting_on_a_child_is_evicted_then_restored_when_it_finishes(
    ht: HatchetTest,
) -> None:
    calls: list[int] = []
    slow_child = define_children(ht.client)

    @ht.client.durable_task(name="parent", eviction_policy=SHORT)
    async def parent(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        child = await slow_child.aio_run(Item(n=1))
        return {"child": child, "invocation": ctx.invocation_count}

    await ht.aio_serve(parent, slow_child)
    ref = await parent.aio_run_no_wait()
    run_id = ref.workflow_run_id
    task_id = (await task_detail(ht, run_id)).external_id
    [child_id] = await child_ids(ht, 1)
    await pending(ht, child_id)  # the child sleeps; the parent waits for it

    await evict_by_ttl(ht, run_id)
    assert not await is_evicted(ht, child_id)  # eviction_policy=None
    assert calls == [1]

    await ht.aio_advance(timedelta(hours=1))
    assert await outcome(ref) == {"child": {"n": 1}, "invocation": 2}
    assert calls == [1, 2]
    assert child_runs(ht.db, "slow_child") == [(task_id, "COMPLETED")]  # not spawned again
    types = await event_types(ht, run_id, task_id)
    assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1


async def test_waiting_on_bulk_children_is_restored_only_when_all_finish(
    ht: HatchetTest,
) -> None:
    calls: list[int] = []
    slow_child = define_children(ht.client)

    @ht.client.durable_task(name="parent", eviction_policy=SHORT)
    async def parent(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        items = [slow_child.create_bulk_run_item(Item(n=n)) for n in (1, 2, 3)]
        results = await slow_child.aio_run_many(items)
        return {"children": results, "invocation": ctx.invocation_count}

    await ht.aio_serve(parent, slow_child)
    ref = await parent.aio_run_no_wait()
    run_id = ref.workflow_run_id
    task_id = (await task_detail(ht, run_id)).external_id
    children = await child_ids(ht, 3)
    for child_id in children:
        await pending(ht, child_id)

    def done() -> int:
        return sum(s == "COMPLETED" for _, s in child_runs(ht.db, "slow_child"))

    await evict_by_ttl(ht, run_id)
    for finished in (1, 2):  # one hour, then two: not all children are done yet
        await ht.aio_advance(timedelta(hours=1))
        await until(lambda: done() == finished, what=f"{finished} children done")
        await ht.aio_advance(timedelta(0))
        assert await is_evicted(ht, run_id)
        assert RESTORING not in await event_types(ht, run_id, task_id)
        assert calls == [1]

    await ht.aio_advance(timedelta(hours=1))
    result = await outcome(ref)
    assert result == {"children": [{"n": 1}, {"n": 2}, {"n": 3}], "invocation": 2}
    assert calls == [1, 2]
    assert sorted(child_runs(ht.db, "slow_child")) == [(task_id, "COMPLETED")] * 3
    types = await event_types(ht, run_id, task_id)
    assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1
    assert not await is_evicted(ht, run_id)


@pytest.mark.parametrize("wait", ["sleep", "child"])
async def test_an_auto_advancing_clock_skips_to_the_ttl(tmp_path: Path, wait: str) -> None:
    """With `TestClock(auto_advance=True)` the TTL is a deadline the idle engine jumps
    to, whether the task sleeps or waits for a child run."""
    with HatchetTest(str(tmp_path / "auto.db"), auto_advance=True) as auto:
        slow_child = define_children(auto.client)

        @auto.client.durable_task(name="parent", eviction_policy=SHORT)
        async def parent(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
            if wait == "sleep":
                await ctx.aio_sleep_for(timedelta(hours=1))
                return {"invocation": ctx.invocation_count}
            child = await slow_child.aio_run(Item(n=1))
            return {"child": child, "invocation": ctx.invocation_count}

        await auto.aio_serve(parent, slow_child)
        start = auto.clock.now()
        ref = await parent.aio_run_no_wait()
        result = await asyncio.wait_for(ref.aio_result(), 5)
        assert result["invocation"] == 2
        assert auto.clock.now() - start >= timedelta(hours=1)
        run_id = ref.workflow_run_id
        types = events_of(await auto.client.runs.aio_get(run_id), run_id)
        assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1, types


async def test_two_sleeps_past_the_ttl_are_two_eviction_cycles(ht: HatchetTest) -> None:
    calls: list[int] = []

    @ht.client.durable_task(name="two_naps", eviction_policy=SHORT)
    async def two_naps(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        calls.append(ctx.invocation_count)
        await ctx.aio_sleep_for(timedelta(hours=1))
        await ctx.aio_sleep_for(timedelta(hours=1))
        return {"invocation": ctx.invocation_count}

    await ht.aio_serve(two_naps)
    ref = await two_naps.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await pending(ht, run_id, 1)
    await evict_by_ttl(ht, run_id)

    await ht.aio_advance(timedelta(hours=1))  # the first sleep is due: restored
    await pending(ht, run_id, 2)  # ... and waits in the second sleep, in memory
    await until(lambda: calls == [1, 2])
    await until(lambda: not_(is_evicted(ht, run_id)), what="restored")
    await evict_by_ttl(ht, run_id)  # evicted again

    await ht.aio_advance(timedelta(hours=1))
    assert await outcome(ref) == {"invocation": 3}
    assert calls == [1, 2, 3]
    types = await event_types(ht, run_id, run_id)
    assert types.count(EVICTED) == 2 and types.count(RESTORING) == 2
    assert [t for t in types if t in (EVICTED, RESTORING)] == [EVICTED, RESTORING] * 2


async def not_(value: Awaitable[bool]) -> bool:
    return not await value


async def test_memo_and_aio_now_are_not_redone_after_a_restore(ht: HatchetTest) -> None:
    memo_calls: list[int] = []
    seen: list[tuple[int, Doubled, str]] = []

    async def expensive(x: int) -> Doubled:
        memo_calls.append(x)
        return Doubled(value=x * 2, token=f"call-{len(memo_calls)}")

    @ht.client.durable_task(name="memoizer", eviction_policy=SHORT)
    async def memoizer(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        doubled = await ctx._aio_memo(expensive, Doubled, 21)
        now = await ctx.aio_now()
        seen.append((ctx.invocation_count, doubled, now.isoformat()))
        await ctx.aio_sleep_for(timedelta(hours=1))
        return {**doubled.model_dump(), "now": now.isoformat()}

    await ht.aio_serve(memoizer)
    start = ht.clock.now()
    ref = await memoizer.aio_run_no_wait()
    await pending(ht, ref.workflow_run_id, 3)
    await evict_by_ttl(ht, ref.workflow_run_id)
    await ht.aio_advance(timedelta(hours=1))
    result = await outcome(ref)

    assert memo_calls == [21]  # not called again by the replay
    assert result == {"value": 42, "token": "call-1", "now": start.isoformat()}
    same = Doubled(value=42, token="call-1")
    assert [(c, d) for c, d, _ in seen] == [(1, same), (2, same)]
    assert seen[0][2] == seen[1][2] == start.isoformat()  # the recorded instant


# -- 2. policies: default TTL, None, capacity --------------------------------------


async def test_default_policy_evicts_after_15_minutes_and_none_never(ht: HatchetTest) -> None:
    calls: dict[str, list[int]] = {"default": [], "never": []}

    @ht.client.durable_task(name="default_waiter")
    async def default_waiter(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        calls["default"].append(ctx.invocation_count)
        await ctx.aio_wait_for_event("go:default")
        return {"invocation": ctx.invocation_count}

    @ht.client.durable_task(name="never_evicted", eviction_policy=None)
    async def never_evicted(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        calls["never"].append(ctx.invocation_count)
        await ctx.aio_wait_for_event("go:never")
        return {"invocation": ctx.invocation_count}

    await ht.aio_serve(default_waiter, never_evicted)
    default_ref = await default_waiter.aio_run_no_wait()
    never_ref = await never_evicted.aio_run_no_wait()
    await pending(ht, default_ref.workflow_run_id)
    await pending(ht, never_ref.workflow_run_id)

    await ht.aio_advance(timedelta(minutes=14))
    assert not await is_evicted(ht, default_ref.workflow_run_id)
    assert not await is_evicted(ht, never_ref.workflow_run_id)

    await ht.aio_advance(timedelta(minutes=2))
    await evicted_soon(ht, default_ref.workflow_run_id)

    await ht.aio_advance(timedelta(hours=2))
    assert not await is_evicted(ht, never_ref.workflow_run_id)
    assert not await summary_evicted(ht, never_ref.workflow_run_id)
    never_id = never_ref.workflow_run_id
    assert EVICTED not in await event_types(ht, never_id, never_id)

    await ht.aio_push_event("go:never", {})
    await ht.aio_push_event("go:default", {})
    assert await outcome(never_ref) == {"invocation": 1}
    assert await outcome(default_ref) == {"invocation": 2}
    assert calls == {"default": [1, 2], "never": [1]}


async def test_capacity_evicts_a_waiting_task_for_a_new_one(ht: HatchetTest) -> None:
    calls: dict[str, list[int]] = {"sleeper": [], "quick": []}

    # A TTL longer than the sleep: only capacity can evict it.
    @ht.client.durable_task(name="sleeper", eviction_policy=EvictionPolicy(ttl=timedelta(days=2)))
    async def sleeper(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        calls["sleeper"].append(ctx.invocation_count)
        await ctx.aio_sleep_for(timedelta(days=1))
        return {"invocation": ctx.invocation_count}

    @ht.client.durable_task(name="quick", eviction_policy=None)
    async def quick(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
        calls["quick"].append(ctx.invocation_count)
        return {"now": (await ctx.aio_now()).isoformat()}

    await ht.aio_serve(sleeper, quick, durable_slots=1)
    assert query(ht.db, "SELECT durable_slots FROM workers WHERE status = 'ACTIVE'") == [(1,)]
    start = ht.clock.now()
    sleeper_ref = await sleeper.aio_run_no_wait()
    sleeper_id = sleeper_ref.workflow_run_id
    await pending(ht, sleeper_id)

    # The only durable slot is the sleeper's: the new task gets it by evicting it.
    assert await outcome(await quick.aio_run_no_wait()) == {"now": start.isoformat()}
    assert ht.clock.now() == start  # no TTL passed: this was capacity
    assert await is_evicted(ht, sleeper_id)
    assert (await event_types(ht, sleeper_id, sleeper_id)).count(EVICTED) == 1

    await ht.aio_advance(timedelta(days=1))
    assert await outcome(sleeper_ref) == {"invocation": 2}
    assert calls == {"sleeper": [1, 2], "quick": [1]}
    assert not await is_evicted(ht, sleeper_id)


async def test_a_worker_holds_at_most_durable_slots_tasks_in_memory(ht: HatchetTest) -> None:
    calls: list[tuple[int, int]] = []

    @ht.client.durable_task(name="sleeper", input_validator=Item)  # the default policy
    async def sleeper(input: Item, ctx: DurableContext) -> dict[str, int]:
        calls.append((input.n, ctx.invocation_count))
        await ctx.aio_sleep_for(timedelta(minutes=5))  # shorter than the default TTL
        return {"n": input.n, "invocation": ctx.invocation_count}

    await ht.aio_serve(sleeper, durable_slots=2)
    refs = await sleeper.aio_run_many_no_wait(
        [sleeper.create_bulk_run_item(Item(n=n)) for n in range(5)]
    )
    ids = [ref.workflow_run_id for ref in refs]

    async def evicted_count() -> int:
        return sum([await is_evicted(ht, run_id) for run_id in ids])

    # All five started and sleep; two durable slots hold two of them, three are evicted.
    for run_id in ids:
        await pending(ht, run_id)
    await until(lambda: _eq_int(evicted_count(), 3), what="three evicted")
    assert ht.clock.now() == ht.started_at  # by capacity, not by TTL

    await ht.aio_advance(timedelta(minutes=5))
    results = [await outcome(ref) for ref in refs]
    assert [r["n"] for r in results] == list(range(5))
    assert sorted(r["invocation"] for r in results) == [1, 1, 2, 2, 2]
    assert len(calls) == 8  # five first runs and three replays, nothing more
    assert await evicted_count() == 0


async def _eq_int(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_capacity_eviction_takes_the_lowest_priority_then_the_longest_waiting(
    ht: HatchetTest,
) -> None:
    def define(name: str, priority: int) -> Standalone[Item, dict[str, int]]:
        policy = EvictionPolicy(ttl=None, priority=priority)  # capacity only

        @ht.client.durable_task(name=name, input_validator=Item, eviction_policy=policy)
        async def waiter(input: Item, ctx: DurableContext) -> dict[str, int]:
            await ctx.aio_wait_for_event("all:go")
            return {"n": input.n, "invocation": ctx.invocation_count}

        return waiter

    low, high = define("low", 0), define("high", 5)
    await ht.aio_serve(low, high, durable_slots=3)
    refs: dict[int, Any] = {}

    async def start(n: int, task: Standalone[Item, dict[str, int]]) -> None:
        refs[n] = await task.aio_run_no_wait(Item(n=n))
        await pending(ht, refs[n].workflow_run_id)
        await ht.aio_advance(timedelta(minutes=1))  # later ones have waited less

    async def evicted_set() -> set[int]:
        return {n for n, ref in refs.items() if await is_evicted(ht, ref.workflow_run_id)}

    async def expect(evicted: set[int]) -> None:
        await until(lambda: _eq(evicted_set(), evicted), what=f"evicted == {evicted}")

    await start(1, low)
    await start(2, low)
    await start(3, high)  # three slots, three waiting: none evicted
    assert await evicted_set() == set()
    await start(4, low)  # 1 and 2 have the lowest priority; 1 has waited longest
    await expect({1})
    await start(5, low)
    await expect({1, 2})
    await start(6, low)  # 3 has waited longer than 4, but its priority is higher
    await expect({1, 2, 4})

    await ht.aio_push_event("all:go", {})
    results = {n: await outcome(ref) for n, ref in refs.items()}
    assert results == {n: {"n": n, "invocation": 2 if n in (1, 2, 4) else 1} for n in range(1, 7)}


async def _eq(value: Awaitable[set[int]], expected: set[int]) -> bool:
    return await value == expected


@pytest.mark.parametrize(
    "policy",
    [None, EvictionPolicy(ttl=timedelta(days=1), allow_capacity_eviction=False)],
    ids=["policy-none", "no-capacity-eviction"],
)
async def test_a_waiter_that_cannot_be_evicted_keeps_its_slot(
    ht: HatchetTest, policy: EvictionPolicy | None
) -> None:
    calls: dict[str, list[int]] = {"waiter": [], "quick": []}

    @ht.client.durable_task(name="waiter", eviction_policy=policy)
    async def waiter(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        calls["waiter"].append(ctx.invocation_count)
        await ctx.aio_wait_for_event("waiter:go")
        return {"invocation": ctx.invocation_count}

    @ht.client.durable_task(name="quick")
    async def quick(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
        calls["quick"].append(ctx.invocation_count)
        return {"ran": True}

    await ht.aio_serve(waiter, quick, durable_slots=1)
    waiter_ref = await waiter.aio_run_no_wait()
    await pending(ht, waiter_ref.workflow_run_id)
    quick_ref = await quick.aio_run_no_wait()
    for _ in range(3):  # the engine steps (and goes idle) a few times; quick waits
        await ht.aio_advance(timedelta(seconds=1))
    assert await ht.client.runs.aio_get_status(quick_ref.workflow_run_id) == V1TaskStatus.QUEUED
    assert calls["quick"] == []
    assert not await is_evicted(ht, waiter_ref.workflow_run_id)

    await ht.aio_push_event("waiter:go", {})
    assert await outcome(waiter_ref) == {"invocation": 1}
    assert await outcome(quick_ref) == {"ran": True}  # the freed slot
    assert calls == {"waiter": [1], "quick": [1]}


async def test_ttl_eviction_frees_the_durable_slot(ht: HatchetTest) -> None:
    """A waiter capacity may not evict still leaves its slot when its TTL passes."""
    policy = EvictionPolicy(ttl=TTL, allow_capacity_eviction=False)

    @ht.client.durable_task(name="waiter", eviction_policy=policy)
    async def waiter(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        await ctx.aio_wait_for_event("waiter:go")
        return {"invocation": ctx.invocation_count}

    @ht.client.durable_task(name="quick")
    async def quick(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
        return {"ran": True}

    await ht.aio_serve(waiter, quick, durable_slots=1)
    waiter_ref = await waiter.aio_run_no_wait()
    await pending(ht, waiter_ref.workflow_run_id)
    quick_ref = await quick.aio_run_no_wait()
    await ht.aio_advance(timedelta(seconds=1))
    assert await ht.client.runs.aio_get_status(quick_ref.workflow_run_id) == V1TaskStatus.QUEUED

    await evict_by_ttl(ht, waiter_ref.workflow_run_id)
    assert await outcome(quick_ref) == {"ran": True}
    await ht.aio_push_event("waiter:go", {})
    assert await outcome(waiter_ref) == {"invocation": 2}


# -- 3. manual restore ---------------------------------------------------------------


def define_gate(
    client: Hatchet, calls: list[int], memo_calls: list[int], **kwargs: Any
) -> Standalone[EmptyModel, dict[str, Any]]:
    """A durable task: a memoized side effect, then a wait for the event `gate:open`."""

    async def side_effect(x: int) -> Doubled:
        memo_calls.append(x)
        return Doubled(value=x, token=f"effect-{len(memo_calls)}")

    @client.durable_task(name="gate", **kwargs)
    async def gate(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        effect = await ctx._aio_memo(side_effect, Doubled, 7)
        opened = await ctx.aio_wait_for_event("gate:open")
        return {"effect": effect.token, "opened": opened, "invocation": ctx.invocation_count}

    return gate


async def test_restore_task_replays_an_evicted_task_at_once(ht: HatchetTest) -> None:
    calls: list[int] = []
    memo_calls: list[int] = []
    gate = define_gate(ht.client, calls, memo_calls, eviction_policy=SHORT)
    await ht.aio_serve(gate)
    ref = await gate.aio_run_no_wait()
    run_id = ref.workflow_run_id
    task_id = (await task_detail(ht, run_id)).external_id
    await pending(ht, task_id, 2)
    await evict_by_ttl(ht, run_id)

    response = await ht.client.runs.aio_restore_task(task_id)
    assert response == V1RestoreTaskResponse(requeued=True)
    # Replayed now, though its event has not come: it waits again, in memory.
    await until(lambda: calls == [1, 2], what="replayed")
    await until(lambda: not_(is_evicted(ht, run_id)), what="not evicted")
    assert entry_status(ht.db, task_id, 2) == "PENDING"
    assert RESTORING in await event_types(ht, run_id, task_id)
    assert await ht.client.runs.aio_get_status(run_id) == V1TaskStatus.RUNNING

    await ht.aio_push_event("gate:open", {"by": "test"})
    result = await outcome(ref)
    assert result == {"effect": "effect-1", "opened": {"by": "test"}, "invocation": 2}
    assert calls == [1, 2]
    assert memo_calls == [7]


async def test_restoring_twice_raises_and_runs_nothing_twice(ht: HatchetTest) -> None:
    calls: list[int] = []
    memo_calls: list[int] = []
    gate = define_gate(ht.client, calls, memo_calls, eviction_policy=SHORT)
    await ht.aio_serve(gate)
    ref = await gate.aio_run_no_wait()
    run_id = ref.workflow_run_id
    task_id = (await task_detail(ht, run_id)).external_id
    await pending(ht, task_id, 2)
    await evict_by_ttl(ht, run_id)

    assert ht.client.runs.restore_task(task_id).requeued is True  # the sync form
    with pytest.raises(ValueError) as info:
        ht.client.runs.restore_task(task_id)  # at once: queued or replaying, not evicted
    restore_error_ok(info.value, task_id)
    await until(lambda: calls == [1, 2])
    await until(lambda: not_(is_evicted(ht, run_id)), what="restored")
    with pytest.raises(ValueError) as info:  # later: waiting in memory, not evicted
        await ht.client.runs.aio_restore_task(task_id)
    restore_error_ok(info.value, task_id)

    await ht.aio_push_event("gate:open", {})
    assert (await outcome(ref))["invocation"] == 2
    assert calls == [1, 2]
    assert memo_calls == [7]
    assert (await event_types(ht, run_id, task_id)).count(RESTORING) == 1


async def test_two_concurrent_restores_requeue_once(ht: HatchetTest) -> None:
    calls: list[int] = []
    memo_calls: list[int] = []
    gate = define_gate(ht.client, calls, memo_calls, eviction_policy=SHORT)
    await ht.aio_serve(gate)
    ref = await gate.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await pending(ht, run_id, 2)
    await evict_by_ttl(ht, run_id)

    outcomes = await asyncio.gather(
        ht.client.runs.aio_restore_task(run_id),
        ht.client.runs.aio_restore_task(run_id),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if isinstance(o, V1RestoreTaskResponse)]
    refused = [o for o in outcomes if isinstance(o, RestoreError)]
    assert len(accepted) == 1 and len(refused) == 1, outcomes
    assert accepted[0].requeued is True
    await until(lambda: calls == [1, 2])
    await ht.aio_push_event("gate:open", {})
    assert (await outcome(ref))["invocation"] == 2
    assert calls == [1, 2] and memo_calls == [7]


@pytest.mark.parametrize("state", ["waiting", "queued", "completed", "unknown"])
async def test_restoring_a_task_that_is_not_evicted_raises_and_changes_nothing(
    ht: HatchetTest, state: str
) -> None:
    calls: list[int] = []
    memo_calls: list[int] = []
    gate = define_gate(ht.client, calls, memo_calls, eviction_policy=None)

    @ht.client.durable_task(name="quick")
    async def quick(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
        return {"ran": True}

    await ht.aio_serve(gate, quick, durable_slots=1)
    gate_ref = await gate.aio_run_no_wait()
    await pending(ht, gate_ref.workflow_run_id, 2)
    if state == "waiting":
        run_id = gate_ref.workflow_run_id  # waiting in memory, never evicted
    elif state == "queued":
        run_id = (await quick.aio_run_no_wait()).workflow_run_id  # no free durable slot
        await ht.aio_advance(timedelta(seconds=1))
        assert await ht.client.runs.aio_get_status(run_id) == V1TaskStatus.QUEUED
    elif state == "completed":
        await ht.aio_push_event("gate:open", {})
        await outcome(gate_ref)
        run_id = gate_ref.workflow_run_id
    else:
        run_id = str(uuid.uuid4())

    before = None
    if state != "unknown":
        before = (
            await ht.client.runs.aio_get_status(run_id),
            await event_types(ht, run_id, run_id),
        )
    with pytest.raises(ValueError) as info:
        await ht.client.runs.aio_restore_task(run_id)
    restore_error_ok(info.value, run_id)
    await ht.aio_advance(timedelta(0))
    if before is not None:
        after = (await ht.client.runs.aio_get_status(run_id), await event_types(ht, run_id, run_id))
        assert after == before
        assert RESTORING not in after[1]
    assert calls == [1] and memo_calls == [7]


@pytest.fixture
def sdk() -> Iterator[Any]:
    """`hatchet_sdk`, served by hatchlite's compat layer, for the test."""
    from hatchlite import compat

    compat.install()
    try:
        yield importlib.import_module("hatchet_sdk")
    finally:
        compat.uninstall()


async def test_task_api_v1_task_restore_through_compat(ht: HatchetTest, sdk: Any) -> None:
    calls: list[int] = []
    memo_calls: list[int] = []
    gate = define_gate(ht.client, calls, memo_calls, eviction_policy=SHORT)
    await ht.aio_serve(gate)
    ref = await gate.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await pending(ht, run_id, 2)
    await evict_by_ttl(ht, run_id)

    # from hatchet_sdk.clients.rest.api.task_api import TaskApi (mypy knows no hatchet_sdk)
    TaskApi = importlib.import_module("hatchet_sdk.clients.rest.api.task_api").TaskApi

    with ht.client.runs.client() as client:
        response = TaskApi(client).v1_task_restore(task=run_id)
    assert response.requeued is True
    await until(lambda: calls == [1, 2], what="replayed")
    await ht.aio_push_event("gate:open", {})
    assert (await outcome(ref))["invocation"] == 2


# -- 4. cancel and replay of an evicted run ---------------------------------------------


async def test_a_cancelled_evicted_run_never_resumes(ht: HatchetTest) -> None:
    calls: list[int] = []

    @ht.client.durable_task(name="napper", eviction_policy=SHORT)
    async def napper(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
        calls.append(ctx.invocation_count)
        await ctx.aio_sleep_for(timedelta(hours=1))
        return {"invocation": ctx.invocation_count}

    @ht.client.durable_task(name="quick")
    async def quick(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
        return {"ran": True}

    await ht.aio_serve(napper, quick)
    ref = await napper.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await pending(ht, run_id)
    await evict_by_ttl(ht, run_id)

    await ht.client.runs.aio_cancel(run_id)
    await until(
        lambda: (
            query(ht.db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))
            == [("CANCELLED",)]
        ),
        what="cancelled",
    )
    await ht.aio_advance(timedelta(hours=2))  # past the sleep's wake-up time
    # The engine has stepped past the old wake-up time.
    assert await outcome(await quick.aio_run_no_wait()) == {"ran": True}
    assert await ht.client.runs.aio_get_status(run_id) == V1TaskStatus.CANCELLED
    assert calls == [1]
    assert RESTORING not in await event_types(ht, run_id, run_id)
    assert entry_status(ht.db, run_id, 1) != "SATISFIED"


async def test_replaying_an_evicted_run_requeues_it_and_it_completes(ht: HatchetTest) -> None:
    calls: list[int] = []

    @ht.client.durable_task(name="waiter", eviction_policy=SHORT)
    async def waiter(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        calls.append(ctx.invocation_count)
        return {"event": await ctx.aio_wait_for_event("waiter:go")}

    await ht.aio_serve(waiter)
    ref = await waiter.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await pending(ht, run_id)
    await evict_by_ttl(ht, run_id)

    await ht.client.runs.aio_replay(run_id)
    await until(lambda: len(calls) == 2, what="replayed")  # its wait has not resolved
    await until(lambda: not_(is_evicted(ht, run_id)), what="not evicted")
    await pending(ht, run_id)
    await ht.aio_push_event("waiter:go", {"n": 1})
    assert await outcome(ref) == {"event": {"n": 1}}
    assert await ht.client.runs.aio_get_status(run_id) == V1TaskStatus.COMPLETED
    assert len(calls) == 2


# -- 5. SIGTERM in a real worker process -----------------------------------------------


def define_parked(client: Hatchet) -> Standalone[Item, dict[str, Any]]:
    """The worker process's task: waits for its own event (default policy: 15 min)."""

    @client.durable_task(name="parked", input_validator=Item)
    async def parked(input: Item, ctx: DurableContext) -> dict[str, Any]:
        record("start", input.n, ctx.invocation_count)
        try:
            event = await ctx.aio_wait_for_event("parked:go", f"input.n == {input.n}")
        finally:
            record("finally", input.n, ctx.invocation_count)
        return {"n": input.n, "event": event, "invocation": ctx.invocation_count}

    return parked


def worker_main(db: str) -> None:
    client = Hatchet(db=db)
    parked = define_parked(client)
    client.worker(f"parked-{os.getpid()}", workflows=[parked]).start()


def start_worker(db: str, effects: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_eviction", db],
        cwd=ROOT,
        env={**os.environ, EFFECTS_ENV: str(effects), "PYTHONPATH": str(ROOT)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def active(db: str, proc: subprocess.Popen[bytes]) -> bool:
    try:
        return bool(
            query(db, "SELECT 1 FROM workers WHERE pid = ? AND status = 'ACTIVE'", (proc.pid,))
        )
    except Exception:
        return False


@pytest.mark.timeout(90)
def test_sigterm_evicts_waiters_and_another_worker_finishes_them(tmp_path: Path) -> None:
    db, effects, log = str(tmp_path / "sigterm.db"), tmp_path / "effects.log", tmp_path / "w.log"
    client = Hatchet(db=db, auto_worker=False)
    parked = define_parked(client)
    procs: list[subprocess.Popen[bytes]] = []
    count = 3
    try:
        refs = parked.run_many_no_wait(
            [parked.create_bulk_run_item(Item(n=i)) for i in range(count)]
        )
        ids = [ref.workflow_run_id for ref in refs]
        first = start_worker(db, effects, log)
        procs.append(first)
        wait_until_sync(
            lambda: all(entry_status(db, i, 1) == "PENDING" for i in ids),
            timeout=30,
            what="all waiting in the first worker",
        )
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0, log.read_text()

        # Evicted before it exited: RUNNING, is_evicted, DURABLE_EVICTED, `finally` ran.
        for run_id in ids:
            details = client.runs.get_details(run_id)
            assert details.status.value == "RUNNING", (run_id, details)
            assert details.task_runs["parked"].is_evicted is True
            types = events_of(client.runs.get(run_id), run_id)
            assert types.count(EVICTED) == 1 and RESTORING not in types, types
        lines = read_effects(effects)
        assert sorted(w[1] for w in lines if w[:1] == ["finally"]) == [str(i) for i in range(count)]
        assert all(w[3] == str(first.pid) for w in lines)

        second = start_worker(db, effects, log)
        procs.append(second)
        wait_until_sync(lambda: second.poll() is not None or active(db, second), what="second up")
        assert second.poll() is None, log.read_text()
        # Only the run whose wait resolves is restored.
        client.event.push("parked:go", {"n": 0})
        assert refs[0].result() == {"n": 0, "event": {"n": 0}, "invocation": 2}
        for run_id in ids[1:]:
            assert client.runs.get_details(run_id).task_runs["parked"].is_evicted is True
        assert not [
            w for w in read_effects(effects) if w[0] == "start" and w[1] != "0" and w[2] != "1"
        ]

        for i in range(1, count):
            client.event.push("parked:go", {"n": i})
        results = [ref.result() for ref in refs]
        assert results == [{"n": i, "event": {"n": i}, "invocation": 2} for i in range(count)]
        for run_id in ids:
            assert client.runs.get_details(run_id).task_runs["parked"].is_evicted is False
            types = events_of(client.runs.get(run_id), run_id)
            assert types.count(EVICTED) == 1 and types.count(RESTORING) == 1, types
        starts = [(w[1], w[2], w[3]) for w in read_effects(effects) if w[0] == "start"]
        assert sorted(starts) == sorted(
            [(str(i), "1", str(first.pid)) for i in range(count)]
            + [(str(i), "2", str(second.pid)) for i in range(count)]
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        client.close()
    assert "Traceback" not in log.read_text()


if __name__ == "__main__":
    worker_main(sys.argv[1])
