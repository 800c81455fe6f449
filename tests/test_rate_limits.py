"""Rate limits, as Hatchet's engine applies them: fixed windows (`limit` units a window,
refilled when a full window has passed since the last refill) that a task run takes its
units of when it is claimed, or waits, holding no slot, with one REQUEUED_RATE_LIMIT
task event an attempt. Static keys (`rate_limits.put`) and dynamic ones (CEL over
`input`, `additional_metadata` and `parents`); CEL units and limits; windows that
outlive the process; `rate_limits.list` and `pause`, `ctx.pause_rate_limit`;
`RetryAfterException`; errors at definition and at trigger; two worker processes
sharing one limit.

Windows run on a `TestClock` moved by hand. "The engine has stepped since the clock
moved" is proven by running a trivial task after the move: the claim that takes it
first puts back in the queue the task runs whose wait is over, and offers them first
(they are older)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    Context,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    InvalidDefinitionError,
    RateLimit,
    RateLimitDuration,
    RetryAfterException,
    Standalone,
)
from hatchlite.limits import RateLimitError
from hatchlite.models import RateLimitOrderByDirection, RateLimitOrderByField, V1TaskEventType
from hatchlite.testing import TestClock
from tests.conftest import outcome, query, wait_until, wait_until_sync
from tests.procs import rate_limit_worker
from tests.test_processes import ROOT

pytestmark = pytest.mark.timeout(20)

START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
SECOND = RateLimitDuration.SECOND
MINUTE = RateLimitDuration.MINUTE
REQUEUED = V1TaskEventType.REQUEUED_RATE_LIMIT


class Job(BaseModel):
    n: int = 0
    user: str = "a"
    cost: int = 1
    quota: int = 2


class Stepper:
    """Runs a trivial task: the engine has taken a step since the clock last moved."""

    def __init__(self, hatchet: Hatchet) -> None:
        @hatchet.task(name="noop")
        def noop(input: EmptyModel, ctx: Context) -> dict[str, bool]:
            return {"ok": True}

        self.noop = noop

    async def __call__(self) -> None:
        assert await asyncio.wait_for(self.noop.aio_run(), 3) == {"ok": True}


@dataclass
class Env:
    hatchet: Hatchet
    clock: TestClock
    db: str
    stepped: Stepper


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = TestClock(START)
    db = str(tmp_path / "rate_limits.db")
    client = Hatchet(db=db, clock=clock)
    yield Env(client, clock, db, Stepper(client))
    client.close()


def limited_task(
    hatchet: Hatchet, name: str, *limits: RateLimit, **options: Any
) -> Standalone[Job, dict[str, int]]:
    @hatchet.task(name=name, input_validator=Job, rate_limits=list(limits), **options)
    def body(input: Job, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    return body


async def trigger(task: Standalone[Job, dict[str, int]], jobs: list[Job]) -> list[str]:
    refs = await task.aio_run_many_no_wait([task.create_bulk_run_item(job) for job in jobs])
    return [ref.workflow_run_id for ref in refs]


# -- reading the database ------------------------------------------------------------


def starts(db: str, task: str) -> dict[int, float]:
    """`input.n` -> seconds after START at which each started task run named `task`
    was claimed."""
    rows = query(
        db,
        """SELECT json_extract(w.input, '$.n'), t.started_at FROM task_runs t
           JOIN workflow_runs w ON w.id = t.workflow_run_id
           WHERE t.task_name = ? AND t.started_at IS NOT NULL""",
        (task,),
    )
    return {int(str(n)): round(float(str(at)) - START.timestamp(), 6) for n, at in rows}


def started(db: str, task: str) -> int:
    return len(starts(db, task))


def count(db: str, table: str) -> int:
    return int(str(query(db, f"SELECT count(*) FROM {table}")[0][0]))


def left(hatchet: Hatchet, key: str) -> int:
    """The units left of `key`, as `rate_limits.list` reports them."""
    rows = hatchet.rate_limits.list(search=key)
    [row] = [r for r in rows if r.key == key]
    return row.value


async def requeued(hatchet: Hatchet, run_id: str) -> list[int]:
    """The retry counts of a run's REQUEUED_RATE_LIMIT task events, oldest first."""
    details = await hatchet.runs.aio_get(run_id)
    return [e.retry_count or 0 for e in details.task_events if e.event_type == REQUEUED]


