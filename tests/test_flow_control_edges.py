"""Edge cases of flow control found in review: concurrency limits whose admission of a
waiter cancels other runs while a run is being finalized, rate-limit values past 64
bits, definitions changed by a redeploy while runs are in flight, running tasks a limit
cancels outside the engine's step, an event whose one listener's rate limit fails,
routing that must not leave a task to a worker that cannot take it, a rate limit
lowered below a queued task's units, and gates of cancelled tasks.

Each test sets up the exact interleaving with bodies that wait for the test (no sleeps
guessing at timing), then waits for the state that proves the behaviour, bounded in
real time."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from hatchlite import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    DesiredWorkerLabel,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    RateLimit,
    RateLimitDuration,
    RateLimitError,
    SleepCondition,
    Standalone,
    StickyStrategy,
    UserEventCondition,
    Workflow,
)
from hatchlite.testing import TestClock
from tests.conftest import query, wait_until
from tests.test_worker_routing import serving
from tests.test_worker_routing import worker as routing_worker

pytestmark = pytest.mark.timeout(20)

GRR = ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN
CANCEL_IN_PROGRESS = ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS
CANCEL_NEWEST = ConcurrencyLimitStrategy.CANCEL_NEWEST
STEP_FAILED = "engine step failed"


def limit(
    expression: str, max_runs: int, strategy: ConcurrencyLimitStrategy = GRR
) -> ConcurrencyExpression:
    return ConcurrencyExpression(expression=expression, max_runs=max_runs, limit_strategy=strategy)


class Role(BaseModel):
    group: str = "g"
    name: str = ""


class Gates:
    """Bodies (on the engine loop) wait at named gates the test opens; what started and
    what was cancelled is recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []

    def _event(self, name: str) -> asyncio.Event:
        if name not in self._events:
            self._events[name] = asyncio.Event()
        return self._events[name]

    async def wait(self, name: str) -> None:
        """Block until the test opens gate `name`; a cancel of the body is noted."""
        self.loop = asyncio.get_running_loop()
        with self.lock:
            self.started.append(name)
        try:
            await asyncio.wait_for(self._event(name).wait(), 10)
        except asyncio.CancelledError:
            with self.lock:
                self.cancelled.append(name)
            raise

    def open(self, *names: str) -> None:
        """Open the gates, in this order, in one turn of the engine loop: the bodies
        behind them end together, and their ends are settled in one scheduler step
        (in this order) unless a step was already under way."""
        assert self.loop is not None, "no body waited yet"

        def release() -> None:
            for name in names:
                self._event(name).set()

        self.loop.call_soon_threadsafe(release)

    def open_all(self) -> None:
        def release() -> None:
            for event in self._events.values():
                event.set()

        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(release)

    def has_started(self, *names: str) -> bool:
        with self.lock:
            return set(names) <= set(self.started)

    def was_cancelled(self, name: str) -> bool:
        with self.lock:
            return name in self.cancelled


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()  # nothing stays blocked past the test


# -- reading the database ------------------------------------------------------------


