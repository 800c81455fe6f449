"""Priority, as Hatchet's engine applies it: among the queued runs of one workflow the
highest priority starts first, oldest first within a priority; priority given per run
(`run`, `run_no_wait`, `run_many` and their options), by a workflow's or standalone's
`default_priority`, and by events. Across workflows priority does not apply: each
workflow's queue is read in priority order, and the queues are interleaved by the age
of their heads (the `claim_txn` docstring), so a flood of high-priority runs of one
workflow does not starve another's older run. Bad priorities raise at trigger.

Order is observed on a worker with one slot, started after all the runs are queued, so
every run waits and each claim takes exactly one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    BaseWorkflow,
    BulkPushEventWithMetadata,
    Context,
    EmptyModel,
    Hatchet,
    Priority,
    PushEventOptions,
    TriggerWorkflowOptions,
    Workflow,
    WorkflowRunTriggerConfig,
)
from hatchlite.testing import TestClock
from tests.conftest import query, wait_until

pytestmark = pytest.mark.timeout(20)

START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
LOW, MEDIUM, HIGH = Priority.LOW, Priority.MEDIUM, Priority.HIGH


class Item(BaseModel):
    n: int


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "priority.db")


@pytest.fixture
def client(db: str) -> Iterator[Hatchet]:
    """A client that runs nothing until a test starts a worker."""
    hatchet = Hatchet(db=db, clock=TestClock(START), auto_worker=False)
    yield hatchet
    hatchet.close()


def queued(db: str, workflow: str) -> int:
    rows = query(db, "SELECT count(*) FROM workflow_runs WHERE workflow_name = ?", (workflow,))
    return int(str(rows[0][0]))


async def opened(client: Hatchet) -> None:
    """Make sure the database exists, so that counting its rows means something."""
    await client.rate_limits.aio_list()


def count(db: str, table: str) -> int:
    return int(str(query(db, f"SELECT count(*) FROM {table}")[0][0]))


@asynccontextmanager
async def one_slot(client: Hatchet, workflows: list[BaseWorkflow[Any]]) -> AsyncIterator[None]:
    """Serve `workflows` on a single slot while the block runs."""
    worker = client.worker("one-slot", slots=1, workflows=workflows)
    serving = asyncio.ensure_future(worker.aio_start())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 10)


class Recorder:
    """The (n, ctx.priority) of each run of a workflow, in the order they started."""

    def __init__(self) -> None:
        self.order: dict[str, list[tuple[int, int]]] = {}

    def record(self, workflow: str, input: Item, ctx: Context) -> dict[str, int]:
        self.order.setdefault(workflow, []).append((input.n, ctx.priority))
        return {"n": input.n}

    def of(self, workflow: str) -> list[tuple[int, int]]:
        return self.order.get(workflow, [])

    def total(self) -> int:
        return sum(len(v) for v in self.order.values())


# -- 1. within a workflow --------------------------------------------------------------


async def test_runs_start_highest_priority_first_and_in_order_within_a_priority(
    client: Hatchet, db: str
) -> None:
    seen = Recorder()
    wf = client.workflow(name="ranked", input_validator=Item)

    @wf.task()
    def rank(input: Item, ctx: Context) -> dict[str, int]:
        return seen.record("ranked", input, ctx)

    refs = [await wf.aio_run_no_wait(Item(n=0))]  # the default: LOW
    refs.append(wf.run_no_wait(Item(n=1), priority=HIGH))
    refs.append(
        await wf.aio_run_no_wait(Item(n=2), options=TriggerWorkflowOptions(priority=MEDIUM))
    )
    refs += await wf.aio_run_many_no_wait(
        [
            wf.create_bulk_run_item(Item(n=3), priority=HIGH),
            wf.create_bulk_run_item(Item(n=4), options=TriggerWorkflowOptions(priority=LOW)),
            WorkflowRunTriggerConfig(
                workflow_name=wf.name,
                input=json.dumps({"n": 5}),
                options=TriggerWorkflowOptions(priority=MEDIUM),
            ),
        ]
    )
    # The waiting forms, started in the background: each is queued before the next.
    waiting: list[asyncio.Future[Any]] = []
    waiting.append(asyncio.ensure_future(wf.aio_run(Item(n=6), priority=MEDIUM)))
    await wait_until(lambda: queued(db, "ranked") == 7)
    bulk = [wf.create_bulk_run_item(Item(n=7), priority=HIGH)]
    waiting.append(asyncio.ensure_future(wf.aio_run_many(bulk)))
    await wait_until(lambda: queued(db, "ranked") == 8)
    waiting.append(asyncio.ensure_future(asyncio.to_thread(wf.run, Item(n=8), priority=LOW)))
    await wait_until(lambda: queued(db, "ranked") == 9)
    sync_bulk = [wf.create_bulk_run_item(Item(n=9), priority=MEDIUM)]
    waiting.append(asyncio.ensure_future(asyncio.to_thread(wf.run_many, sync_bulk)))
    await wait_until(lambda: queued(db, "ranked") == 10)

    async with one_slot(client, [wf]):
        results = await asyncio.wait_for(asyncio.gather(*waiting), 5)
        for n, ref in enumerate(refs):
            assert (await asyncio.wait_for(ref.aio_result(), 5))["rank"] == {"n": n}

    assert seen.of("ranked") == [
        (1, HIGH),
        (3, HIGH),
        (7, HIGH),
        (2, MEDIUM),
        (5, MEDIUM),
        (6, MEDIUM),
        (9, MEDIUM),
        (0, LOW),
        (4, LOW),
        (8, LOW),
    ]
    assert results[0]["rank"] == {"n": 6} and results[1][0]["rank"] == {"n": 7}
    assert results[2]["rank"] == {"n": 8} and results[3][0]["rank"] == {"n": 9}
    stored = query(
        db,
        "SELECT json_extract(input, '$.n'), priority FROM workflow_runs ORDER BY seq",
    )
    assert stored == [
        (0, 1),
        (1, 3),
        (2, 2),
        (3, 3),
        (4, 1),
        (5, 2),
        (6, 2),
        (7, 3),
        (8, 1),
        (9, 2),
    ]


async def test_default_priority_of_a_workflow_and_of_a_standalone(client: Hatchet, db: str) -> None:
    seen = Recorder()
    wf = client.workflow(name="medium_by_default", input_validator=Item, default_priority=MEDIUM)

    @wf.task()
    def step(input: Item, ctx: Context) -> dict[str, int]:
        return seen.record("wf", input, ctx)

    @client.task(name="high_by_default", input_validator=Item, default_priority=HIGH)
    def solo(input: Item, ctx: Context) -> dict[str, int]:
        return seen.record("solo", input, ctx)

    for n, priority in enumerate([None, LOW, HIGH, None]):
        await wf.aio_run_no_wait(Item(n=n), priority=priority)
    for n, priority in enumerate([None, LOW, MEDIUM, None]):
        await solo.aio_run_no_wait(Item(n=n), priority=priority)

    async with one_slot(client, [wf, solo]):
        await wait_until(lambda: seen.total() == 8)

    assert seen.of("wf") == [(2, HIGH), (0, MEDIUM), (3, MEDIUM), (1, LOW)]
    assert seen.of("solo") == [(0, HIGH), (3, HIGH), (2, MEDIUM), (1, LOW)]


async def test_events_give_the_runs_they_start_their_priority(client: Hatchet, db: str) -> None:
    seen = Recorder()
    listener = client.workflow(name="on_ping", on_events=["prio:ping"], input_validator=Item)

    @listener.task()
    def heard(input: Item, ctx: Context) -> dict[str, int]:
        return seen.record("on_ping", input, ctx)

    await client.event.aio_push("prio:ping", {"n": 0})  # the workflow's default: LOW
    client.event.push("prio:ping", {"n": 1}, priority=HIGH)
    await client.event.aio_push("prio:ping", {"n": 2}, options=PushEventOptions(priority=MEDIUM))
    # The argument beats the options.
    await client.event.aio_push(
        "prio:ping", {"n": 3}, options=PushEventOptions(priority=LOW), priority=HIGH
    )
    await client.event.aio_bulk_push(
        [
            BulkPushEventWithMetadata(key="prio:ping", payload={"n": 4}, priority=HIGH),
            BulkPushEventWithMetadata(key="prio:ping", payload={"n": 5}),
        ]
    )
    assert queued(db, "on_ping") == 6  # a push is settled when it returns

    async with one_slot(client, [listener]):
        await wait_until(lambda: seen.total() == 6)

    assert seen.of("on_ping") == [
        (1, HIGH),
        (3, HIGH),
        (4, HIGH),
        (2, MEDIUM),
        (0, LOW),
        (5, LOW),
    ]


# -- 2. across workflows ---------------------------------------------------------------


def two_workflows(client: Hatchet, seen: Recorder) -> tuple[Workflow[Item], Workflow[Item]]:
    flood = client.workflow(name="flood", input_validator=Item)
    trickle = client.workflow(name="trickle", input_validator=Item)

    @flood.task()
    def a(input: Item, ctx: Context) -> dict[str, int]:
        return seen.record("order", input, ctx)

    @trickle.task()
    def b(input: Item, ctx: Context) -> dict[str, int]:
        return seen.record("order", Item(n=100 + input.n), ctx)

    return flood, trickle


async def test_a_flood_of_high_priority_runs_does_not_starve_another_workflow(
    client: Hatchet, db: str
) -> None:
    """Workflow `flood` has ten HIGH runs queued, `trickle` one LOW run queued after two
    of them: the LOW run starts right after those two, not after all ten; priority
    orders only the runs of one workflow."""
    seen = Recorder()
    flood, trickle = two_workflows(client, seen)
    for n in range(2):
        await flood.aio_run_no_wait(Item(n=n), priority=HIGH)
    await trickle.aio_run_no_wait(Item(n=0), priority=LOW)
    for n in range(2, 10):
        await flood.aio_run_no_wait(Item(n=n), priority=HIGH)
    await trickle.aio_run_no_wait(Item(n=1), priority=LOW)

    async with one_slot(client, [flood, trickle]):
        await wait_until(lambda: seen.total() == 12)

    assert [n for n, _ in seen.of("order")] == [0, 1, 100, *range(2, 10), 101]


async def test_workflows_take_turns_by_the_age_of_their_next_run(client: Hatchet, db: str) -> None:
    """Each workflow's next run is its highest-priority one; the oldest of those goes
    first. `flood`'s oldest run is LOW, so its next run is a HIGH one queued after
    `trickle`'s run, which therefore goes before both."""
    seen = Recorder()
    flood, trickle = two_workflows(client, seen)
    await flood.aio_run_no_wait(Item(n=0), priority=LOW)
    await trickle.aio_run_no_wait(Item(n=0), priority=LOW)
    for n in range(1, 4):
        await flood.aio_run_no_wait(Item(n=n), priority=HIGH)

    async with one_slot(client, [flood, trickle]):
        await wait_until(lambda: seen.total() == 5)

    assert [n for n, _ in seen.of("order")] == [100, 1, 2, 3, 0]