def times_requeued(db: str, run_id: str) -> int:
    """How many REQUEUED_RATE_LIMIT events a run has, read from the file directly."""
    rows = query(
        db,
        """SELECT count(*) FROM task_events
           WHERE workflow_run_id = ? AND event_type = 'REQUEUED_RATE_LIMIT'""",
        (run_id,),
    )
    return int(str(rows[0][0]))


# -- 1. fixed windows ------------------------------------------------------------------


async def test_a_static_limit_starts_n_runs_a_window(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    await h.rate_limits.aio_put("api", 3, SECOND)
    call_api = limited_task(h, "call_api", RateLimit(static_key="api", units=1))
    run_ids = await trigger(call_api, [Job(n=n) for n in range(7)])

    await wait_until(lambda: started(db, "call_api") == 3)
    await env.stepped()
    assert started(db, "call_api") == 3
    # Runs over the limit say why, in their task events.
    assert all([await requeued(h, run_id) for run_id in run_ids[3:]])
    assert await requeued(h, run_ids[0]) == []

    clock.advance(0.5)  # half a window: nothing more
    await env.stepped()
    assert started(db, "call_api") == 3
    clock.advance(0.5)
    await wait_until(lambda: started(db, "call_api") == 6)
    await env.stepped()
    assert started(db, "call_api") == 6
    clock.advance(1)
    await wait_until(lambda: started(db, "call_api") == 7)

    # Oldest first: three at START, three a second later, the last at +2 s.
    assert starts(db, "call_api") == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 2}
    for n, run_id in enumerate(run_ids):
        assert await outcome(call_api.get_run_ref(run_id)) == {"n": n}
    # One event per attempt, however often a run waited (run 6 waited twice).
    assert await requeued(h, run_ids[6]) == [0]
    assert left(h, "api") == 2


async def test_runs_over_the_limit_hold_no_slot_and_say_why_once_per_attempt(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "slots.db")
    clock = TestClock(START)
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    await client.rate_limits.aio_put("solo", 1, MINUTE)
    attempts: Counter[int] = Counter()

    @client.task(
        name="solo_call",
        input_validator=Job,
        retries=1,
        rate_limits=[RateLimit(static_key="solo")],
    )
    def solo_call(input: Job, ctx: Context) -> dict[str, int]:
        attempts[input.n] += 1
        if input.n == 1 and ctx.retry_count == 0:
            raise RuntimeError("flaky vendor")
        return {"n": input.n}

    @client.task(name="busy")
    def busy(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"busy": 1}

    run_ids = await trigger(solo_call, [Job(n=n) for n in range(3)])
    worker = client.worker("one-slot", slots=1, workflows=[solo_call, busy])
    serving = asyncio.ensure_future(worker.aio_start())
    try:
        await wait_until(lambda: starts(db, "solo_call") == {0: 0})
        await wait_until(lambda: all(times_requeued(db, r) for r in run_ids[1:]))
        # The two waiting runs hold no slot: another task goes through the only one.
        for _ in range(3):
            assert await asyncio.wait_for(busy.aio_run(), 3) == {"busy": 1}
        assert set(starts(db, "solo_call")) == {0}

        # +60 s: run 1 takes the unit and fails; its retry waits for the next window.
        clock.advance(60)
        await wait_until(lambda: times_requeued(db, run_ids[1]) == 2)
        assert await asyncio.wait_for(busy.aio_run(), 3) == {"busy": 1}
        assert attempts == {0: 1, 1: 1}

        clock.advance(60)  # run 1's retry
        assert await outcome(solo_call.get_run_ref(run_ids[1])) == {"n": 1}
        assert await asyncio.wait_for(busy.aio_run(), 3) == {"busy": 1}
        assert attempts == {0: 1, 1: 2}

        clock.advance(60)  # run 2, after waiting through three windows
        assert await outcome(solo_call.get_run_ref(run_ids[2])) == {"n": 2}
        assert attempts == {0: 1, 1: 2, 2: 1}
        # One REQUEUED_RATE_LIMIT event per attempt that waited.
        assert await requeued(client, run_ids[0]) == []
        assert await requeued(client, run_ids[1]) == [0, 1]
        assert await requeued(client, run_ids[2]) == [0]
        details = await client.runs.aio_get(run_ids[2])
        [message] = [e.message for e in details.task_events if e.event_type == REQUEUED]
        assert "solo" in message
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 10)
        await client.aio_close()


