"""Batch tasks: each trigger is a member, buffered until its batch flushes (by size, by
interval, per group key); the handler is called once per batch and each member
completes with its own output, or fails alone.

This file is also the worker process of the SIGKILL test:
`python -m tests.test_batch_tasks DB` serves the `survivor` batch task on DB.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NewType

import pytest
from pydantic import BaseModel, ConfigDict

import hatchlite
from hatchlite import Context, FailedTaskRunExceptionGroup, Hatchet, V1TaskStatus
from hatchlite.models import V1TaskEventType
from hatchlite.testing import HatchetTest
from tests.conftest import ROOT, outcome, query, wait_until, wait_until_sync, worker_up
from tests.procs.effects import EFFECTS_ENV, record
from tests.procs.effects import read as read_effects

try:
    from hatchlite import BatchMemberId
except ImportError:  # not built yet: test_batch_member_id_is_exported says so, alone
    BatchMemberId = NewType("BatchMemberId", str)

pytestmark = pytest.mark.timeout(60)

WAITING = V1TaskEventType.WAITING_FOR_BATCH
FLUSHED = V1TaskEventType.BATCH_FLUSHED
FINISHED = V1TaskEventType.FINISHED
QUEUED = V1TaskStatus.QUEUED


class Item(BaseModel):
    n: int


class Order(BaseModel):
    customer: str
    n: int


class Loose(BaseModel):
    """An input whose `customer` may be missing (extra fields are kept)."""

    model_config = ConfigDict(extra="allow")
    n: int


class Doubled(BaseModel):
    n: int
    doubled: int
    batch_size: int


class Total(BaseModel):
    total: int
    size: int


def doubled(inputs: dict[BatchMemberId, Item]) -> dict[BatchMemberId, Doubled]:
    return {m: Doubled(n=i.n, doubled=2 * i.n, batch_size=len(inputs)) for m, i in inputs.items()}


# -- helpers -----------------------------------------------------------------------


def kinds(h: Hatchet, run_id: str) -> list[V1TaskEventType]:
    return [e.event_type for e in h.runs.get(run_id).task_events]


def member_id(h: Hatchet, ref: Any, task: str | None = None) -> str:
    """The member id of a run's batch task: its task run external id."""
    tasks = h.runs.get(ref.workflow_run_id).tasks
    if task is not None:
        tasks = [t for t in tasks if t.display_name.split("-")[0] == task]
    [only] = tasks
    return only.task_external_id


def status(h: Hatchet, ref: Any) -> V1TaskStatus:
    return h.runs.get_status(ref.workflow_run_id)


async def buffered(h: Hatchet, *refs: Any, timeout: float = 5.0) -> None:
    """Wait until each run's member is buffered (has its WAITING_FOR_BATCH event)."""
    await wait_until(lambda: all(WAITING in kinds(h, r.workflow_run_id) for r in refs), timeout)


async def fails(ref: Any, timeout: float = 10.0) -> str:
    """Await a run that must fail; the error's text."""
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await outcome(ref, timeout)
    return str(info.value)


# -- the API surface -----------------------------------------------------------------


def test_batch_member_id_is_exported_as_a_newtype_of_str() -> None:
    from hatchlite import compat

    member = hatchlite.BatchMemberId
    assert member.__supertype__ is str
    assert member("abc") == "abc"
    compat.install()
    try:
        types = importlib.import_module("hatchet_sdk.runnables.types")
        assert types.BatchMemberId is member
    finally:
        compat.uninstall()


def _handler(inputs: dict[BatchMemberId, Item], ctx: Context) -> dict[BatchMemberId, Doubled]:
    return doubled(inputs)


BAD_SETTINGS = [
    pytest.param({"batch_max_size": 0}, id="max_size=0"),
    pytest.param({"batch_max_size": -3}, id="max_size<0"),
    pytest.param({"batch_max_size": 2, "batch_max_interval": timedelta(0)}, id="interval=0"),
    pytest.param(
        {"batch_max_size": 2, "batch_max_interval": timedelta(seconds=-1)}, id="interval<0"
    ),
    pytest.param({"batch_max_size": 2, "batch_group_max_runs": 0}, id="max_runs=0"),
    pytest.param({"batch_max_size": 2, "batch_group_max_runs": -1}, id="max_runs<0"),
    pytest.param({"batch_max_size": 2, "batch_group_key": "input.("}, id="bad-cel"),
    pytest.param({"batch_max_size": 2, "batch_group_key": "input.a +"}, id="bad-cel-2"),
]