# -- 3. bad priorities -----------------------------------------------------------------

BAD: list[Any] = [0, 4, -1, "high", 2.5, True]


@pytest.mark.parametrize("bad", BAD, ids=repr)
async def test_bad_priorities_raise_at_trigger(client: Hatchet, db: str, bad: Any) -> None:
    wf = client.workflow(name="strict", input_validator=Item, on_events=["strict:go"])

    @wf.task()
    def t(input: Item, ctx: Context) -> None:
        return None

    await opened(client)
    with pytest.raises(ValueError, match="priority"):
        wf.run_no_wait(Item(n=0), priority=bad)
    with pytest.raises(ValueError, match="priority"):
        await wf.aio_run_no_wait(Item(n=0), priority=bad)
    with pytest.raises(ValueError, match="priority"):
        wf.create_bulk_run_item(Item(n=0), priority=bad)
    with pytest.raises(ValueError, match="priority"):
        client.event.push("strict:go", {"n": 0}, priority=bad)
    if bad is not True:  # options are pydantic models: True is read as 1 there
        with pytest.raises(ValueError, match="priority"):
            await client.event.aio_bulk_push(
                [BulkPushEventWithMetadata(key="strict:go", payload={"n": 0}, priority=bad)]
            )
        with pytest.raises(ValueError, match="priority"):
            await wf.aio_run_no_wait(Item(n=0), options=TriggerWorkflowOptions(priority=bad))
        with pytest.raises(ValueError, match="priority"):
            await client.event.aio_push(
                "strict:go", {"n": 0}, options=PushEventOptions(priority=bad)
            )
    assert count(db, "workflow_runs") == 0
    assert count(db, "events") == 0