async def test_a_window_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    clock = TestClock(START)
    first = Hatchet(db=db, clock=clock)
    await first.rate_limits.aio_put("quota", 5, MINUTE)
    quota_call = limited_task(first, "quota_call", RateLimit(static_key="quota"))
    for n in range(2):
        assert await asyncio.wait_for(quota_call.aio_run(Job(n=n)), 3) == {"n": n}
    assert left(first, "quota") == 3
    await first.aio_close()

    clock.advance(30)  # half the window, with no process running
    second = Hatchet(db=db, clock=clock)
    try:
        # A program puts its limits when it starts: the same limit again keeps the window.
        await second.rate_limits.aio_put("quota", 5, MINUTE)
        [row] = await second.rate_limits.aio_list()
        assert (row.key, row.limit_value, row.value, row.last_refill) == ("quota", 5, 3, START)

        quota_call = limited_task(second, "quota_call", RateLimit(static_key="quota"))
        stepped = Stepper(second)
        run_ids = await trigger(quota_call, [Job(n=n) for n in range(10, 15)])
        await wait_until(lambda: started(db, "quota_call") == 5)
        await stepped()
        assert set(starts(db, "quota_call")) == {0, 1, 10, 11, 12}
        assert left(second, "quota") == 0

        clock.advance(29)
        await stepped()
        assert started(db, "quota_call") == 5
        clock.advance(1)  # the window that began at START is over
        await wait_until(lambda: started(db, "quota_call") == 7)
        assert starts(db, "quota_call")[14] == 60
        for n, run_id in zip(range(10, 15), run_ids, strict=True):
            assert await outcome(quota_call.get_run_ref(run_id)) == {"n": n}
    finally:
        await second.aio_close()


# -- 2. dynamic keys, CEL units and limits -------------------------------------------


