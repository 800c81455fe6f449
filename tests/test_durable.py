"""Durable tasks, as Hatchet runs them: recorded `aio_now`, durable sleeps, waits on
sleep/event conditions (AND of arguments, OR inside `or_`), CEL filters, lookback,
child runs and `_aio_memo` across a replay, NonDeterminismError, waits that hold no
slot, damaged histories and cancellation.

A replay is produced in-process: close the client while the task waits (its run goes
back to the queue), open a new `Hatchet` on the same file, define the task again and
let a worker take it."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    ClientConfig,
    Context,
    DurableContext,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    NonDeterminismError,
    SleepCondition,
    SleepResult,
    Standalone,
    TaskRunError,
    UserEventCondition,
    or_,
)
from hatchlite.cel import InvalidCELError
from hatchlite.testing import TestClock
from hatchlite.types import V1TaskStatus
from tests.conftest import outcome, query, wait_until

# A hang is a failure: most tests take well under half a second.
pytestmark = pytest.mark.timeout(20)


class Item(BaseModel):
    n: int


class Payment(BaseModel):
    order_id: str
    amount: float


class ChildBroke(Exception):
    """A user exception with a distinctive class name."""


# -- helpers -----------------------------------------------------------------------


def entry(db: str, task_id: str, node: int) -> tuple[str, str, str] | None:
    """(kind, key, status) of one durable history entry, or None."""
    rows = query(
        db,
        "SELECT kind, key, status FROM durable_events WHERE task_run_id = ? AND node_id = ?",
        (task_id, node),
    )
    return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


def entry_status(db: str, task_id: str, node: int) -> str | None:
    found = entry(db, task_id, node)
    return found[2] if found else None


def history(db: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db,
        """SELECT node_id, kind, key, status FROM durable_events WHERE task_run_id = ?
           ORDER BY node_id""",
        (task_id,),
    )


def conditions(db: str, task_id: str) -> list[tuple[Any, ...]]:
    """(node, kind, readable_key, status) of every condition of the task run's waits."""
    return query(
        db,
        """SELECT node_id, kind, readable_key, status FROM durable_conditions
           WHERE task_run_id = ? ORDER BY node_id, idx""",
        (task_id,),
    )


def pending_waits(db: str) -> int:
    return int(
        query(
            db,
            "SELECT count(*) FROM durable_events WHERE kind = 'WAIT' AND status = 'PENDING'",
        )[0][0]
    )