@pytest.mark.parametrize("bad", [0, 7], ids=repr)
async def test_a_bad_priority_in_a_trigger_config_raises(
    client: Hatchet, db: str, bad: int
) -> None:
    await opened(client)

    @client.task(name="configured", input_validator=Item)
    def configured(input: Item, ctx: Context) -> None:
        return None

    config = WorkflowRunTriggerConfig(
        workflow_name=configured.name,
        input=json.dumps({"n": 0}),
        options=TriggerWorkflowOptions(priority=bad),
    )
    with pytest.raises(ValueError, match="priority"):
        await configured.aio_run_many_no_wait([config])
    assert count(db, "workflow_runs") == 0


@pytest.mark.parametrize("bad", [0, 5], ids=repr)
async def test_a_bad_default_priority_raises(client: Hatchet, db: str, bad: int) -> None:
    await opened(client)
    with pytest.raises(ValueError, match="priority"):
        wf = client.workflow(name="bad_default", default_priority=bad)

        @wf.task()
        def t(input: EmptyModel, ctx: Context) -> None:
            return None

        await wf.aio_run_no_wait()
    with pytest.raises(ValueError, match="priority"):

        @client.task(name="bad_default_solo", default_priority=bad)
        def solo(input: EmptyModel, ctx: Context) -> None:
            return None

        await solo.aio_run_no_wait()
    assert count(db, "workflow_runs") == 0