@pytest.mark.parametrize("settings", BAD_SETTINGS)
def test_bad_batch_settings_raise_value_error_at_definition(
    hatchet: Hatchet, settings: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        hatchet.batch_task(name="bad", input_validator=Item, **settings)(_handler)
    wf = hatchet.workflow(name="bad-wf", input_validator=Item)
    with pytest.raises(ValueError):
        wf.batch_task(**settings)(_handler)
    # Good settings on the same workflow are accepted (the errors above are the settings').
    wf.batch_task(
        name="good",
        batch_max_size=1,
        batch_max_interval=timedelta(milliseconds=1),
        batch_group_key="input.n",
        batch_group_max_runs=1,
    )(_handler)


# -- flushing ------------------------------------------------------------------------


@pytest.mark.hatchlite(auto_advance=False)
async def test_a_batch_flushes_when_it_reaches_its_max_size(hatchet_test: HatchetTest) -> None:
    h = hatchet_test.client
    calls: list[dict[BatchMemberId, Item]] = []

    @h.batch_task(
        name="by-size",
        batch_max_size=3,
        input_validator=Item,
        schedule_timeout=timedelta(hours=2),
    )
    async def by_size(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Doubled]:
        calls.append(dict(inputs))
        return doubled(inputs)

    refs = [await by_size.aio_run_no_wait(Item(n=n)) for n in (1, 2)]
    await buffered(h, *refs)
    # No interval: time alone never flushes a batch.
    await hatchet_test.aio_advance(timedelta(hours=1))
    assert calls == []
    assert [status(h, r) for r in refs] == [QUEUED, QUEUED]

    refs.append(await by_size.aio_run_no_wait(Item(n=3)))
    results = [await outcome(r, 10) for r in refs]
    assert results == [Doubled(n=n, doubled=2 * n, batch_size=3) for n in (1, 2, 3)]
    [inputs] = calls  # one handler call for the three members
    # Keyed by member id (the member's task run external id), in arrival order.
    assert list(inputs) == [member_id(h, r) for r in refs]
    assert list(inputs.values()) == [Item(n=1), Item(n=2), Item(n=3)]
    assert all(type(v) is Item for v in inputs.values())  # validated inputs


def test_run_many_members_share_a_batch_with_a_sync_handler(hatchet: Hatchet) -> None:
    sizes: list[int] = []

    @hatchet.batch_task(batch_max_size=3, input_validator=Item)  # named after the function
    def many(inputs: dict[BatchMemberId, Item], ctx: Context) -> dict[BatchMemberId, Doubled]:
        sizes.append(len(inputs))
        return doubled(inputs)

    out = many.run_many([many.create_bulk_run_item(Item(n=n)) for n in (4, 5, 6)])
    assert out == [Doubled(n=n, doubled=2 * n, batch_size=3) for n in (4, 5, 6)]
    assert sizes == [3]


def test_max_size_one_flushes_each_run_at_once(hatchet: Hatchet) -> None:
    sizes: list[int] = []

    @hatchet.batch_task(name="single", batch_max_size=1, input_validator=Item)
    def single(inputs: dict[BatchMemberId, Item], ctx: Context) -> dict[BatchMemberId, Doubled]:
        sizes.append(len(inputs))
        return doubled(inputs)

    assert single.run(Item(n=7)) == Doubled(n=7, doubled=14, batch_size=1)
    assert single.run(Item(n=8)) == Doubled(n=8, doubled=16, batch_size=1)
    assert sizes == [1, 1]


@pytest.mark.hatchlite(auto_advance=False)
async def test_a_batch_flushes_when_its_oldest_member_has_waited_the_interval(
    hatchet_test: HatchetTest,
) -> None:
    h = hatchet_test.client
    calls: list[list[BatchMemberId]] = []

    @h.batch_task(
        name="by-interval",
        batch_max_size=10,
        batch_max_interval=timedelta(seconds=1),
        input_validator=Item,
    )
    async def by_interval(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Doubled]:
        calls.append(list(inputs))
        return doubled(inputs)

    first = await by_interval.aio_run_no_wait(Item(n=1))
    await buffered(h, first)
    await hatchet_test.aio_advance(timedelta(milliseconds=600))
    second = await by_interval.aio_run_no_wait(Item(n=2))
    await buffered(h, second)
    await hatchet_test.aio_advance(timedelta(milliseconds=300))  # the oldest: 0.9 s
    assert calls == []
    assert [status(h, r) for r in (first, second)] == [QUEUED, QUEUED]
    await hatchet_test.aio_advance(timedelta(milliseconds=200))  # the oldest: 1.1 s
    assert await outcome(first) == Doubled(n=1, doubled=2, batch_size=2)
    assert await outcome(second) == Doubled(n=2, doubled=4, batch_size=2)
    assert calls == [[member_id(h, first), member_id(h, second)]]


async def test_the_interval_is_a_deadline_the_test_clock_skips_to(
    hatchet_test: HatchetTest,
) -> None:
    h = hatchet_test.client
    flushed_at: list[datetime] = []

    @h.batch_task(
        name="skipped-to",
        batch_max_size=10,
        batch_max_interval=timedelta(minutes=1),
        input_validator=Item,
    )
    async def skipped_to(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Doubled]:
        flushed_at.append(h.clock.now())
        return doubled(inputs)

    start = hatchet_test.clock.now()
    refs = await skipped_to.aio_run_many_no_wait(
        [skipped_to.create_bulk_run_item(Item(n=n)) for n in (1, 2)]
    )
    await hatchet_test.aio_run_until_idle(max_wait=10)
    assert [await outcome(r) for r in refs] == [
        Doubled(n=n, doubled=2 * n, batch_size=2) for n in (1, 2)
    ]
    # The engine clock jumped to the flush: a minute, well before the schedule timeout.
    [flushed] = flushed_at
    assert timedelta(minutes=1) <= flushed - start < timedelta(minutes=5)


# -- group keys --------------------------------------------------------------------


async def test_members_are_batched_per_group_key(hatchet: Hatchet) -> None:
    calls: list[list[tuple[BatchMemberId, str]]] = []

    @hatchet.batch_task(
        name="per-key", batch_max_size=2, batch_group_key="input.customer", input_validator=Order
    )
    def per_key(inputs: dict[BatchMemberId, Order], ctx: Context) -> dict[BatchMemberId, Total]:
        calls.append([(m, o.customer) for m, o in inputs.items()])
        total = sum(o.n for o in inputs.values())
        return {m: Total(total=total, size=len(inputs)) for m in inputs}

    a1 = await per_key.aio_run_no_wait(Order(customer="acme", n=1))
    b1 = await per_key.aio_run_no_wait(Order(customer="globex", n=10))
    await buffered(hatchet, a1, b1)
    assert calls == []  # two members, but of two keys: neither batch is full
    a2 = await per_key.aio_run_no_wait(Order(customer="acme", n=2))
    assert await outcome(a1) == await outcome(a2) == Total(total=3, size=2)
    assert calls == [[(member_id(hatchet, a1), "acme"), (member_id(hatchet, a2), "acme")]]
    assert status(hatchet, b1) == QUEUED  # globex still has one member
    b2 = await per_key.aio_run_no_wait(Order(customer="globex", n=20))
    assert await outcome(b1) == await outcome(b2) == Total(total=30, size=2)
    assert calls[1] == [(member_id(hatchet, b1), "globex"), (member_id(hatchet, b2), "globex")]
    assert len(calls) == 2


async def test_group_key_can_read_additional_metadata(hatchet: Hatchet) -> None:
    calls: list[list[int]] = []

    @hatchet.batch_task(
        name="per-tenant",
        batch_max_size=2,
        batch_group_key="additional_metadata.tenant",
        input_validator=Item,
    )
    def per_tenant(inputs: dict[BatchMemberId, Item], ctx: Context) -> dict[BatchMemberId, Total]:
        calls.append([i.n for i in inputs.values()])
        return {m: Total(total=sum(i.n for i in inputs.values()), size=len(inputs)) for m in inputs}

    tenants = ["t1", "t2", "t1", "t2"]
    refs = [
        await per_tenant.aio_run_no_wait(Item(n=n), additional_metadata={"tenant": t})
        for n, t in zip((1, 10, 2, 20), tenants, strict=True)
    ]
    results = [await outcome(r) for r in refs]
    assert results == [Total(total=3, size=2), Total(total=30, size=2)] * 2
    assert sorted(calls) == [[1, 2], [10, 20]]


async def test_group_max_runs_keeps_batches_of_one_key_from_overlapping(hatchet: Hatchet) -> None:
    gate = threading.Event()
    log: list[tuple[str, str]] = []

    @hatchet.batch_task(
        name="one-at-a-time",
        batch_max_size=2,
        batch_group_key="input.customer",
        batch_group_max_runs=1,
        input_validator=Order,
    )
    async def one_at_a_time(
        inputs: dict[BatchMemberId, Order], ctx: Context
    ) -> dict[BatchMemberId, Total]:
        [customer] = {o.customer for o in inputs.values()}  # a batch never mixes keys
        log.append(("start", customer))
        while not gate.is_set():
            await asyncio.sleep(0.005)
        log.append(("end", customer))
        return {m: Total(total=o.n, size=len(inputs)) for m, o in inputs.items()}

    acme = [await one_at_a_time.aio_run_no_wait(Order(customer="acme", n=n)) for n in range(4)]
    globex = [await one_at_a_time.aio_run_no_wait(Order(customer="globex", n=n)) for n in range(2)]
    try:
        # Another key is not held back: its batch, full after both of acme's, starts
        # while acme's first batch is still running; acme's second one does not.
        await wait_until(lambda: {("start", "acme"), ("start", "globex")} <= set(log), 10)
        assert log.count(("start", "acme")) == 1
    finally:
        gate.set()
    results = [await outcome(r, 10) for r in acme + globex]
    assert results == [Total(total=n, size=2) for n in (0, 1, 2, 3, 0, 1)]
    assert [e for e in log if e[1] == "acme"] == [("start", "acme"), ("end", "acme")] * 2


# -- output and failures ---------------------------------------------------------------


async def test_broadcast_output_gives_every_member_the_one_output(hatchet: Hatchet) -> None:
    @hatchet.batch_task(
        name="broadcast", batch_max_size=3, broadcast_output=True, input_validator=Item
    )
    async def broadcast(inputs: dict[BatchMemberId, Item], ctx: Context) -> Total:
        return Total(total=sum(i.n for i in inputs.values()), size=len(inputs))

    async def one(n: int) -> Total:
        return await asyncio.wait_for(broadcast.aio_run(Item(n=n)), 10)

    results = await asyncio.gather(one(1), one(2), one(3))
    assert results == [Total(total=6, size=3)] * 3


async def test_a_raising_handler_fails_every_member_of_its_batch(hatchet: Hatchet) -> None:
    calls: list[int] = []

    @hatchet.batch_task(name="explodes", batch_max_size=2, input_validator=Item)
    async def explodes(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Total]:
        calls.append(len(inputs))
        raise RuntimeError(f"boom for {len(inputs)}")

    refs = [await explodes.aio_run_no_wait(Item(n=n)) for n in (1, 2)]
    for ref in refs:
        assert "boom for 2" in await fails(ref)
        assert status(hatchet, ref) == V1TaskStatus.FAILED
    assert calls == [2]  # no retries: one call


async def test_a_failed_batch_is_retried_per_member(hatchet: Hatchet) -> None:
    calls: list[list[BatchMemberId]] = []

    @hatchet.batch_task(name="flaky", batch_max_size=2, retries=1, input_validator=Item)
    async def flaky(inputs: dict[BatchMemberId, Item], ctx: Context) -> dict[BatchMemberId, Total]:
        calls.append(list(inputs))
        if len(calls) == 1:
            raise ConnectionError("upstream is down")
        return {m: Total(total=i.n, size=len(inputs)) for m, i in inputs.items()}

    refs = [await flaky.aio_run_no_wait(Item(n=n)) for n in (1, 2)]
    assert [await outcome(r, 10) for r in refs] == [Total(total=1, size=2), Total(total=2, size=2)]
    assert len(calls) == 2
    assert set(calls[0]) == set(calls[1]) == {member_id(hatchet, r) for r in refs}


async def test_a_member_missing_from_the_output_fails_alone(hatchet: Hatchet) -> None:
    @hatchet.batch_task(name="forgetful", batch_max_size=3, input_validator=Item)
    async def forgetful(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Total]:
        return {m: Total(total=i.n, size=len(inputs)) for m, i in inputs.items() if i.n != 2}

    refs = [await forgetful.aio_run_no_wait(Item(n=n)) for n in (1, 2, 3)]
    assert await outcome(refs[0], 10) == Total(total=1, size=3)
    assert await outcome(refs[2], 10) == Total(total=3, size=3)
    error = await fails(refs[1])
    assert member_id(hatchet, refs[1]) in error  # the error names the missing member
    assert [status(hatchet, r) for r in refs] == [
        V1TaskStatus.COMPLETED,
        V1TaskStatus.FAILED,
        V1TaskStatus.COMPLETED,
    ]


async def test_a_member_whose_group_key_fails_fails_alone(hatchet: Hatchet) -> None:
    seen: list[BatchMemberId] = []

    @hatchet.batch_task(
        name="keyed-loose",
        batch_max_size=2,
        batch_group_key="input.customer",
        input_validator=Loose,
    )
    async def keyed(inputs: dict[BatchMemberId, Loose], ctx: Context) -> dict[BatchMemberId, Total]:
        seen.extend(inputs)
        return {m: Total(total=i.n, size=len(inputs)) for m, i in inputs.items()}

    good1 = await keyed.aio_run_no_wait(Loose(n=1, customer="acme"))
    bad = await keyed.aio_run_no_wait(Loose(n=2))  # no `customer`: its key fails
    assert "input.customer" in await fails(bad)  # the error names the expression
    good2 = await keyed.aio_run_no_wait(Loose(n=3, customer="acme"))
    assert await outcome(good1, 10) == Total(total=1, size=2)
    assert await outcome(good2, 10) == Total(total=3, size=2)
    assert seen == [member_id(hatchet, good1), member_id(hatchet, good2)]
    assert FLUSHED not in kinds(hatchet, bad.workflow_run_id)


async def test_cancelling_a_buffered_member_removes_it_from_its_batch(hatchet: Hatchet) -> None:
    calls: list[list[BatchMemberId]] = []

    @hatchet.batch_task(name="cancellable", batch_max_size=2, input_validator=Item)
    async def cancellable(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Total]:
        calls.append(list(inputs))
        return {m: Total(total=i.n, size=len(inputs)) for m, i in inputs.items()}

    doomed = await cancellable.aio_run_no_wait(Item(n=1))
    await buffered(hatchet, doomed)
    await hatchet.runs.aio_cancel(doomed.workflow_run_id)
    await wait_until(lambda: status(hatchet, doomed) == V1TaskStatus.CANCELLED)
    # Had the cancelled member stayed in the buffer, the next one would fill the batch.
    second = await cancellable.aio_run_no_wait(Item(n=2))
    await buffered(hatchet, second)
    assert calls == [] and status(hatchet, second) == QUEUED
    third = await cancellable.aio_run_no_wait(Item(n=3))
    assert await outcome(second, 10) == Total(total=2, size=2)
    assert await outcome(third, 10) == Total(total=3, size=2)
    assert calls == [[member_id(hatchet, second), member_id(hatchet, third)]]
    assert status(hatchet, doomed) == V1TaskStatus.CANCELLED
    assert FLUSHED not in kinds(hatchet, doomed.workflow_run_id)
    with pytest.raises(ValueError, match="was cancelled"):
        await asyncio.to_thread(doomed.result)


async def test_members_record_waiting_for_batch_then_batch_flushed(hatchet: Hatchet) -> None:
    @hatchet.batch_task(name="evented", batch_max_size=2, input_validator=Item)
    async def evented(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Doubled]:
        return doubled(inputs)

    first = await evented.aio_run_no_wait(Item(n=1))
    await buffered(hatchet, first)
    details = hatchet.runs.get(first.workflow_run_id)
    assert [e.event_type for e in details.task_events].count(WAITING) == 1
    assert FLUSHED not in [e.event_type for e in details.task_events]
    assert details.run.status == QUEUED and [t.status for t in details.tasks] == [QUEUED]

    second = await evented.aio_run_no_wait(Item(n=2))
    await outcome(first, 10)
    await outcome(second, 10)
    for ref in (first, second):
        events = kinds(hatchet, ref.workflow_run_id)
        assert events.count(WAITING) == 1 and events.count(FLUSHED) == 1, events
        assert events.index(WAITING) < events.index(FLUSHED) < events.index(FINISHED), events
        assert status(hatchet, ref) == V1TaskStatus.COMPLETED


# -- children and workflows ------------------------------------------------------------


async def test_a_batch_handler_can_spawn_child_runs(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task(name="square", input_validator=Item)
    async def square(input: Item, ctx: Context) -> Total:
        return Total(total=input.n * input.n, size=0)

    @hatchet.batch_task(name="spawner", batch_max_size=2, input_validator=Item)
    async def spawner(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, Total]:
        children = await asyncio.gather(*(square.aio_run(i) for i in inputs.values()))
        return dict(zip(inputs, children, strict=True))

    refs = [await spawner.aio_run_no_wait(Item(n=n)) for n in (2, 3)]
    assert [await outcome(r, 10) for r in refs] == [Total(total=4, size=0), Total(total=9, size=0)]
    rows = query(db_path, "SELECT status FROM workflow_runs WHERE workflow_name = 'square'")
    assert rows == [("COMPLETED",), ("COMPLETED",)]


async def test_a_batch_task_in_a_workflow_runs_after_its_parent(hatchet: Hatchet) -> None:
    calls: list[dict[BatchMemberId, Item]] = []
    wf = hatchet.workflow(name="pipeline", input_validator=Item)

    @wf.task()
    async def prepare(input: Item, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    @wf.batch_task(batch_max_size=2, parents=[prepare])
    async def combine(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, dict[str, int]]:
        calls.append(dict(inputs))
        return {m: {"n": i.n, "size": len(inputs)} for m, i in inputs.items()}

    refs = [await wf.aio_run_no_wait(Item(n=n)) for n in (1, 2)]
    results = [await outcome(r, 10) for r in refs]
    assert results == [{"prepare": {"n": n}, "combine": {"n": n, "size": 2}} for n in (1, 2)]
    [inputs] = calls
    members = [member_id(hatchet, r, "combine") for r in refs]
    assert set(inputs) == set(members)
    assert {m: i.n for m, i in inputs.items()} == dict(zip(members, (1, 2), strict=True))
    for ref in refs:
        details = hatchet.runs.get(ref.workflow_run_id)
        prep = member_id(hatchet, ref, "prepare")
        comb = member_id(hatchet, ref, "combine")
        order = [(e.task_id, e.event_type) for e in details.task_events]
        # The member is buffered only once its parent has finished.
        assert order.index((prep, FINISHED)) < order.index((comb, WAITING)), order
        assert order.index((comb, WAITING)) < order.index((comb, FLUSHED)), order


# -- persistence across processes ------------------------------------------------------


def build_survivor(hatchet: Hatchet) -> Any:
    @hatchet.batch_task(name="survivor", batch_max_size=4, input_validator=Item)
    def survivor(inputs: dict[BatchMemberId, Item], ctx: Context) -> dict[BatchMemberId, Doubled]:
        record(",".join(inputs))
        return doubled(inputs)

    return survivor


def start_worker(db: str, effects: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_batch_tasks", db],
        cwd=ROOT,
        env={**os.environ, EFFECTS_ENV: str(effects), "PYTHONPATH": str(ROOT)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.timeout(90)
def test_a_half_filled_batch_survives_sigkill_of_its_worker(tmp_path: Path) -> None:
    db, effects, log = str(tmp_path / "b.db"), tmp_path / "effects.log", tmp_path / "w.log"
    client = Hatchet(db=db, auto_worker=False)
    survivor = build_survivor(client)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_worker(db, effects, log))
        wait_until_sync(lambda: worker_up(db, procs[0]), 30, "the first worker")
        assert procs[0].poll() is None, log.read_text()
        early = [survivor.run_no_wait(Item(n=n)) for n in (1, 2)]
        wait_until_sync(
            lambda: all(WAITING in kinds(client, r.workflow_run_id) for r in early),
            30,
            "two members buffered",
        )
        assert not effects.exists()  # half filled: the handler has not run
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()

        procs.append(start_worker(db, effects, log))
        wait_until_sync(lambda: worker_up(db, procs[1]), 30, "the second worker")
        late = [survivor.run_no_wait(Item(n=n)) for n in (3, 4)]
        refs = early + late
        done = (V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED)
        wait_until_sync(
            lambda: all(status(client, r) in done for r in refs), 30, "all four members"
        )
        results = [r.result() for r in refs]
        member_ids = [member_id(client, r) for r in refs]
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        client.close()

    assert results == [Doubled(n=n, doubled=2 * n, batch_size=4) for n in (1, 2, 3, 4)]
    # One handler call, in the second worker, with the two members buffered before the
    # kill and the two after, in arrival order.
    [(members, pid)] = read_effects(effects)
    assert int(pid) == procs[1].pid
    assert members.split(",") == member_ids
    assert "Traceback" not in log.read_text()


def main() -> None:
    hatchet = Hatchet(db=sys.argv[1])
    survivor = build_survivor(hatchet)
    hatchet.worker(f"batch-worker-{os.getpid()}", slots=4, workflows=[survivor]).start()


if __name__ == "__main__":
    main()