def run_status(db: str, run_id: str) -> str:
    return str(query(db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


def task_error(db: str, task_id: str) -> dict[str, Any]:
    """The stored error (exc_type, message, trace) of a failed task run."""
    [(error,)] = query(db, "SELECT error FROM task_runs WHERE id = ?", (task_id,))
    assert isinstance(error, str), error
    value = json.loads(error)
    assert isinstance(value, dict)
    return value


def reopen(db: str, **kwargs: Any) -> Hatchet:
    """A fresh client (and engine) on `db`, as a restarted process would have."""
    return Hatchet(db=db, **kwargs)


@pytest.fixture
def clock_db(tmp_path: Path) -> str:
    """A separate database for clients on a TestClock (one database has one engine with
    one clock, and the `hatchet` fixture's engine runs on the system clock)."""
    return str(tmp_path / "clock.db")


@pytest.fixture
def clients() -> Iterator[list[Hatchet]]:
    """Clients a replay test opens; each is closed at the end (closing twice is fine)."""
    opened: list[Hatchet] = []
    yield opened
    for client in reversed(opened):
        client.close()


def noop_task(client: Hatchet) -> Standalone[EmptyModel, dict[str, bool]]:
    """A trivial task: running it starts the client's implicit worker, and its completion
    proves the engine took at least one step."""

    @client.task(name="noop")
    def noop(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": True}

    return noop


# -- 1. sleeps ---------------------------------------------------------------------


async def test_sleep_for_returns_sleep_result_and_waits_for_the_clock(clock_db: str) -> None:
    clock = TestClock()
    client = Hatchet(db=clock_db, clock=clock)
    slept: list[SleepResult] = []
    try:

        @client.durable_task()
        async def napper(input: EmptyModel, ctx: DurableContext) -> dict[str, float]:
            result = await ctx.aio_sleep_for(timedelta(hours=1))
            slept.append(result)
            return {"slept": result.duration.total_seconds()}

        noop = noop_task(client)
        start = clock.time()
        ref = await napper.aio_run(wait_for_result=False)
        task_id = ref.workflow_run_id
        await wait_until(lambda: entry_status(clock_db, task_id, 1) == "PENDING")
        # Signal key `sleep:<expr>-<wait_index>`; the stored wake-up time is start + 1 h.
        assert entry(clock_db, task_id, 1) == ("WAIT", "sleep:1h-0", "PENDING")
        [(wake_at,)] = query(
            clock_db, "SELECT wake_at FROM durable_conditions WHERE task_run_id = ?", (task_id,)
        )
        assert wake_at == pytest.approx(start + 3600)

        clock.advance(timedelta(minutes=59))
        await noop.aio_run()  # the engine has stepped since the clock moved
        assert entry_status(clock_db, task_id, 1) == "PENDING"
        assert slept == []
        assert run_status(clock_db, task_id) == "RUNNING"

        clock.advance(timedelta(minutes=1, seconds=1))
        assert await outcome(ref) == {"slept": 3600.0}
        assert slept == [SleepResult(duration=timedelta(hours=1))]
        assert entry_status(clock_db, task_id, 1) == "SATISFIED"
        assert conditions(clock_db, task_id) == [(1, "SLEEP", "sleep:1h", "MET")]
    finally:
        client.close()


async def test_one_day_sleep_takes_no_real_time_with_auto_advance(clock_db: str) -> None:
    clock = TestClock(auto_advance=True)
    client = Hatchet(db=clock_db, clock=clock)
    try:

        @client.durable_task()
        async def long_nap(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
            before = await ctx.aio_now()
            result = await ctx.aio_sleep_for(timedelta(days=1))
            after = await ctx.aio_now()
            return {"slept": str(result.duration), "elapsed": str(after - before)}

        start = clock.time()
        real_start = time.monotonic()
        result = await asyncio.wait_for(long_nap.aio_run(), 3)
        assert time.monotonic() - real_start < 1.0
        assert result["slept"] == str(timedelta(days=1))
        assert result["elapsed"] == str(timedelta(days=1))
        assert clock.time() - start >= 86400
    finally:
        client.close()


async def test_sleep_until_sleeps_the_difference(clock_db: str) -> None:
    clock = TestClock(auto_advance=True)
    client = Hatchet(db=clock_db, clock=clock)
    try:
        wake_at = clock.now() + timedelta(hours=3)

        @client.durable_task()
        async def alarm(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
            result = await ctx.aio_sleep_until(wake_at)
            return {"slept": str(result.duration), "now": (await ctx.aio_now()).isoformat()}

        result = await asyncio.wait_for(alarm.aio_run(), 3)
        assert result["slept"] == str(timedelta(hours=3))
        assert datetime.fromisoformat(result["now"]) >= wake_at
    finally:
        client.close()


async def test_sleep_keeps_its_wake_time_across_a_replay(
    clock_db: str, clients: list[Hatchet]
) -> None:
    clock = TestClock()
    keys: list[tuple[int, int]] = []

    def define(client: Hatchet) -> Standalone[EmptyModel, dict[str, int]]:
        # Not evicted after 15 minutes of sleep (the default policy): the only new
        # invocation is the one after the restart.
        @client.durable_task(name="two_naps", eviction_policy=None)
        async def two_naps(input: EmptyModel, ctx: DurableContext) -> dict[str, int]:
            await ctx.aio_sleep_for(timedelta(hours=1))
            await ctx.aio_sleep_for(timedelta(hours=1))
            keys.append((ctx.invocation_count, ctx.wait_index))
            return {"invocation": ctx.invocation_count}

        return two_naps

    first = reopen(clock_db, clock=clock)
    clients.append(first)
    ref = await define(first).aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    start = clock.time()
    await wait_until(lambda: entry_status(clock_db, task_id, 1) == "PENDING")
    clock.advance(timedelta(hours=1))
    await wait_until(lambda: entry_status(clock_db, task_id, 2) == "PENDING")
    clock.advance(timedelta(minutes=10))
    first.close()  # stopped 10 minutes into the second sleep

    second = reopen(clock_db, clock=clock)
    clients.append(second)
    two_naps = define(second)
    noop = noop_task(second)
    await noop.aio_run()  # the replay passes the finished first sleep without sleeping
    clock.advance(timedelta(minutes=49))
    await noop.aio_run()
    assert entry_status(clock_db, task_id, 2) == "PENDING"
    clock.advance(timedelta(minutes=1, seconds=1))  # the original wake-up time: start + 2 h
    assert await asyncio.wait_for(two_naps.aio_get_result(task_id), 3) == {"invocation": 2}
    assert keys == [(2, 2)]
    assert history(clock_db, task_id) == [
        (1, "WAIT", "sleep:1h-0", "SATISFIED"),
        (2, "WAIT", "sleep:1h-1", "SATISFIED"),
    ]
    [(wake_at,)] = query(
        clock_db,
        "SELECT wake_at FROM durable_conditions WHERE task_run_id = ? AND node_id = 2",
        (task_id,),
    )
    assert wake_at == pytest.approx(start + 7200)


# -- 2. aio_wait_for: or_ groups and AND-ed arguments --------------------------------


async def test_wait_for_or_group_event_wins(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.durable_task()
    async def racer(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        return await ctx.aio_wait_for(
            "race",
            or_(
                SleepCondition(timedelta(hours=1)),
                UserEventCondition(event_key="race:go", expression="input.ok == true"),
            ),
        )

    ref = await racer.aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 1) == "PENDING")
    assert entry(db_path, task_id, 1) == ("WAIT", "race", "PENDING")
    await hatchet.event.aio_push("race:go", {"ok": True, "n": 7})
    assert await outcome(ref) == {"CREATE": {"race:go": [{"ok": True, "n": 7}]}}
    assert await racer.aio_get_result(task_id) == {"CREATE": {"race:go": [{"ok": True, "n": 7}]}}
    # The losing sleep is closed: no timer is left behind.
    assert conditions(db_path, task_id) == [
        (1, "SLEEP", "sleep:1h", "CLOSED"),
        (1, "EVENT", "race:go", "MET"),
    ]


async def test_wait_for_or_group_sleep_wins(clock_db: str) -> None:
    client = Hatchet(db=clock_db, clock=TestClock(auto_advance=True))
    try:

        @client.durable_task()
        async def racer(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
            return await ctx.aio_wait_for(
                "race",
                or_(
                    SleepCondition(timedelta(seconds=30)),
                    UserEventCondition(event_key="race:go"),
                ),
            )

        result = await asyncio.wait_for(racer.aio_run(), 3)
        assert result == {"CREATE": {"sleep:30s": [{"sleep_duration": "30s"}]}}
    finally:
        client.close()


async def test_separate_conditions_are_and_ed(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.durable_task()
    async def both(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        return await ctx.aio_wait_for(
            "both", UserEventCondition(event_key="left"), UserEventCondition(event_key="right")
        )

    ref = await both.aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 1) == "PENDING")
    # A push is settled when it returns: one of two conditions met is not enough.
    await hatchet.event.aio_push("left", {"side": "L"})
    assert entry_status(db_path, task_id, 1) == "PENDING"
    assert conditions(db_path, task_id) == [
        (1, "EVENT", "left", "MET"),
        (1, "EVENT", "right", "OPEN"),
    ]
    await hatchet.event.aio_push("right", {"side": "R"})
    result = await outcome(ref)
    assert result == {"CREATE": {"left": [{"side": "L"}], "right": [{"side": "R"}]}}


async def test_conditions_of_one_wait_need_distinct_readable_keys(
    hatchet: Hatchet, db_path: str
) -> None:
    @hatchet.durable_task()
    async def twins(input: EmptyModel, ctx: DurableContext) -> None:
        await ctx.aio_wait_for(
            "twins", SleepCondition(timedelta(seconds=30)), SleepCondition(timedelta(seconds=30))
        )

    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await asyncio.wait_for(twins.aio_run(), 3)
    [error] = info.value.exceptions
    assert error.exc_type == "ValueError"
    assert "sleep:30s" in error.exc
    assert pending_waits(db_path) == 0


async def test_event_keys_are_namespaced(db_path: str) -> None:
    client = Hatchet(db=db_path, config=ClientConfig(namespace="Team"))
    try:

        @client.durable_task()
        async def spaced(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
            return {"event": await ctx.aio_wait_for_event("gate")}

        ref = await spaced.aio_run(wait_for_result=False)
        await wait_until(lambda: entry_status(db_path, ref.workflow_run_id, 1) == "PENDING")
        assert query(db_path, "SELECT event_key FROM durable_conditions") == [("team_gate",)]
        pushed = await client.event.aio_push("gate", {"n": 1})
        assert pushed.key == "team_gate"
        assert await outcome(ref) == {"event": {"n": 1}}
    finally:
        client.close()


# -- 3. CEL expressions ------------------------------------------------------------


async def test_expression_filters_events(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.durable_task()
    async def big_spender(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        payload = await ctx.aio_wait_for_event("order:paid", "input.amount > 10.0")
        return {"payload": payload}

    ref = await big_spender.aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 1) == "PENDING")
    await hatchet.event.aio_push("order:paid", {"amount": 5.0})  # expression false
    await hatchet.event.aio_push("order:refunded", {"amount": 50.0})  # another key
    await hatchet.event.aio_push("order:paid", {"cost": 50.0})  # no such field: false
    assert entry_status(db_path, task_id, 1) == "PENDING"
    await hatchet.event.aio_push("order:paid", {"amount": 20.0})
    assert await outcome(ref) == {"payload": {"amount": 20.0}}


@pytest.mark.parametrize("form", ["wait_for_event", "condition"])
async def test_bad_expression_fails_the_task(hatchet: Hatchet, db_path: str, form: str) -> None:
    raised: list[BaseException] = []

    @hatchet.durable_task()
    async def typo(input: EmptyModel, ctx: DurableContext) -> None:
        try:
            if form == "wait_for_event":
                await ctx.aio_wait_for_event("order:paid", "input.amount >")
            else:
                await ctx.aio_wait_for("w", UserEventCondition("order:paid", "input.amount >"))
        except Exception as exc:
            raised.append(exc)
            raise

    ref = await typo.aio_run(wait_for_result=False)
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await outcome(ref)
    [error] = info.value.exceptions
    assert error.exc_type == "InvalidCELError"
    assert "invalid CEL expression 'input.amount >'" in error.exc
    assert [type(e) for e in raised] == [InvalidCELError]
    assert isinstance(raised[0], ValueError)
    assert run_status(db_path, ref.workflow_run_id) == "FAILED"
    assert pending_waits(db_path) == 0  # nothing was left waiting


# -- 4. events pushed before the wait; lookback, scope, payload_validator ------------


async def test_event_pushed_before_the_wait_is_dropped(hatchet: Hatchet, db_path: str) -> None:
    await hatchet.event.aio_push("gate", {"n": 0})

    @hatchet.durable_task()
    async def gated(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        return {"event": await ctx.aio_wait_for_event("gate")}

    ref = await gated.aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 1) == "PENDING")
    await hatchet.event.aio_push("gate", {"n": 1})
    assert await outcome(ref) == {"event": {"n": 1}}


async def test_lookback_window_counts_an_earlier_event_of_the_scope(
    hatchet: Hatchet, db_path: str
) -> None:
    await hatchet.event.aio_push("gate", {"n": -1}, scope="other")
    await hatchet.event.aio_push("gate", {"n": 0}, scope="s-1")
    await hatchet.event.aio_push("gate", {"n": -2})  # no scope

    @hatchet.durable_task()
    async def gated(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        event = await ctx.aio_wait_for_event(
            "gate", scope="s-1", lookback_window=timedelta(minutes=5)
        )
        return {"event": event}

    assert await asyncio.wait_for(gated.aio_run(), 3) == {"event": {"n": 0}}


async def test_lookback_scope_must_match(hatchet: Hatchet, db_path: str) -> None:
    await hatchet.event.aio_push("gate", {"n": -1}, scope="other")

    @hatchet.durable_task()
    async def gated(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        event = await ctx.aio_wait_for_event(
            "gate", scope="s-1", lookback_window=timedelta(minutes=5)
        )
        return {"event": event}

    ref = await gated.aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 1) == "PENDING")
    await hatchet.event.aio_push("gate", {"n": -2}, scope="other")  # live, wrong scope
    await hatchet.event.aio_push("gate", {"n": -3})  # live, no scope
    assert entry_status(db_path, task_id, 1) == "PENDING"
    await hatchet.event.aio_push("gate", {"n": 3}, scope="s-1")
    assert await outcome(ref) == {"event": {"n": 3}}


async def test_lookback_window_ends_where_it_says(clock_db: str) -> None:
    clock = TestClock()
    client = Hatchet(db=clock_db, clock=clock)
    try:
        await client.event.aio_push("gate", {"n": 0}, scope="s")
        clock.advance(timedelta(hours=2))

        @client.durable_task()
        async def gated(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
            event = await ctx.aio_wait_for_event(
                "gate", scope="s", lookback_window=timedelta(hours=1)
            )
            return {"event": event}

        ref = await gated.aio_run(wait_for_result=False)
        task_id = ref.workflow_run_id
        await wait_until(lambda: entry_status(clock_db, task_id, 1) == "PENDING")
        await client.event.aio_push("gate", {"n": 1}, scope="s")
        assert await outcome(ref) == {"event": {"n": 1}}
    finally:
        client.close()


async def test_consider_events_since(hatchet: Hatchet, db_path: str) -> None:
    since = hatchet.clock.now() - timedelta(seconds=1)
    await hatchet.event.aio_push("gate", {"n": 0})

    @hatchet.durable_task()
    async def gated(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        return await ctx.aio_wait_for(
            "w", UserEventCondition(event_key="gate", consider_events_since=since)
        )

    assert await asyncio.wait_for(gated.aio_run(), 3) == {"CREATE": {"gate": [{"n": 0}]}}


async def test_scope_and_lookback_window_only_together(hatchet: Hatchet, db_path: str) -> None:
    messages: list[str] = []

    @hatchet.durable_task()
    async def lopsided(input: EmptyModel, ctx: DurableContext) -> None:
        for kwargs in ({"scope": "s"}, {"lookback_window": timedelta(minutes=1)}):
            try:
                await ctx.aio_wait_for_event("gate", **kwargs)
            except ValueError as exc:
                messages.append(str(exc))

    await asyncio.wait_for(lopsided.aio_run(), 3)
    assert len(messages) == 2
    assert all("scope" in m and "lookback_window" in m for m in messages)
    assert query(db_path, "SELECT count(*) FROM durable_events") == [(0,)]


async def test_payload_validator(hatchet: Hatchet, db_path: str) -> None:
    seen: list[Any] = []

    @hatchet.durable_task()
    async def paid(input: EmptyModel, ctx: DurableContext) -> dict[str, float]:
        payment = await ctx.aio_wait_for_event("order:paid", payload_validator=Payment)
        seen.append(payment)
        return {"amount": payment.amount}

    ref = await paid.aio_run(wait_for_result=False)
    await wait_until(lambda: entry_status(db_path, ref.workflow_run_id, 1) == "PENDING")
    await hatchet.event.aio_push("order:paid", {"order_id": "A-17", "amount": "42.5"})
    assert await outcome(ref) == {"amount": 42.5}
    assert seen == [Payment(order_id="A-17", amount=42.5)]


# -- 5. aio_now across a replay ----------------------------------------------------


def define_clockwatcher(
    client: Hatchet, calls: list[tuple[int, str]]
) -> Standalone[EmptyModel, dict[str, Any]]:
    @client.durable_task(name="clockwatcher")
    async def clockwatcher(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        now = await ctx.aio_now()
        calls.append((ctx.invocation_count, now.isoformat()))
        event = await ctx.aio_wait_for_event("replay:go")
        return {"now": now.isoformat(), "event": event, "invocation": ctx.invocation_count}

    return clockwatcher


async def test_aio_now_is_the_same_instant_on_replay(db_path: str, clients: list[Hatchet]) -> None:
    calls: list[tuple[int, str]] = []
    first = reopen(db_path)
    clients.append(first)
    ref = await define_clockwatcher(first, calls).aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 2) == "PENDING")
    first.close()
    assert query(db_path, "SELECT status FROM task_runs WHERE id = ?", (task_id,)) == [("QUEUED",)]

    second = reopen(db_path)
    clients.append(second)
    clockwatcher = define_clockwatcher(second, calls)
    await noop_task(second).aio_run()  # starts the implicit worker
    await wait_until(lambda: len(calls) == 2)
    await second.event.aio_push("replay:go", {"go": True})
    result = await asyncio.wait_for(clockwatcher.aio_get_result(task_id), 3)

    assert [c[0] for c in calls] == [1, 2]  # invoked twice; invocation_count 2 on replay
    assert calls[0][1] == calls[1][1] == result["now"]
    assert result["event"] == {"go": True}
    assert result["invocation"] == 2
    assert datetime.fromisoformat(result["now"]).tzinfo is not None
    assert [r[:2] for r in history(db_path, task_id)] == [(1, "NOW"), (2, "WAIT")]


# -- 6. non-determinism ------------------------------------------------------------


async def first_shape(ctx: DurableContext) -> None:
    await ctx.aio_now()
    await ctx.aio_sleep_for(timedelta(hours=1))


async def different_sleep(ctx: DurableContext) -> None:
    await ctx.aio_now()
    await ctx.aio_sleep_for(timedelta(hours=2))


async def different_event(ctx: DurableContext) -> None:
    await ctx.aio_now()
    await ctx.aio_wait_for_event("another:key")


async def different_kind(ctx: DurableContext) -> None:
    await ctx.aio_now()
    await ctx.aio_now()


@pytest.mark.parametrize(
    "replayed",
    [different_sleep, different_event, different_kind],
    ids=["sleep-length", "event-key", "call-kind"],
)
async def test_replay_with_a_different_call_is_non_deterministic(
    db_path: str, clients: list[Hatchet], replayed: Callable[[DurableContext], Any]
) -> None:
    invocations: list[int] = []
    raised: list[NonDeterminismError] = []

    def define(client: Hatchet, body: Callable[[DurableContext], Any]) -> Standalone[Any, Any]:
        @client.durable_task(name="fickle", retries=2)
        async def fickle(input: EmptyModel, ctx: DurableContext) -> None:
            invocations.append(ctx.invocation_count)
            try:
                await body(ctx)
            except NonDeterminismError as exc:
                raised.append(exc)
                raise

        return fickle

    first = reopen(db_path)
    clients.append(first)
    ref = await define(first, first_shape).aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 2) == "PENDING")
    first.close()

    second = reopen(db_path)
    clients.append(second)
    fickle = define(second, replayed)
    await noop_task(second).aio_run()
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await asyncio.wait_for(fickle.aio_get_result(task_id), 3)

    [error] = info.value.exceptions
    assert error.exc_type == "NonDeterminismError"
    assert re.search(r"\b(call|node)( id)?\W*2\b", error.exc), error.exc
    assert [(e.node_id, e.invocation_count, e.task_external_id) for e in raised] == [
        (2, 2, task_id)
    ]
    assert invocations == [1, 2]  # not retried, though retries=2
    assert run_status(db_path, task_id) == "FAILED"
    stored = task_error(db_path, task_id)
    assert stored["exc_type"] == "NonDeterminismError"


async def test_replay_with_a_different_expression_is_non_deterministic(
    db_path: str, clients: list[Hatchet]
) -> None:
    def define(client: Hatchet, expression: str) -> Standalone[Any, Any]:
        @client.durable_task(name="picky")
        async def picky(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
            return {"event": await ctx.aio_wait_for_event("pick", expression)}

        return picky

    first = reopen(db_path)
    clients.append(first)
    ref = await define(first, "input.n == 1").aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 1) == "PENDING")
    first.close()

    second = reopen(db_path)
    clients.append(second)
    picky = define(second, "input.n == 2")
    await noop_task(second).aio_run()
    await second.event.aio_push("pick", {"n": 1})  # meets the recorded condition only
    with pytest.raises(FailedTaskRunExceptionGroup, match="NonDeterminismError"):
        await asyncio.wait_for(picky.aio_get_result(task_id), 3)


# -- 7. child runs -------------------------------------------------------------------


def define_family(
    client: Hatchet, parent_calls: list[int], child_calls: list[int]
) -> tuple[Standalone[Item, dict[str, Any]], Standalone[Item, dict[str, int]]]:
    @client.task(name="child", input_validator=Item)
    async def child(input: Item, ctx: Context) -> dict[str, int]:
        child_calls.append(input.n)
        return {"doubled": input.n * 2}

    @client.durable_task(name="parent", input_validator=Item)
    async def parent(input: Item, ctx: DurableContext) -> dict[str, Any]:
        parent_calls.append(ctx.invocation_count)
        result = await child.aio_run(Item(n=input.n))
        event = await ctx.aio_wait_for_event("family:go")
        return {"child": result, "event": event}

    return parent, child


async def test_child_run_result_is_returned(hatchet: Hatchet, db_path: str) -> None:
    parent_calls: list[int] = []
    child_calls: list[int] = []
    parent, _ = define_family(hatchet, parent_calls, child_calls)
    ref = await parent.aio_run(Item(n=21), wait_for_result=False)
    await wait_until(lambda: entry_status(db_path, ref.workflow_run_id, 2) == "PENDING")
    await hatchet.event.aio_push("family:go", {})
    assert await outcome(ref) == {"child": {"doubled": 42}, "event": {}}
    assert child_calls == [21]
    assert [r[:2] for r in history(db_path, ref.workflow_run_id)] == [
        (1, "SPAWN"),
        (2, "WAIT"),
    ]


async def test_child_is_not_spawned_again_on_replay(db_path: str, clients: list[Hatchet]) -> None:
    parent_calls: list[int] = []
    child_calls: list[int] = []
    first = reopen(db_path)
    clients.append(first)
    parent, _ = define_family(first, parent_calls, child_calls)
    ref = await parent.aio_run(Item(n=5), wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 2) == "PENDING")
    first.close()

    second = reopen(db_path)
    clients.append(second)
    parent, _ = define_family(second, parent_calls, child_calls)
    await noop_task(second).aio_run()
    await wait_until(lambda: len(parent_calls) == 2)
    await second.event.aio_push("family:go", {"go": 1})
    result = await asyncio.wait_for(parent.aio_get_result(task_id), 3)

    assert result == {"child": {"doubled": 10}, "event": {"go": 1}}
    assert parent_calls == [1, 2]
    assert child_calls == [5]
    children = query(
        db_path,
        "SELECT parent_task_run_id, status FROM workflow_runs WHERE workflow_name = ?",
        ("child",),
    )
    assert children == [(task_id, "COMPLETED")]


async def test_failing_child_raises_task_run_error_in_durable_parent(
    hatchet: Hatchet, db_path: str
) -> None:
    @hatchet.task(name="brittle")
    async def brittle(input: EmptyModel, ctx: Context) -> None:
        raise ChildBroke("child broke")

    @hatchet.durable_task(name="guardian")
    async def guardian(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        try:
            await brittle.aio_run()
        except TaskRunError as exc:
            return {"caught": exc.exc_type, "message": exc.exc}
        return {"caught": None}

    result = await asyncio.wait_for(guardian.aio_run(), 3)
    assert result == {"caught": "ChildBroke", "message": "child broke"}
    [(child_id, child_status)] = query(
        db_path, "SELECT id, status FROM workflow_runs WHERE workflow_name = 'brittle'"
    )
    assert child_status == "FAILED"
    assert task_error(db_path, str(child_id))["exc_type"] == "ChildBroke"


# -- 8. _aio_memo ------------------------------------------------------------------


class Doubled(BaseModel):
    value: int
    token: str


async def test_memo_runs_once_across_a_replay(db_path: str, clients: list[Hatchet]) -> None:
    memo_calls: list[int] = []
    results: list[Doubled] = []

    async def expensive(x: int) -> Doubled:
        memo_calls.append(x)
        return Doubled(value=x * 2, token=f"call-{len(memo_calls)}")

    def define(client: Hatchet) -> Standalone[EmptyModel, dict[str, Any]]:
        @client.durable_task(name="memoizer")
        async def memoizer(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
            doubled = await ctx._aio_memo(expensive, Doubled, 21)
            results.append(doubled)
            await ctx.aio_wait_for_event("memo:go")
            return doubled.model_dump()

        return memoizer

    first = reopen(db_path)
    clients.append(first)
    ref = await define(first).aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 2) == "PENDING")
    first.close()

    second = reopen(db_path)
    clients.append(second)
    memoizer = define(second)
    await noop_task(second).aio_run()
    await second.event.aio_push("memo:go", {})
    result = await asyncio.wait_for(memoizer.aio_get_result(task_id), 3)

    assert memo_calls == [21]
    assert result == {"value": 42, "token": "call-1"}
    assert results == [Doubled(value=42, token="call-1")] * 2
    assert all(isinstance(r, Doubled) for r in results)


# -- 9. waiting holds no slot --------------------------------------------------------


async def test_waiting_tasks_release_their_durable_slots(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    try:

        @client.durable_task(name="waiter", input_validator=Item)
        async def waiter(input: Item, ctx: DurableContext) -> dict[str, Any]:
            event = await ctx.aio_wait_for_event("all:go")
            return {"n": input.n, "event": event}

        worker = client.worker("two-durable-slots", durable_slots=2, workflows=[waiter])
        thread = threading.Thread(target=worker.start)
        thread.start()
        try:
            refs = await waiter.aio_run_many_no_wait(
                [waiter.create_bulk_run_item(Item(n=i)) for i in range(10)]
            )
            # All 10 reach their wait on 2 durable slots: waiters are evicted to make room.
            await wait_until(lambda: pending_waits(db_path) == 10)
            assert query(db_path, "SELECT durable_slots FROM workers") == [(2,)]
            await client.event.aio_push("all:go", {"go": True})
            results = await asyncio.wait_for(asyncio.gather(*(r.aio_result() for r in refs)), 5)
            assert results == [{"n": i, "event": {"go": True}} for i in range(10)]
        finally:
            worker.stop()
            await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()
    finally:
        client.close()


@pytest.mark.timeout(30)
async def test_a_thousand_sleepers_on_ten_durable_slots(clock_db: str) -> None:
    clock = TestClock()
    client = Hatchet(db=clock_db, clock=clock, auto_worker=False)
    count = 1000
    try:

        @client.durable_task(name="sleeper", input_validator=Item)
        async def sleeper(input: Item, ctx: DurableContext) -> dict[str, int]:
            await ctx.aio_sleep_for(timedelta(days=7))
            return {"n": input.n}

        @client.task(name="plain")
        def plain(input: EmptyModel, ctx: Context) -> dict[str, bool]:
            return {"ok": True}

        worker = client.worker("mixed", durable_slots=10, workflows=[sleeper, plain])
        thread = threading.Thread(target=worker.start)
        thread.start()
        try:
            real_start = time.monotonic()
            refs = await sleeper.aio_run_many_no_wait(
                [sleeper.create_bulk_run_item(Item(n=i)) for i in range(count)]
            )
            await wait_until(lambda: pending_waits(clock_db) == count, timeout=10)
            asleep_after = time.monotonic() - real_start

            # 1,000 sleep on 10 durable slots; the worker's default slots still serve.
            plain_start = time.monotonic()
            assert await asyncio.wait_for(plain.aio_run(), 3) == {"ok": True}
            plain_elapsed = time.monotonic() - plain_start
            assert plain_elapsed < 0.5, plain_elapsed

            clock.advance(timedelta(days=7, seconds=1))
            results = await asyncio.wait_for(asyncio.gather(*(r.aio_result() for r in refs)), 15)
            assert results == [{"n": i} for i in range(count)]
            assert query(clock_db, "SELECT status, count(*) FROM task_runs GROUP BY status") == [
                ("COMPLETED", count + 1)
            ]
            assert time.monotonic() - real_start < 10, asleep_after
        finally:
            worker.stop()
            await asyncio.to_thread(thread.join, 10)
    finally:
        client.close()


# -- 10. a damaged history -----------------------------------------------------------


async def test_a_missing_history_entry_fails_the_run(db_path: str, clients: list[Hatchet]) -> None:
    calls: list[tuple[int, str]] = []
    first = reopen(db_path)
    clients.append(first)
    ref = await define_clockwatcher(first, calls).aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, task_id, 2) == "PENDING")
    first.close()

    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DELETE FROM durable_events WHERE task_run_id = ? AND node_id = 1", (task_id,))
    conn.close()

    second = reopen(db_path)
    clients.append(second)
    clockwatcher = define_clockwatcher(second, calls)
    await noop_task(second).aio_run()
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await asyncio.wait_for(clockwatcher.aio_get_result(task_id), 3)
    [error] = info.value.exceptions
    assert error.exc_type == "DurableHistoryError"
    assert "history" in error.exc and "entry 1 is missing" in error.exc
    assert len(calls) == 1  # the function was not replayed on a guess
    assert run_status(db_path, task_id) == "FAILED"


# -- 11. cancellation ----------------------------------------------------------------


async def test_cancelling_a_waiting_durable_task(hatchet: Hatchet, db_path: str) -> None:
    interrupted: list[str] = []

    @hatchet.durable_task()
    async def patient(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        try:
            return {"event": await ctx.aio_wait_for_event("never:comes")}
        except asyncio.CancelledError:
            interrupted.append("cancelled")
            raise

    noop = noop_task(hatchet)
    ref = await patient.aio_run(wait_for_result=False)
    run_id = ref.workflow_run_id
    await wait_until(lambda: entry_status(db_path, run_id, 1) == "PENDING")
    await hatchet.runs.aio_cancel(run_id)
    await wait_until(lambda: run_status(db_path, run_id) == "CANCELLED")
    await wait_until(lambda: interrupted == ["cancelled"])
    assert await hatchet.runs.aio_get_status(run_id) == V1TaskStatus.CANCELLED
    # aio_result returns normally for a cancelled run (result() raises)
    assert await outcome(hatchet.runs.get_run_ref(run_id)) == {}

    # A late event does not bring it back.
    await hatchet.event.aio_push("never:comes", {})
    await noop.aio_run()
    assert run_status(db_path, run_id) == "CANCELLED"
    assert query(db_path, "SELECT status FROM task_runs WHERE id = ?", (run_id,)) == [
        ("CANCELLED",)
    ]


async def test_cancelled_sleep_leaves_no_timer(clock_db: str) -> None:
    clock = TestClock()
    client = Hatchet(db=clock_db, clock=clock)
    try:

        @client.durable_task()
        async def hibernate(input: EmptyModel, ctx: DurableContext) -> None:
            await ctx.aio_sleep_for(timedelta(days=30))

        noop = noop_task(client)
        ref = await hibernate.aio_run(wait_for_result=False)
        run_id = ref.workflow_run_id
        await wait_until(lambda: entry_status(clock_db, run_id, 1) == "PENDING")
        await client.runs.aio_cancel(run_id)
        await wait_until(lambda: run_status(clock_db, run_id) == "CANCELLED")
        assert [c for c in conditions(clock_db, run_id) if c[3] == "OPEN"] == []
        clock.advance(timedelta(days=31))
        await noop.aio_run()  # the engine has stepped past the old wake-up time
        assert entry_status(clock_db, run_id, 1) != "SATISFIED"
    finally:
        client.close()