async def test_a_dynamic_key_gives_each_value_its_own_window(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    per_user = limited_task(
        h,
        "per_user",
        RateLimit(dynamic_key="input.user", units=1, limit=2, duration=MINUTE),
    )
    users = ["a", "a", "a", "b", "b", "b", "c"]
    run_ids = await trigger(per_user, [Job(n=n, user=u) for n, u in enumerate(users)])
    await wait_until(lambda: started(db, "per_user") == 5)
    await env.stepped()
    assert set(starts(db, "per_user")) == {0, 1, 3, 4, 6}
    rows = await h.rate_limits.aio_list()
    assert [(r.key, r.limit_value, r.value, r.window) for r in rows] == [
        ("a", 2, 0, "1 minute"),
        ("b", 2, 0, "1 minute"),
        ("c", 2, 1, "1 minute"),
    ]

    clock.advance(59)
    await env.stepped()
    assert started(db, "per_user") == 5
    clock.advance(1)
    for n, run_id in enumerate(run_ids):
        assert await outcome(per_user.get_run_ref(run_id)) == {"n": n}
    assert starts(db, "per_user") == {0: 0, 1: 0, 2: 60, 3: 0, 4: 0, 5: 60, 6: 0}


async def test_units_and_limits_may_be_cel_expressions(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    await h.rate_limits.aio_put("budget", 10, MINUTE)
    spend = limited_task(h, "spend", RateLimit(static_key="budget", units="input.cost"))
    # Units 4 + 4 fit in 10; the third 4 does not, but a 2 after it does.
    spend_ids = await trigger(spend, [Job(n=n, cost=c) for n, c in enumerate([4, 4, 4, 2])])
    await wait_until(lambda: started(db, "spend") == 3)
    await env.stepped()
    assert set(starts(db, "spend")) == {0, 1, 3}
    assert left(h, "budget") == 0

    # The limit from the input, and a key that is an expression, not a path.
    quota = limited_task(
        h,
        "by_quota",
        RateLimit(dynamic_key="'org-' + input.user", units=1, limit="input.quota"),
    )
    quota_ids = await trigger(quota, [Job(n=n, user="x", quota=1) for n in range(3)])
    await wait_until(lambda: started(db, "by_quota") == 1)
    await env.stepped()
    assert set(starts(db, "by_quota")) == {0}
    [row] = await h.rate_limits.aio_list(search="org-")
    assert (row.key, row.limit_value, row.value) == ("org-x", 1, 0)

    clock.advance(60)
    await wait_until(lambda: started(db, "spend") == 4 and started(db, "by_quota") == 2)
    await env.stepped()
    assert started(db, "by_quota") == 2
    clock.advance(60)
    for task, run_ids in ((spend, spend_ids), (quota, quota_ids)):
        for n, run_id in enumerate(run_ids):
            assert await outcome(task.get_run_ref(run_id)) == {"n": n}


async def test_a_dynamic_key_may_use_the_outputs_of_parents(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    wf = h.workflow(name="tenant_flow", input_validator=Job)

    @wf.task()
    def first(input: Job, ctx: Context) -> dict[str, str]:
        return {"tenant": f"t-{input.user}"}

    @wf.task(
        parents=[first],
        rate_limits=[
            RateLimit(dynamic_key="parents.first.tenant", units=1, limit=1, duration=MINUTE)
        ],
    )
    def second(input: Job, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    refs = [await wf.aio_run_no_wait(Job(n=n, user=u)) for n, u in enumerate("aab")]
    await wait_until(lambda: started(db, "second") >= 2)
    await env.stepped()
    assert set(starts(db, "second")) == {0, 2}
    assert started(db, "first") == 3
    rows = await h.rate_limits.aio_list(search="t-")
    assert [(r.key, r.limit_value, r.value) for r in rows] == [("t-a", 1, 0), ("t-b", 1, 0)]

    clock.advance(60)
    results = [await outcome(ref) for ref in refs]
    assert [r["second"] for r in results] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert starts(db, "second")[1] == 60


# -- 3. rate_limits.put / list / pause, ctx.pause_rate_limit ---------------------------


async def test_put_and_list(env: Env) -> None:
    h = env.hatchet
    h.rate_limits.put("b-key", 5)  # Hatchet's put defaults to a one-second window
    await h.rate_limits.aio_put("a-key", 10, MINUTE)
    h.rate_limits.put("c_key", 1, RateLimitDuration.HOUR)
    h.rate_limits.put("day", 7, RateLimitDuration.DAY)
    used = limited_task(h, "used", RateLimit(static_key="a-key", units=3))
    assert await asyncio.wait_for(used.aio_run(Job()), 3) == {"n": 0}

    rows = h.rate_limits.list()
    assert [(r.key, r.limit_value, r.value, r.window) for r in rows] == [
        ("a-key", 10, 7, "1 minute"),
        ("b-key", 5, 5, "1 second"),
        ("c_key", 1, 1, "1 hour"),
        ("day", 7, 7, "1 day"),
    ]
    assert {r.tenant_id for r in rows} == {h.tenant_id}
    assert {r.last_refill for r in rows} == {START}
    assert all(r.last_refill.tzinfo is not None for r in rows)

    def keys(**kwargs: Any) -> list[str]:
        return [r.key for r in h.rate_limits.list(**kwargs)]

    assert keys(search="key") == ["a-key", "b-key", "c_key"]
    assert keys(search="_") == ["c_key"]  # `_` is a character, not a LIKE wildcard
    assert keys(search="%") == []
    assert keys(search="nothing") == []
    assert keys(offset=1, limit=2) == ["b-key", "c_key"]
    assert keys(offset=3) == ["day"]
    assert keys(order_by_direction=RateLimitOrderByDirection.DESC) == [
        "day",
        "c_key",
        "b-key",
        "a-key",
    ]
    # By value, ties by key.
    assert keys(
        order_by_field=RateLimitOrderByField.VALUE,
        order_by_direction=RateLimitOrderByDirection.DESC,
    ) == ["a-key", "day", "b-key", "c_key"]
    assert keys(order_by_field=RateLimitOrderByField.LIMITVALUE) == [
        "c_key",
        "b-key",
        "day",
        "a-key",
    ]
    assert await h.rate_limits.aio_list(search="day") == h.rate_limits.list(search="day")

    # Changing a limit changes it in place; the window it is in goes on.
    h.rate_limits.put("b-key", 8, SECOND)
    [row] = h.rate_limits.list(search="b-key")
    assert (row.limit_value, row.window, row.last_refill) == (8, "1 second", START)
    with pytest.raises(ValueError):
        h.rate_limits.put("zero", 0)
    with pytest.raises(ValueError):
        h.rate_limits.put("", 1)
    assert len(h.rate_limits.list()) == 4


async def test_list_shows_a_full_window_once_the_last_one_is_over(env: Env) -> None:
    h = env.hatchet
    await h.rate_limits.aio_put("api", 3, SECOND)
    call = limited_task(h, "call", RateLimit(static_key="api"))
    for n in range(3):
        await asyncio.wait_for(call.aio_run(Job(n=n)), 3)
    assert left(h, "api") == 0
    env.clock.advance(5)
    assert left(h, "api") == 3


async def test_pause_holds_queued_runs_until_it_ends_and_is_never_shortened(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    await h.rate_limits.aio_put("api", 10, MINUTE)
    paused_call = limited_task(h, "paused_call", RateLimit(static_key="api"))
    assert h.rate_limits.pause("api", START + timedelta(seconds=30)) == START + timedelta(
        seconds=30
    )
    # A shorter pause (a naive datetime is UTC) changes nothing.
    naive = (START + timedelta(seconds=10)).replace(tzinfo=None)
    assert await h.rate_limits.aio_pause("api", naive) == START + timedelta(seconds=30)

    run_ids = await trigger(paused_call, [Job(n=0), Job(n=1)])
    await wait_until(lambda: all(times_requeued(db, r) for r in run_ids))
    await env.stepped()
    assert started(db, "paused_call") == 0
    clock.advance(29)
    await env.stepped()
    assert started(db, "paused_call") == 0
    assert left(h, "api") == 10  # a pause takes no units
    clock.advance(1)
    for n, run_id in enumerate(run_ids):
        assert await outcome(paused_call.get_run_ref(run_id)) == {"n": n}
    assert starts(db, "paused_call") == {0: 30, 1: 30}
    assert left(h, "api") == 8

    # A longer pause extends it.
    assert h.rate_limits.pause("api", START + timedelta(seconds=90)) == START + timedelta(
        seconds=90
    )
    [late] = await trigger(paused_call, [Job(n=2)])
    await wait_until(lambda: times_requeued(db, late) == 1)
    clock.advance(59)  # +89 s: a new window, but paused
    await env.stepped()
    assert started(db, "paused_call") == 2
    clock.advance(1)
    assert await outcome(paused_call.get_run_ref(late)) == {"n": 2}

    with pytest.raises(LookupError, match="no rate limit"):
        h.rate_limits.pause("never-put", START)
    with pytest.raises(LookupError, match="no rate limit"):
        await h.rate_limits.aio_pause("never-put", START)
    assert [r.key for r in h.rate_limits.list()] == ["api"]


class PauseFor(BaseModel):
    seconds: int
    naive: bool = False


async def test_a_task_pauses_a_rate_limit(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    await h.rate_limits.aio_put("vendor", 5, MINUTE)

    def until(input: PauseFor) -> datetime:
        when = START + timedelta(seconds=input.seconds)
        return when.replace(tzinfo=None) if input.naive else when

    @h.task(name="got_429", input_validator=PauseFor)
    def got_429(input: PauseFor, ctx: Context) -> dict[str, str]:
        return {"until": ctx.pause_rate_limit("vendor", until(input)).isoformat()}

    @h.task(name="got_429_async", input_validator=PauseFor)
    async def got_429_async(input: PauseFor, ctx: Context) -> dict[str, str]:
        return {"until": (await ctx.aio_pause_rate_limit("vendor", until(input))).isoformat()}

    vendor_call = limited_task(h, "vendor_call", RateLimit(static_key="vendor"))

    def at(seconds: int) -> dict[str, str]:
        return {"until": (START + timedelta(seconds=seconds)).isoformat()}

    assert await asyncio.wait_for(got_429_async.aio_run(PauseFor(seconds=20)), 3) == at(20)
    assert await asyncio.wait_for(got_429.aio_run(PauseFor(seconds=45)), 3) == at(45)
    # Never shortened, from either kind of task; a naive datetime is UTC.
    assert await asyncio.wait_for(got_429.aio_run(PauseFor(seconds=5)), 3) == at(45)
    shorter = PauseFor(seconds=30, naive=True)
    assert await asyncio.wait_for(got_429_async.aio_run(shorter), 3) == at(45)

    [run_id] = await trigger(vendor_call, [Job(n=7)])
    await wait_until(lambda: times_requeued(db, run_id) == 1)
    clock.advance(44)
    await env.stepped()
    assert started(db, "vendor_call") == 0
    clock.advance(1)
    assert await outcome(vendor_call.get_run_ref(run_id)) == {"n": 7}
    assert starts(db, "vendor_call") == {7: 45}

    # Pausing a key that does not exist fails the task that tries.
    @h.task(name="pause_unknown")
    async def pause_unknown(input: EmptyModel, ctx: Context) -> None:
        await ctx.aio_pause_rate_limit("never-put", START)

    with pytest.raises(FailedTaskRunExceptionGroup, match="no rate limit"):
        await asyncio.wait_for(pause_unknown.aio_run(), 3)


# -- 4. bad input ----------------------------------------------------------------------


def test_definition_errors(hatchet: Hatchet) -> None:
    with pytest.raises(InvalidDefinitionError, match=r"greedy.*3 units but its limit is 2"):

        @hatchet.task(
            name="greedy", rate_limits=[RateLimit(dynamic_key="input.user", units=3, limit=2)]
        )
        def greedy(input: EmptyModel, ctx: Context) -> None:
            return None

    with pytest.raises(ValueError, match="both static key and dynamic key"):
        RateLimit(static_key="api", dynamic_key="input.user", limit=1)
    with pytest.raises(ValueError, match="requires a limit"):
        RateLimit(dynamic_key="input.user")

    wf = hatchet.workflow(name="Billing")
    with pytest.raises(InvalidDefinitionError) as bad_key:

        @wf.task(rate_limits=[RateLimit(dynamic_key="input.user +", limit=1)])
        def charge(input: EmptyModel, ctx: Context) -> None:
            return None

    message = str(bad_key.value)
    assert "Billing" in message and "charge" in message and "input.user +" in message

    with pytest.raises(InvalidDefinitionError, match=r"refund.*input\.cost \*"):

        @wf.task(rate_limits=[RateLimit(static_key="api", units="input.cost *")])
        def refund(input: EmptyModel, ctx: Context) -> None:
            return None

    with pytest.raises(InvalidDefinitionError, match="units must be at least 1"):

        @wf.task(rate_limits=[RateLimit(static_key="api", units=0)])
        def nothing(input: EmptyModel, ctx: Context) -> None:
            return None

    assert [t.name for t in wf.tasks] == []


async def test_a_failing_trigger_fails_its_caller_alone(env: Env) -> None:
    """Triggers that arrive together are written by one engine step, each in a savepoint
    of its own: the one that fails stores nothing, the others run."""
    h, db = env.hatchet, env.db
    unknown = limited_task(h, "bad_key", RateLimit(static_key="never-put"))
    fine = limited_task(h, "fine")
    await fine.aio_run(Job(n=0))  # registered and served: the three meet in one step
    outcomes = await asyncio.gather(
        fine.aio_run(Job(n=1)),
        unknown.aio_run(Job(n=2)),
        fine.aio_run(Job(n=3)),
        return_exceptions=True,
    )
    assert outcomes[0] == {"n": 1} and outcomes[2] == {"n": 3}
    assert isinstance(outcomes[1], RateLimitError)
    assert query(db, "SELECT count(*) FROM workflow_runs WHERE workflow_name = 'bad_key'") == [(0,)]


async def test_trigger_errors_store_nothing(env: Env) -> None:
    h, db = env.hatchet, env.db
    unknown = limited_task(h, "unknown_key", RateLimit(static_key="never-put"))
    with pytest.raises(RateLimitError, match=r"never-put.*does not exist"):
        await unknown.aio_run_no_wait(Job())
    with pytest.raises(RateLimitError, match="never-put"):
        unknown.run_no_wait(Job())

    no_field = limited_task(h, "no_field", RateLimit(dynamic_key="input.account", limit=2))
    with pytest.raises(RateLimitError, match=r"no_field.*input\.account"):
        await no_field.aio_run_no_wait(Job())
    not_a_string = limited_task(h, "not_a_string", RateLimit(dynamic_key="input.n", limit=2))
    with pytest.raises(RateLimitError, match="not a string"):
        await not_a_string.aio_run_no_wait(Job())

    costly = limited_task(
        h, "costly", RateLimit(dynamic_key="input.user", units="input.cost", limit=2)
    )
    with pytest.raises(RateLimitError, match="takes 5 units but its limit is 2"):
        await costly.aio_run_no_wait(Job(cost=5))
    with pytest.raises(RateLimitError, match="at least 1"):
        await costly.aio_run_no_wait(Job(cost=0))
    # One bad run refuses the whole batch.
    with pytest.raises(RateLimitError, match="takes 3 units"):
        await trigger(costly, [Job(user="ok", cost=1), Job(user="bad", cost=3)])
    by_quota = limited_task(
        h, "by_quota", RateLimit(dynamic_key="input.user", units=2, limit="input.quota")
    )
    with pytest.raises(RateLimitError, match="takes 2 units but its limit is 1"):
        await by_quota.aio_run_no_wait(Job(quota=1))

    await h.rate_limits.aio_put("small", 2, MINUTE)
    big = limited_task(h, "big", RateLimit(static_key="small", units=3))
    with pytest.raises(RateLimitError, match="takes 3 units but its limit is 2"):
        await big.aio_run_no_wait(Job())

    assert count(db, "workflow_runs") == 0
    assert count(db, "task_runs") == 0
    assert [r.key for r in await h.rate_limits.aio_list()] == ["small"]


@pytest.mark.parametrize(
    "limit",
    [
        RateLimit(static_key="not-yet"),
        RateLimit(dynamic_key="parents.first.missing", units=1, limit=1),
    ],
    ids=["unknown-static-key", "key-failing-on-parents"],
)
async def test_a_limit_that_fails_when_a_child_task_is_queued_fails_that_task(
    env: Env, limit: RateLimit
) -> None:
    h = env.hatchet
    wf = h.workflow(name="late_keys")

    @wf.task()
    def first(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"tenant": "t"}

    @wf.task(parents=[first], rate_limits=[limit])
    def second(input: EmptyModel, ctx: Context) -> None:
        return None

    ref = await wf.aio_run_no_wait()  # a child's limits are rendered when it is queued
    with pytest.raises(FailedTaskRunExceptionGroup) as failed:
        await outcome(ref)
    [error] = failed.value.exceptions
    assert str(limit.static_key or limit.dynamic_key) in error.exc
    assert [r.key for r in await h.rate_limits.aio_list()] == []


# -- 5. RetryAfterException ------------------------------------------------------------


async def test_retry_after_waits_its_delay_whatever_the_backoff(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    attempts: list[int] = []

    @h.task(name="polite", retries=2, backoff_factor=2.0, backoff_max_seconds=4)
    def polite(input: EmptyModel, ctx: Context) -> dict[str, int]:
        attempts.append(ctx.retry_count)
        if ctx.retry_count == 0:
            raise RetryAfterException("the vendor said 429", after=timedelta(seconds=30))
        return {"attempt": ctx.retry_count}

    ref = await polite.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(
        lambda: (
            query(db, "SELECT status, retry_count FROM task_runs WHERE id = ?", (run_id,))
            == [("QUEUED", 1)]
        )
    )
    clock.advance(4)  # the task's backoff would have retried by now
    await env.stepped()
    assert attempts == [0]
    clock.advance(25)
    await env.stepped()
    assert attempts == [0]
    clock.advance(1)
    assert await outcome(ref) == {"attempt": 1}
    assert attempts == [0, 1]
    [(at,)] = query(db, "SELECT started_at FROM task_runs WHERE id = ?", (run_id,))
    assert at == START.timestamp() + 30
    details = await h.runs.aio_get(run_id)
    assert any(
        "the vendor said 429" in (e.error_message or e.message) for e in details.task_events
    ), details.task_events


async def test_retry_after_counts_against_retries(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    attempts: Counter[str] = Counter()

    @h.task(name="impatient")  # retries=0: the first RetryAfterException is final
    def impatient(input: EmptyModel, ctx: Context) -> None:
        attempts["impatient"] += 1
        raise RetryAfterException("later", after=timedelta(seconds=30))

    @h.task(name="twice", retries=1)
    async def twice(input: EmptyModel, ctx: Context) -> None:
        attempts["twice"] += 1
        raise RetryAfterException("later again", after=timedelta(seconds=30))

    ref = await impatient.aio_run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup) as failed:
        await outcome(ref)
    [error] = failed.value.exceptions
    assert error.exc_type == "RetryAfterException" and "later" in error.exc

    ref2 = await twice.aio_run_no_wait()
    # The retry is stored (its delay counted from the engine clock) before time moves.
    retried = "SELECT retry_count FROM task_runs WHERE workflow_name = 'twice'"
    await wait_until(lambda: query(db, retried) == [(1,)])
    clock.advance(30)
    with pytest.raises(FailedTaskRunExceptionGroup, match="later again"):
        await outcome(ref2)

    clock.advance(120)  # nothing is retried any more
    await env.stepped()
    assert attempts == {"impatient": 1, "twice": 2}
    assert query(
        db,
        "SELECT task_name, status, retry_count FROM task_runs WHERE task_name != 'noop' "
        "ORDER BY task_name",
    ) == [("impatient", "FAILED", 0), ("twice", "FAILED", 1)]


def test_retry_after_carries_its_delay() -> None:
    exc = RetryAfterException("slow down", after=timedelta(seconds=1.5))
    assert (str(exc), exc.after, exc.after_ms) == ("slow down", timedelta(seconds=1.5), 1500)
    with pytest.raises(TypeError):
        RetryAfterException("no delay")  # type: ignore[call-arg]


# -- 6. two worker processes -----------------------------------------------------------

LIMIT = 5
RUNS = 15
# Real seconds a claim's `now` (read when its step begins) may precede the moment it
# takes its units (when its transaction gets the write lock).
TOLERANCE = 0.25


def _start_worker(db: str, log: Path, slots: int) -> subprocess.Popen[bytes]:
    out = open(log, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.procs.rate_limit_worker", db, str(slots)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _registered(db: str, procs: list[subprocess.Popen[bytes]]) -> bool:
    try:
        rows = query(db, "SELECT pid FROM workers WHERE status = 'ACTIVE'")
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
    return {p.pid for p in procs} <= {int(str(pid)) for (pid,) in rows}


@pytest.mark.timeout(60)
def test_a_limit_holds_across_two_worker_processes(tmp_path: Path) -> None:
    """Two processes with three slots each share a limit of 5 a second: 15 short runs
    take three windows, each refilled at least a second after the one before."""
    db = str(tmp_path / "shared.db")
    client = Hatchet(db=db, auto_worker=False)
    shot = rate_limit_worker.build(client)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    procs = [_start_worker(db, log, slots=3) for log in logs]
    try:
        wait_until_sync(
            lambda: any(p.poll() is not None for p in procs) or _registered(db, procs),
            timeout=30,
            what="worker registration",
        )
        assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]

        # The first window opens now; all the runs are queued at once.
        client.rate_limits.put(rate_limit_worker.KEY, LIMIT, SECOND)
        [row] = client.rate_limits.list()
        opened = row.last_refill.timestamp()
        shot.run_many_no_wait(
            [shot.create_bulk_run_item(rate_limit_worker.Shot(n=n)) for n in range(RUNS)]
        )

        def completed() -> int:
            rows = query(db, "SELECT count(*) FROM task_runs WHERE status = 'COMPLETED'")
            return int(str(rows[0][0]))

        wait_until_sync(lambda: completed() == RUNS, timeout=20, what="all runs")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        client.close()

    rows = query(db, "SELECT started_at, worker_id FROM task_runs")
    claimed = sorted(float(str(at)) - opened for at, _ in rows)
    assert len(claimed) == RUNS
    # Window k (k = 0, 1, 2) opens at a refill at least k seconds after the first one
    # opened, so fewer than LIMIT * k runs started before that.
    for k in range(1, RUNS // LIMIT + 1):
        before = [at for at in claimed if at < k - TOLERANCE]
        assert len(before) <= LIMIT * k, (k, claimed)
    assert claimed[-1] < 10, claimed  # the limit was not stuck either
    # Both processes took part.
    assert len({worker for _, worker in rows}) == 2, rows