def run_status(db: str, run_id: str) -> str:
    return str(query(db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


def task_statuses(db: str, run_id: str) -> dict[str, str]:
    rows = query(db, "SELECT task_name, status FROM task_runs WHERE workflow_run_id = ?", (run_id,))
    return {str(name): str(status) for name, status in rows}


def slots(db: str) -> list[tuple[str, str]]:
    return [(str(k), str(s)) for k, s in query(db, "SELECT key, status FROM concurrency_slots")]


def noop_task(hatchet: Hatchet) -> Standalone[EmptyModel, dict[str, bool]]:
    """Running it to completion proves the engine still serves new runs."""

    @hatchet.task(name="noop")
    def noop(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": True}

    return noop


# -- 1. finalizing a run admits a waiter whose limit cancels other runs ---------------


def pairs_workflow(
    hatchet: Hatchet, gates: Gates, strategy: ConcurrencyLimitStrategy
) -> Workflow[Role]:
    """One run per group at a time (workflow level); `first` of every run shares one
    task-level slot `'all'` under `strategy`. Run "x" waits in `second`, run "z" waits
    in `first` (holding `'all'`) and in its other root `side`."""
    wf = hatchet.workflow(name="pairs", input_validator=Role, concurrency=limit("input.group", 1))

    @wf.task(concurrency=[limit("'all'", 1, strategy)])
    async def first(input: Role, ctx: Context) -> dict[str, str]:
        if input.name == "z":
            await gates.wait("z.first")
        return {"ran": input.name}

    @wf.task(parents=[first])
    async def second(input: Role, ctx: Context) -> dict[str, str]:
        if input.name == "x":
            await gates.wait("x.second")
        return {"ran": input.name}

    @wf.task()
    async def side(input: Role, ctx: Context) -> dict[str, str]:
        if input.name == "z":
            await gates.wait("z.side")
        return {"ran": input.name}

    return wf


async def start_pairs(wf: Workflow[Role], db: str, gates: Gates) -> tuple[str, str, str]:
    """X (group 1) runs `second`; Z (group 2) holds `'all'`; Y (group 1) waits behind X.
    Returns the run ids (x, z, y)."""
    x = (await wf.aio_run_no_wait(Role(group="1", name="x"))).workflow_run_id
    await wait_until(lambda: gates.has_started("x.second"))
    z = (await wf.aio_run_no_wait(Role(group="2", name="z"))).workflow_run_id
    await wait_until(lambda: gates.has_started("z.first", "z.side"))
    y = (await wf.aio_run_no_wait(Role(group="1", name="y"))).workflow_run_id
    assert run_status(db, y) == "QUEUED"
    return x, z, y


async def test_a_run_ending_admits_a_waiter_whose_cancel_in_progress_stops_another_run(
    hatchet: Hatchet, db_path: str, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    """X ends and is finalized at the end of the step; that admits Y, whose `first`
    enters `'all'` and cancels Z's running `first`. The step goes on to settle that
    cancel: no step error, Z's body is stopped, Y runs and the engine serves new runs."""
    wf = pairs_workflow(hatchet, gates, CANCEL_IN_PROGRESS)
    noop = noop_task(hatchet)
    x, z, y = await start_pairs(wf, db_path, gates)

    gates.open("x.second")
    await wait_until(lambda: run_status(db_path, y) == "COMPLETED")
    assert run_status(db_path, x) == "COMPLETED"
    await wait_until(lambda: gates.was_cancelled("z.first"))  # its body was stopped
    gates.open("z.side")
    await wait_until(lambda: run_status(db_path, z) == "CANCELLED")
    assert await asyncio.wait_for(noop.aio_run(), 3) == {"ok": True}
    assert slots(db_path) == []
    assert STEP_FAILED not in caplog.text


async def test_a_run_ending_admits_a_waiter_that_cancel_newest_refuses(
    hatchet: Hatchet, db_path: str, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    """As above with CANCEL_NEWEST: the admitted Y is the one cancelled, in the step
    that finalized X; Z runs on and completes."""
    wf = pairs_workflow(hatchet, gates, CANCEL_NEWEST)
    noop = noop_task(hatchet)
    x, z, y = await start_pairs(wf, db_path, gates)

    gates.open("x.second")
    await wait_until(lambda: run_status(db_path, y) == "CANCELLED")
    assert run_status(db_path, x) == "COMPLETED"
    assert run_status(db_path, z) == "RUNNING"
    assert await asyncio.wait_for(noop.aio_run(), 3) == {"ok": True}
    gates.open("z.first", "z.side")
    await wait_until(lambda: run_status(db_path, z) == "COMPLETED")
    assert not gates.was_cancelled("z.first")
    assert slots(db_path) == []
    assert STEP_FAILED not in caplog.text


async def test_a_run_settled_earlier_in_the_step_is_finalized_when_a_waiter_cancels_it(
    hatchet: Hatchet, db_path: str, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    """Z's `side` and X's `second` end in one step, Z's first: Z is looked at (still
    running) before X is finalized. X's end admits Y, which cancels Z's `first`: Z must
    be looked at again and end CANCELLED, not stay RUNNING with every task ended."""
    wf = pairs_workflow(hatchet, gates, CANCEL_IN_PROGRESS)
    noop = noop_task(hatchet)
    x, z, y = await start_pairs(wf, db_path, gates)

    gates.open("z.side", "x.second")
    await wait_until(lambda: run_status(db_path, y) == "COMPLETED")
    assert run_status(db_path, x) == "COMPLETED"
    await wait_until(lambda: gates.was_cancelled("z.first"))
    await wait_until(lambda: run_status(db_path, z) == "CANCELLED")
    assert task_statuses(db_path, z) == {
        "first": "CANCELLED",
        "second": "CANCELLED",
        "side": "COMPLETED",
    }
    assert await asyncio.wait_for(noop.aio_run(), 3) == {"ok": True}
    assert slots(db_path) == []
    assert STEP_FAILED not in caplog.text


# -- 2. rate-limit values past 64 bits ------------------------------------------------


class Sized(BaseModel):
    big: float = 1e30


BEYOND_64_BITS = [
    pytest.param(RateLimit(dynamic_key="'k'", units=1, limit="input.big"), id="cel-limit"),
    pytest.param(
        RateLimit(dynamic_key="'k'", units="input.big", limit="input.big"), id="cel-units"
    ),
    pytest.param(RateLimit(dynamic_key="'k'", units=1, limit=2**70), id="literal-limit"),
]


@pytest.mark.parametrize("rate_limit", BEYOND_64_BITS)
async def test_a_rate_limit_value_past_64_bits_refuses_the_trigger(
    hatchet: Hatchet, db_path: str, rate_limit: RateLimit, caplog: pytest.LogCaptureFixture
) -> None:
    """A root task's limits are rendered in the trigger: a RateLimitError, nothing
    stored (not an OverflowError from sqlite3)."""

    @hatchet.task(name="huge", input_validator=Sized, rate_limits=[rate_limit])
    def huge(input: Sized, ctx: Context) -> None:
        return None

    noop = noop_task(hatchet)
    with pytest.raises(RateLimitError, match=r"'huge'.*out of range \(64-bit integers\)"):
        await huge.aio_run_no_wait(Sized())
    assert query(db_path, "SELECT count(*) FROM workflow_runs") == [(0,)]
    assert await asyncio.wait_for(noop.aio_run(), 3) == {"ok": True}
    assert STEP_FAILED not in caplog.text


@pytest.mark.parametrize("rate_limit", BEYOND_64_BITS)
async def test_a_child_rate_limit_value_past_64_bits_fails_that_task_not_the_engine(
    hatchet: Hatchet, db_path: str, rate_limit: RateLimit, caplog: pytest.LogCaptureFixture
) -> None:
    """A child's limits are rendered inside the engine's step, when its parent ends."""
    wf = hatchet.workflow(name="huge_child", input_validator=Sized)

    @wf.task()
    def parent(input: Sized, ctx: Context) -> None:
        return None

    @wf.task(parents=[parent], rate_limits=[rate_limit])
    def child(input: Sized, ctx: Context) -> None:
        return None

    noop = noop_task(hatchet)
    ref = await wf.aio_run_no_wait(Sized())
    with pytest.raises(FailedTaskRunExceptionGroup) as failed:
        await asyncio.wait_for(ref.aio_result(), 3)
    [error] = failed.value.exceptions
    assert "out of range (64-bit integers)" in error.exc
    assert task_statuses(db_path, ref.workflow_run_id) == {"parent": "COMPLETED", "child": "FAILED"}
    assert await asyncio.wait_for(noop.aio_run(), 3) == {"ok": True}
    assert STEP_FAILED not in caplog.text


@pytest.mark.parametrize("value", [2**63, 2**70])
async def test_put_refuses_a_limit_past_64_bits(hatchet: Hatchet, value: int) -> None:
    """SQLite stores 64-bit integers: a static limit beyond is a ValueError at `put`."""
    with pytest.raises(ValueError, match="limit must be a positive int"):
        await hatchet.rate_limits.aio_put("api", value, RateLimitDuration.MINUTE)
    await hatchet.rate_limits.aio_put("api", 2**63 - 1, RateLimitDuration.MINUTE)
    [row] = await hatchet.rate_limits.aio_list()
    assert (row.key, row.limit_value) == ("api", 2**63 - 1)


# -- 3. limits changed by a redeploy while runs are in flight --------------------------

START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)


def serial_workflow(
    client: Hatchet, *, workflow_limit: bool, task_limit: bool
) -> Workflow[EmptyModel]:
    """One task; at most one run at a time (`workflow_limit`), and a task-level limit
    beside it (`task_limit`)."""
    wf = client.workflow(
        name="serial", concurrency=limit("'constant'", 1) if workflow_limit else None
    )

    @wf.task(concurrency=[limit("'t'", 5)] if task_limit else None)
    def work(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": True}

    return wf


async def trigger_before_redeploy(
    db: str, n: int, clock: TestClock | None = None, **limits: bool
) -> list[str]:
    """`n` runs of the old definition, triggered by a process without workers."""
    old = Hatchet(db=db, clock=clock, auto_worker=False)
    try:
        wf = serial_workflow(old, **limits)
        return [(await wf.aio_run_no_wait()).workflow_run_id for _ in range(n)]
    finally:
        old.close()


@pytest.mark.parametrize(
    "new_limits",
    [
        pytest.param({"workflow_limit": False, "task_limit": False}, id="workflow-limit-removed"),
        pytest.param({"workflow_limit": True, "task_limit": True}, id="task-limit-added"),
    ],
)
async def test_runs_queued_under_limits_a_redeploy_changed_all_run(
    db_path: str, new_limits: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    """Three runs wait under a workflow-level limit (one admitted). The new definition
    drops that limit, or adds a task-level one their stored keys do not cover: each run
    releases what it holds when it ends, and one whose keys no longer fit runs without
    those limits, rather than every step failing."""
    run_ids = await trigger_before_redeploy(db_path, 3, workflow_limit=True, task_limit=False)
    assert [s for _, s in slots(db_path)] == ["HELD", "WAITING", "WAITING"]

    new = Hatchet(db=db_path)
    try:
        wf = serial_workflow(new, **new_limits)
        results = await asyncio.wait_for(
            asyncio.gather(*(wf.aio_get_result(r) for r in run_ids)), 3
        )
        assert results == [{"work": {"ok": True}}] * 3
        assert slots(db_path) == []
        assert await asyncio.wait_for(noop_task(new).aio_run(), 3) == {"ok": True}
    finally:
        new.close()
    assert STEP_FAILED not in caplog.text


async def test_a_workflow_limit_added_by_a_redeploy_does_not_hold_a_run_started_before(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A DAG run triggered when its workflow had no limit holds no limit row: its later
    tasks count as admitted, not held until their schedule timeout."""

    def define(client: Hatchet, concurrency: ConcurrencyExpression | None) -> Workflow[EmptyModel]:
        wf = client.workflow(name="grown", concurrency=concurrency)

        @wf.task()
        def a(input: EmptyModel, ctx: Context) -> dict[str, int]:
            return {"a": 1}

        # Gated: a gate that opens queues the task through the check that its run was
        # admitted by the workflow's limit.
        @wf.task(parents=[a], wait_for=[SleepCondition(timedelta(0))])
        def b(input: EmptyModel, ctx: Context) -> dict[str, int]:
            return {"b": 1}

        return wf

    old = Hatchet(db=db_path, auto_worker=False)
    try:
        run_id = (await define(old, None).aio_run_no_wait()).workflow_run_id
    finally:
        old.close()

    new = Hatchet(db=db_path)
    try:
        wf = define(new, limit("'k'", 10))
        result = await asyncio.wait_for(wf.aio_get_result(run_id), 3)
        assert result == {"a": {"a": 1}, "b": {"b": 1}}
        # A run triggered now enters the limit as usual.
        assert await asyncio.wait_for(wf.aio_run(), 3) == {"a": {"a": 1}, "b": {"b": 1}}
        assert slots(db_path) == []
    finally:
        new.close()
    assert STEP_FAILED not in caplog.text


async def test_replay_of_a_run_whose_failed_task_a_redeploy_removed_fails_it_at_once(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The replayed run does not re-enter its workflow's limit and hold the key for
    ever: its vanished task fails at once, with the reason."""

    def define(client: Hatchet, failing: str) -> Workflow[EmptyModel]:
        wf = client.workflow(name="renamed", concurrency=limit("'k'", 1))

        @wf.task()
        def a(input: EmptyModel, ctx: Context) -> dict[str, int]:
            return {"a": 1}

        def later(input: EmptyModel, ctx: Context) -> dict[str, int]:
            if failing == "b":
                raise RuntimeError("b fails")
            return {"c": 1}

        later.__name__ = later.__qualname__ = failing
        wf.task(parents=[a])(later)
        return wf

    old = Hatchet(db=db_path)
    try:
        ref = await define(old, "b").aio_run_no_wait()
        with pytest.raises(FailedTaskRunExceptionGroup):
            await asyncio.wait_for(ref.aio_result(), 3)
    finally:
        old.close()

    new = Hatchet(db=db_path)
    try:
        wf = define(new, "c")  # `b` was renamed `c`
        assert await asyncio.wait_for(wf.aio_run(), 3) == {"a": {"a": 1}, "c": {"c": 1}}
        with caplog.at_level(logging.WARNING, logger="hatchlite"):
            await new.runs.aio_replay(ref.workflow_run_id)
        # The key is free: the next run of the workflow goes through.
        assert await asyncio.wait_for(wf.aio_run(), 3) == {"a": {"a": 1}, "c": {"c": 1}}
        assert run_status(db_path, ref.workflow_run_id) == "FAILED"
        assert slots(db_path) == []
        # The run keeps its own shape: `b` runs again, no process has its code any more,
        # and it fails saying so (rather than the run waiting for ever).
        [(error,)] = query(
            db_path,
            "SELECT error FROM task_runs WHERE workflow_run_id = ? AND task_name = 'b'",
            (ref.workflow_run_id,),
        )
        assert "task 'b' is not in the registered definition" in str(error), error
        assert "no running worker serves it" in str(error)
    finally:
        new.close()


async def test_waiters_expiring_after_a_redeploy_added_a_task_limit_do_not_stop_the_engine(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three runs wait under a workflow-level limit while no worker runs; the new
    definition adds a task-level limit, and starts after their schedule timeouts. The
    holder expires and admits a waiter (whose keys do not fit the new limit) inside the
    expiry: every run ends CANCELLED and the engine serves other runs."""
    clock = TestClock(START)
    run_ids = await trigger_before_redeploy(
        db_path, 3, clock, workflow_limit=True, task_limit=False
    )
    clock.advance(timedelta(minutes=10))  # past the 5 minute schedule timeout

    new = Hatchet(db=db_path, clock=clock)
    try:
        serial_workflow(new, workflow_limit=True, task_limit=True)
        assert await asyncio.wait_for(noop_task(new).aio_run(), 3) == {"ok": True}
        await wait_until(lambda: all(run_status(db_path, r) == "CANCELLED" for r in run_ids))
        assert slots(db_path) == []
    finally:
        new.close()
    assert STEP_FAILED not in caplog.text


# -- 4. running tasks a limit cancels outside the engine's step are stopped -----------


class Keyed(BaseModel):
    name: str
    g: str = ""
    h: str = ""
    hold: bool = True


async def test_a_user_cancel_admitting_a_waiter_stops_the_run_its_limit_cancels(
    hatchet: Hatchet, db_path: str, gates: Gates
) -> None:
    """Two limits: one run per `g` (round robin), one per `h` (CANCEL_IN_PROGRESS). X
    and Z run; Y waits behind X. Cancelling X admits Y, which cancels Z in the same
    transaction: Z's body must be stopped, not run on beside Y."""
    wf = hatchet.workflow(
        name="two_keys",
        input_validator=Keyed,
        concurrency=[limit("input.g", 1), limit("input.h", 1, CANCEL_IN_PROGRESS)],
    )

    @wf.task()
    async def work(input: Keyed, ctx: Context) -> dict[str, str]:
        await gates.wait(input.name)
        return {"ran": input.name}

    x = (await wf.aio_run_no_wait(Keyed(name="x", g="1", h="A"))).workflow_run_id
    z = (await wf.aio_run_no_wait(Keyed(name="z", g="2", h="B"))).workflow_run_id
    await wait_until(lambda: gates.has_started("x", "z"))
    y = (await wf.aio_run_no_wait(Keyed(name="y", g="1", h="B"))).workflow_run_id
    assert run_status(db_path, y) == "QUEUED"

    await hatchet.runs.aio_cancel(x)
    assert run_status(db_path, z) == "CANCELLED"  # by Y's limit, in the cancel's transaction
    await wait_until(lambda: gates.was_cancelled("x") and gates.was_cancelled("z"))
    await wait_until(lambda: gates.has_started("y"))
    gates.open("y")
    await wait_until(lambda: run_status(db_path, y) == "COMPLETED")
    assert not gates.was_cancelled("y")
    assert slots(db_path) == []


async def test_a_replay_that_cancels_a_running_holder_stops_its_body(
    hatchet: Hatchet, db_path: str, gates: Gates
) -> None:
    """Replaying a run of a CANCEL_IN_PROGRESS workflow makes it the newest: the running
    holder is cancelled in the replay's transaction, and its body is stopped."""
    wf = hatchet.workflow(
        name="newest_wins", input_validator=Keyed, concurrency=limit("'k'", 1, CANCEL_IN_PROGRESS)
    )

    @wf.task()
    async def work(input: Keyed, ctx: Context) -> dict[str, str]:
        if input.hold:
            await gates.wait(input.name)
        return {"ran": input.name}

    first = await wf.aio_run_no_wait(Keyed(name="a", hold=False))
    assert await asyncio.wait_for(first.aio_result(), 3) == {"work": {"ran": "a"}}
    holder = (await wf.aio_run_no_wait(Keyed(name="b"))).workflow_run_id
    await wait_until(lambda: gates.has_started("b"))

    await hatchet.runs.aio_replay(first.workflow_run_id)
    assert run_status(db_path, holder) == "CANCELLED"
    await wait_until(lambda: gates.was_cancelled("b"))
    await wait_until(lambda: run_status(db_path, first.workflow_run_id) == "COMPLETED")
    assert slots(db_path) == []


# -- 5. an event whose one listener's rate limit fails ---------------------------------


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        pytest.param({"order": 1}, "no such member", id="dynamic-key-missing"),
        pytest.param(
            {"order": 1, "customer": "c1", "cost": 5}, "takes 5 units", id="units-over-limit"
        ),
    ],
)
async def test_an_event_starts_the_other_listeners_when_one_rate_limit_fails(
    hatchet: Hatchet,
    db_path: str,
    payload: dict[str, object],
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The push is kept and starts `audit`; only `billing`, whose rate limit cannot be
    used on this payload, is left out (logged)."""

    @hatchet.task(
        name="billing",
        on_events=["order:created"],
        rate_limits=[
            RateLimit(
                dynamic_key="input.customer",
                units="has(input.cost) ? input.cost : 1",
                limit=2,
                duration=RateLimitDuration.MINUTE,
            )
        ],
    )
    def billing(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"billed": True}

    @hatchet.task(name="audit", on_events=["order:created"])
    def audit(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"audited": True}

    def runs_of(name: str) -> list[str]:
        rows = query(db_path, "SELECT status FROM workflow_runs WHERE workflow_name = ?", (name,))
        return [str(status) for (status,) in rows]

    with caplog.at_level(logging.WARNING, logger="hatchlite"):
        event = await hatchet.event.aio_push("order:created", payload)
    assert query(db_path, "SELECT id FROM events") == [(event.event_id,)]
    await wait_until(lambda: runs_of("audit") == ["COMPLETED"])
    assert runs_of("billing") == []
    assert "starts no run of workflow 'billing'" in caplog.text and why in caplog.text

    # A payload both can use starts both.
    await hatchet.event.aio_push("order:created", {"order": 2, "customer": "c1"})
    await wait_until(lambda: runs_of("billing") == ["COMPLETED"])
    await wait_until(lambda: runs_of("audit") == ["COMPLETED", "COMPLETED"])
    assert STEP_FAILED not in caplog.text


# -- 6. routing leaves a task only to a worker that could take it ----------------------


@pytest.fixture
def client(db_path: str) -> Iterator[Hatchet]:
    """A client without the implicit worker: only the workers a test starts execute."""
    hatchet = Hatchet(db=db_path, auto_worker=False)
    yield hatchet
    hatchet.close()


ON_A = {"role": DesiredWorkerLabel(value="a", required=True)}
NEEDS_GPU = {"gpu": DesiredWorkerLabel(value="yes", required=True)}


async def test_a_soft_sticky_task_needing_a_label_its_worker_lacks_goes_to_one_that_has_it(
    client: Hatchet,
) -> None:
    """The run keeps softly to worker `a` (it took `first`); `second` requires a label
    `a` lacks: `a` refuses it, so `gpu` must not leave it to `a`."""
    wf = client.workflow(name="sticky_gpu", sticky=StickyStrategy.SOFT)

    @wf.task(desired_worker_labels=ON_A)
    async def first(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": ctx.worker_id}

    @wf.task(parents=[first], desired_worker_labels=NEEDS_GPU)
    async def second(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": ctx.worker_id}

    a = routing_worker(client, "a", [wf], labels={"role": "a"})
    gpu = routing_worker(client, "gpu", [wf], labels={"gpu": "yes"})
    async with serving(a, gpu):
        result = await asyncio.wait_for(wf.aio_run(), 3)
    assert (result["first"]["worker"], result["second"]["worker"]) == (a.id, gpu.id)


async def test_a_desired_worker_lacking_a_required_label_does_not_strand_the_task(
    client: Hatchet,
) -> None:
    """The trigger prefers worker `a`, which lacks the label the task requires: `a`
    refuses it, so `gpu` must take it rather than leave it to `a`."""

    @client.task(name="gpu_job", desired_worker_labels=NEEDS_GPU)
    async def gpu_job(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": ctx.worker_id}

    a = routing_worker(client, "a", [gpu_job], labels={"role": "a"})
    gpu = routing_worker(client, "gpu", [gpu_job], labels={"gpu": "yes"})
    async with serving(a, gpu):
        assert a.id is not None
        result = await asyncio.wait_for(gpu_job.aio_run(desired_worker_id=a.id), 3)
    assert result == {"worker": gpu.id}


async def test_a_preferred_worker_without_room_for_the_slot_cost_does_not_strand_the_task(
    client: Hatchet,
) -> None:
    """`fast` scores higher and has a free slot, but `big` takes two: `slow` must take
    it, not leave it to `fast`."""

    @client.task(
        name="big",
        slot_cost=2,
        desired_worker_labels={"fast": DesiredWorkerLabel(value="yes", required=False, weight=10)},
    )
    async def big(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": ctx.worker_id}

    fast = routing_worker(client, "fast", [big], labels={"fast": "yes"}, slots=1)
    slow = routing_worker(client, "slow", [big], slots=10)
    async with serving(fast, slow):
        result = await asyncio.wait_for(big.aio_run(), 3)
    assert result == {"worker": slow.id}


async def test_a_soft_sticky_run_of_the_implicit_worker_moves_on_once_a_worker_starts(
    hatchet: Hatchet, db_path: str, gates: Gates
) -> None:
    """The implicit worker took `first` of a sticky run; a worker starts, and the
    implicit worker takes nothing more: it shows as draining, so `second` is not left
    to it."""
    wf = hatchet.workflow(name="implicit_sticky", sticky=StickyStrategy.SOFT)

    @wf.task()
    async def first(input: EmptyModel, ctx: Context) -> dict[str, str]:
        await gates.wait("first")
        return {"worker": ctx.worker_id}

    @wf.task(parents=[first])
    async def second(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": ctx.worker_id}

    ref = await wf.aio_run_no_wait()
    await wait_until(lambda: gates.has_started("first"))
    main = routing_worker(hatchet, "main", [wf])
    async with serving(main):
        gates.open("first")
        result = await asyncio.wait_for(ref.aio_result(), 3)
        implicit = query(db_path, "SELECT status FROM workers WHERE name = 'hatchlite-implicit'")
    assert result["second"]["worker"] == main.id
    assert result["first"]["worker"] != main.id
    assert implicit == [("PAUSED",)]  # shown as draining


# -- 7. a rate limit lowered below a queued task's units --------------------------------


async def test_a_rate_limit_lowered_below_a_queued_tasks_units_fails_the_task(
    client: Hatchet, db_path: str
) -> None:
    """`call` takes 3 units of `api`; `api` is lowered to 2 while it is queued. When a
    worker would claim it, it fails saying why (rather than wait, parked, until its
    schedule timeout). Its sibling root, offered in the same claim, is cancelled with
    the run and never started."""
    await client.rate_limits.aio_put("api", 5, RateLimitDuration.SECOND)
    wf = client.workflow(name="lowered")
    ran: list[str] = []

    @wf.task(rate_limits=[RateLimit(static_key="api", units=3)])
    def call(input: EmptyModel, ctx: Context) -> None:
        ran.append("call")

    @wf.task()
    def sibling(input: EmptyModel, ctx: Context) -> None:
        ran.append("sibling")

    ref = await wf.aio_run_no_wait()
    await client.rate_limits.aio_put("api", 2, RateLimitDuration.SECOND)  # an operator
    # Watching before the claim that fails the run: the step reports it, the waiter wakes.
    waiter = asyncio.ensure_future(ref.aio_result())
    async with serving(routing_worker(client, "w", [wf])):
        with pytest.raises(FailedTaskRunExceptionGroup) as failed:
            await asyncio.wait_for(waiter, 3)
    [error] = failed.value.exceptions
    assert "take more units than a limit now allows" in error.exc and "'api'" in error.exc
    assert task_statuses(db_path, ref.workflow_run_id) == {
        "call": "FAILED",
        "sibling": "CANCELLED",
    }
    assert ran == []
    [row] = await client.rate_limits.aio_list()
    assert (row.limit_value, row.value) == (2, 2)  # nothing was taken


# -- 8. no gate is opened for a cancelled task ------------------------------------------


def open_conditions(db: str, run_id: str) -> list[tuple[str, str]]:
    """(task, event key) of the OPEN gate conditions of a run's tasks."""
    rows = query(
        db,
        """SELECT t.task_name, c.event_key FROM durable_conditions c
           JOIN task_runs t ON t.id = c.task_run_id
           WHERE t.workflow_run_id = ? AND c.node_id = 0 AND c.status = 'OPEN'""",
        (run_id,),
    )
    return [(str(task), str(key)) for task, key in rows]


async def test_a_run_cancel_newest_refuses_opens_no_gate_for_its_tasks(
    hatchet: Hatchet, db_path: str
) -> None:
    """CANCEL_NEWEST cancels the second run inside its trigger, before its gated root
    would wait: that task is CANCELLED and has no open conditions left behind."""
    wf = hatchet.workflow(name="one_at_a_time", concurrency=limit("'k'", 1, CANCEL_NEWEST))

    @wf.task(wait_for=[UserEventCondition(event_key="go")])
    def gated(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"gated": True}

    @wf.task()
    def other(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"other": True}

    kept = await wf.aio_run_no_wait()
    refused = (await wf.aio_run_no_wait()).workflow_run_id
    assert run_status(db_path, refused) == "CANCELLED"
    assert task_statuses(db_path, refused) == {"gated": "CANCELLED", "other": "CANCELLED"}
    assert open_conditions(db_path, refused) == []
    assert open_conditions(db_path, kept.workflow_run_id) == [("gated", "go")]

    await hatchet.event.aio_push("go", {})
    result = await asyncio.wait_for(kept.aio_result(), 3)
    assert result == {"gated": {"gated": True}, "other": {"other": True}}
    assert run_status(db_path, refused) == "CANCELLED"
