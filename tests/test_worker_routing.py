"""Which worker runs a task run: desired worker labels (required, optional and weighted,
with comparators), sticky runs, `sticky=True` children, `desired_worker_id`, labels
changed from a task, and slots (`slot_cost`, `durable_slots`).

In-process workers are started one after another; each scheduler step offers the
queue to the engine's workers in that order, so a test puts the worker a rule must
turn away first: without the rule it would take the task run, and the test fails.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hatchlite import (
    Context,
    DesiredWorkerLabel,
    DurableContext,
    EmptyModel,
    Hatchet,
    InvalidDefinitionError,
    StickyStrategy,
    TestClock,
    V1TaskStatus,
    Worker,
    WorkerLabel,
    WorkerLabelComparator,
    WorkerStatus,
)
from hatchlite.models import V1TaskEventType
from hatchlite.store.records import LabelSpec
from hatchlite.store.routing import DEFAULT_WEIGHT, Routing, label_specs, satisfies
from hatchlite.types import TriggerWorkflowOptions
from tests.conftest import query, spawn_worker, wait_until, wait_until_sync, worker_up
from tests.procs import labels_worker

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
C = WorkerLabelComparator
Where = dict[str, str]


@pytest.fixture
def client(db_path: str) -> Iterator[Hatchet]:
    """A client that runs no implicit worker: only the workers a test starts execute."""
    hatchet = Hatchet(db=db_path, auto_worker=False)
    yield hatchet
    hatchet.close()


@asynccontextmanager
async def serving(*workers: Worker) -> AsyncIterator[None]:
    """Start `workers` in this order (each registered before the next starts); stop
    them all at the end."""
    started: list[asyncio.Future[None]] = []
    try:
        for worker in workers:
            future = asyncio.ensure_future(worker.aio_start())
            started.append(future)
            await wait_until(lambda: worker.status is WorkerStatus.HEALTHY or future.done())
            if future.done():
                future.result()  # it failed to start: say why
        yield
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*started, return_exceptions=True), 10)


def worker(
    client: Hatchet,
    name: str,
    workflows: list[Any],
    labels: dict[str, str | int] | None = None,
    slots: int | None = 10,
    durable_slots: int | None = None,
) -> Worker:
    return client.worker(
        name,
        slots=slots,
        durable_slots=durable_slots,
        labels=labels,
        workflows=workflows,
        shutdown_grace=2.0,
    )


def where_task(client: Hatchet, name: str, **options: Any) -> Any:
    """A task returning the id of the worker that ran it."""

    @client.task(name=name, **options)
    async def where(input: EmptyModel, ctx: Context) -> Where:
        return {"worker": ctx.worker_id}

    return where


async def status(client: Hatchet, run_id: str) -> V1TaskStatus:
    return await client.runs.aio_get_status(run_id)


# -- across two worker processes --------------------------------------------------------


def start_labelled(
    db: str, log: Path, name: str, labels: dict[str, Any]
) -> subprocess.Popen[bytes]:
    return spawn_worker("labels_worker", [db, name, json.dumps(labels), "2"], log)


@pytest.mark.timeout(60)
def test_labels_route_between_two_worker_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    client = Hatchet(db=db, auto_worker=False)
    tasks = labels_worker.build(client)
    boxes = {
        "gpu-box": {"gpu": "yes", "memory": 64},
        "cpu-box": {"gpu": "no", "memory": 8},
    }
    logs = {name: tmp_path / f"{name}.log" for name in boxes}
    procs = {name: start_labelled(db, logs[name], name, labels) for name, labels in boxes.items()}
    counts = {"anywhere": 60, "gpu-only": 40, "big-memory": 20, "small-memory": 20}
    try:
        for name, proc in procs.items():
            wait_until_sync(lambda: worker_up(db, proc), timeout=20, what=f"{name} registration")
            assert proc.poll() is None, logs[name].read_text()
        refs = {
            task: tasks[task].run_many_no_wait(
                [tasks[task].create_bulk_run_item(labels_worker.Job(n=n)) for n in range(count)]
            )
            for task, count in counts.items()
        }
        results = {task: [ref.result() for ref in task_refs] for task, task_refs in refs.items()}
        workers = {w.name: w for w in client.workers.list().rows or []}
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            assert proc.wait(30) == 0, logs[name].read_text()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        client.close()

    ids = {name: workers[name].metadata.id for name in boxes}
    pids = {name: proc.pid for name, proc in procs.items()}
    # The labels each process registered, as the trigger-only process reads them.
    for name, labels in boxes.items():
        seen = {lb.key: lb.value for lb in workers[name].labels or []}
        assert seen == {k: str(v) for k, v in labels.items()}

    def ran_on(task: str) -> set[str]:
        assert sorted(r.n for r in results[task]) == list(range(counts[task]))
        names = {name for name, wid in ids.items() for r in results[task] if r.worker_id == wid}
        assert {r.pid for r in results[task]} == {pids[n] for n in names}
        return names

    assert ran_on("gpu-only") == {"gpu-box"}  # gpu == "yes", required
    assert ran_on("big-memory") == {"gpu-box"}  # memory 64 > 32 (list form)
    assert ran_on("small-memory") == {"cpu-box"}  # memory 8 < 16 (dict form)
    assert ran_on("anywhere") == {"gpu-box", "cpu-box"}  # no labels: both take a share
    # The stored task runs agree with what the tasks saw.
    rows = query(db, "SELECT workflow_name, worker_id FROM task_runs WHERE status = 'COMPLETED'")
    assert len(rows) == sum(counts.values())
    by_task: dict[str, set[object]] = {}
    for wf_name, worker_id in rows:
        by_task.setdefault(str(wf_name), set()).add(worker_id)
    assert by_task["gpu-only"] == {ids["gpu-box"]}
    assert by_task["small-memory"] == {ids["cpu-box"]}
    text = "".join(log.read_text() for log in logs.values())
    assert "Traceback" not in text and "locked" not in text, text


# -- required labels ----------------------------------------------------------------


async def test_required_label_no_worker_has_waits_until_its_schedule_timeout(
    db_path: str,
) -> None:
    clock = TestClock()
    client = Hatchet(db=db_path, auto_worker=False, clock=clock)
    ran: list[str] = []
    try:

        @client.task(
            schedule_timeout=timedelta(minutes=1),
            desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes", required=True)},
        )
        async def needs_gpu(input: EmptyModel, ctx: Context) -> Where:
            ran.append(ctx.worker_id)
            return {"worker": ctx.worker_id}

        marker = where_task(client, "marker")
        cpu = worker(client, "cpu", [needs_gpu, marker], labels={"gpu": "no"})
        async with serving(cpu):
            ref = await needs_gpu.aio_run_no_wait()
            run_id = ref.workflow_run_id
            # A later run completed, so the worker's claims saw the older one and left it.
            assert (await marker.aio_run())["worker"] == cpu.id
            assert await status(client, run_id) == V1TaskStatus.QUEUED

            clock.advance(timedelta(seconds=59))
            await marker.aio_run()
            assert await status(client, run_id) == V1TaskStatus.QUEUED  # not yet

            clock.advance(timedelta(seconds=2))  # 61 s queued > 60 s
            await asyncio.wait_for(ref.aio_result(), 3)
            assert await status(client, run_id) == V1TaskStatus.CANCELLED
        details = await client.runs.aio_get(run_id)
        events = [e.event_type for e in details.task_events]
        assert events == [V1TaskEventType.QUEUED, V1TaskEventType.SCHEDULING_TIMED_OUT]
        assert ran == []
    finally:
        await client.aio_close()


async def test_required_label_waits_for_a_worker_that_has_it(client: Hatchet) -> None:
    needs_gpu = where_task(
        client,
        "needs-gpu",
        desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes", required=True)},
    )
    marker = where_task(client, "marker")
    cpu = worker(client, "cpu", [needs_gpu, marker], labels={"gpu": "no"})
    gpu = worker(client, "gpu", [needs_gpu, marker], labels={"gpu": "yes"})
    async with serving(cpu):
        ref = await needs_gpu.aio_run_no_wait()
        await marker.aio_run()
        assert await status(client, ref.workflow_run_id) == V1TaskStatus.QUEUED
        async with serving(gpu):  # a worker with the label arrives: it takes the run
            assert (await asyncio.wait_for(ref.aio_result(), 3))["worker"] == gpu.id


async def test_trigger_labels_replace_the_tasks_labels_of_the_same_key(client: Hatchet) -> None:
    needs_gpu = where_task(
        client,
        "needs-gpu",
        desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes", required=True)},
    )
    gpu = worker(client, "gpu", [needs_gpu], labels={"gpu": "yes", "zone": "eu"})
    cpu = worker(client, "cpu", [needs_gpu], labels={"gpu": "no", "zone": "us"})
    async with serving(gpu, cpu):
        as_defined = await needs_gpu.aio_run()
        replaced = await needs_gpu.aio_run(
            desired_worker_labels=[DesiredWorkerLabel(key="gpu", value="no", required=True)]
        )
        # Another key adds to the task's labels: gpu=yes still holds, and no worker
        # has both.
        ref = await needs_gpu.aio_run_no_wait(
            desired_worker_labels=[DesiredWorkerLabel(key="zone", value="us", required=True)]
        )
        await needs_gpu.aio_run()  # a later run done: the workers' claims left `ref`
        assert await status(client, ref.workflow_run_id) == V1TaskStatus.QUEUED
    assert as_defined["worker"] == gpu.id
    assert replaced["worker"] == cpu.id


async def test_optional_label_by_default_never_blocks(client: Hatchet) -> None:
    # DesiredWorkerLabel's `required` defaults to False: a preference, not a condition.
    prefers_gpu = where_task(
        client, "prefers-gpu", desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes")}
    )
    cpu = worker(client, "cpu", [prefers_gpu], labels={"gpu": "no"})
    async with serving(cpu):
        results = await prefers_gpu.aio_run_many(
            [prefers_gpu.create_bulk_run_item() for _ in range(5)]
        )
    assert {r["worker"] for r in results} == {cpu.id}


# -- comparators ----------------------------------------------------------------------

COMPARATOR_CASES = [
    (C.EQUAL, 8, "small"),
    (C.NOT_EQUAL, 8, "large"),
    (C.GREATER_THAN, 8, "large"),
    (C.GREATER_THAN_OR_EQUAL, 64, "large"),
    (C.LESS_THAN, 64, "small"),
    (C.LESS_THAN_OR_EQUAL, 8, "small"),
]


@pytest.mark.parametrize("first", ["small", "large"])
async def test_comparators_on_int_labels(client: Hatchet, first: str) -> None:
    """Each comparator at its boundary, in the dict form and the list form at definition
    and at trigger time; run with either worker first in line."""
    defined: list[tuple[Any, Any, str]] = []
    for n, (comparator, value, expected) in enumerate(COMPARATOR_CASES):
        name = f"memory-{comparator.name.lower().replace('_', '-')}"
        want = DesiredWorkerLabel(value=value, required=True, comparator=comparator)
        labels: Any = {"memory": want} if n % 2 else [want.model_copy(update={"key": "memory"})]
        defined.append((where_task(client, name, desired_worker_labels=labels), want, expected))
    anywhere = where_task(client, "anywhere")
    tasks = [t for t, _, _ in defined] + [anywhere]
    workers = {
        "small": worker(client, "small", tasks, labels={"memory": 8}),
        "large": worker(client, "large", tasks, labels={"memory": 64}),
    }
    order = [workers[first], *(w for k, w in workers.items() if k != first)]
    async with serving(*order):
        for task, want, expected in defined:
            results = await task.aio_run_many([task.create_bulk_run_item() for _ in range(4)])
            assert {r["worker"] for r in results} == {workers[expected].id}, task.name
            # The same label given when triggering the unlabelled task.
            at_trigger = [want.model_copy(update={"key": "memory"})]
            results = await asyncio.gather(
                *(anywhere.aio_run(desired_worker_labels=at_trigger) for _ in range(3))
            )
            assert {r["worker"] for r in results} == {workers[expected].id}, want
            item = anywhere.create_bulk_run_item(desired_worker_labels=at_trigger)
            results = await anywhere.aio_run_many([item, item])
            assert {r["worker"] for r in results} == {workers[expected].id}, want


@pytest.mark.parametrize(
    ("have", "comparator", "value", "expected"),
    [
        ("yes", C.EQUAL, "yes", True),
        ("no", C.EQUAL, "yes", False),
        (1, C.EQUAL, "1", True),  # compared as text
        ("1", C.EQUAL, 1, True),
        ("no", C.NOT_EQUAL, "yes", True),
        ("yes", C.NOT_EQUAL, "yes", False),
        (64, C.GREATER_THAN, 8, True),
        (8, C.GREATER_THAN, 8, False),
        (8, C.GREATER_THAN, 64, False),
        (8, C.GREATER_THAN_OR_EQUAL, 8, True),
        (7, C.GREATER_THAN_OR_EQUAL, 8, False),
        (8, C.LESS_THAN, 64, True),
        (64, C.LESS_THAN, 64, False),
        (64, C.LESS_THAN_OR_EQUAL, 64, True),
        (65, C.LESS_THAN_OR_EQUAL, 64, False),
        ("64", C.GREATER_THAN, 8, True),  # numeric text orders as a number
        ("10", C.GREATER_THAN, 9, True),  # not as text ("10" < "9")
        ("big", C.GREATER_THAN, 8, False),  # an ordering needs numbers
        (8, C.LESS_THAN, "many", False),
        (None, C.EQUAL, "yes", False),  # the worker has no such label
        (None, C.NOT_EQUAL, "yes", False),
        (None, C.LESS_THAN, 8, False),
    ],
)
def test_satisfies(
    have: str | int | None, comparator: int, value: str | int, expected: bool
) -> None:
    assert satisfies(have, LabelSpec("k", value, True, DEFAULT_WEIGHT, comparator)) is expected


def test_satisfies_an_unknown_comparator_is_false() -> None:
    assert satisfies("yes", LabelSpec("k", "yes", True, DEFAULT_WEIGHT, 9)) is False


def test_label_specs_dict_and_list_forms_and_defaults() -> None:
    as_dict = label_specs({"gpu": DesiredWorkerLabel(value="yes")}, "here")
    as_list = label_specs([DesiredWorkerLabel(key="gpu", value="yes")], "here")
    assert as_dict == as_list == (LabelSpec("gpu", "yes", False, DEFAULT_WEIGHT, C.EQUAL),)
    weighted = DesiredWorkerLabel(
        value=8, required=True, weight=7, comparator=C.GREATER_THAN_OR_EQUAL
    )
    assert label_specs({"memory": weighted}, "here") == (LabelSpec("memory", 8, True, 7, 3),)
    assert label_specs(None, "here") == label_specs([], "here") == ()
    routing = Routing("HARD", "w-1", as_dict)
    assert Routing.from_json(routing.to_json()) == routing
    assert Routing().to_json() is None and Routing.from_json(None) == Routing()


# -- optional labels rank workers -----------------------------------------------------


@pytest.mark.parametrize("first", ["a", "b"])
async def test_optional_labels_rank_workers_by_summed_weight(client: Hatchet, first: str) -> None:
    to_b = where_task(
        client,
        "to-b",
        desired_worker_labels={
            "tier": DesiredWorkerLabel(value="fast", weight=10),  # b only
            "zone": DesiredWorkerLabel(value="eu", weight=5),  # a only
        },
    )
    to_a = where_task(
        client,
        "to-a",
        desired_worker_labels=[
            DesiredWorkerLabel(key="tier", value="fast", weight=5),
            DesiredWorkerLabel(key="zone", value="eu", weight=10),
            DesiredWorkerLabel(key="gpu", value="yes", weight=100),  # neither
        ],
    )
    # Default weights (100 each): two satisfied labels beat one.
    to_a_by_count = where_task(
        client,
        "to-a-by-count",
        desired_worker_labels={
            "tier": DesiredWorkerLabel(value="slow"),
            "zone": DesiredWorkerLabel(value="eu"),
            "disk": DesiredWorkerLabel(value="ssd"),
        },
    )
    nobody = where_task(
        client, "nobody", desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes")}
    )
    tasks = [to_b, to_a, to_a_by_count, nobody]
    workers = {
        "a": worker(client, "a", tasks, labels={"tier": "slow", "zone": "eu"}),
        "b": worker(client, "b", tasks, labels={"tier": "fast", "disk": "ssd"}),
    }
    order = [workers[first], *(w for k, w in workers.items() if k != first)]
    async with serving(*order):
        for task, expected in [(to_b, "b"), (to_a, "a"), (to_a_by_count, "a")]:
            results = await task.aio_run_many([task.create_bulk_run_item() for _ in range(4)])
            assert {r["worker"] for r in results} == {workers[expected].id}, task.name
        # No worker satisfies any of its optional labels: the first in line takes it.
        results = await nobody.aio_run_many([nobody.create_bulk_run_item() for _ in range(3)])
        assert {r["worker"] for r in results} == {order[0].id}


class Blocker:
    """A task holding its worker's only slot until released."""

    def __init__(self, client: Hatchet, labels: dict[str, DesiredWorkerLabel]) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

        @client.task(name="blocker", desired_worker_labels=labels)
        def blocker(input: EmptyModel, ctx: Context) -> Where:
            self.started.set()
            self.release.wait(10)
            return {"worker": ctx.worker_id}

        self.task = blocker


def reported_free(db: str, worker_id: str | None) -> object:
    return query(db, "SELECT free_slots FROM workers WHERE id = ?", (worker_id,))[0][0]


async def test_optional_label_falls_back_once_the_preferred_worker_reports_full(
    client: Hatchet, db_path: str
) -> None:
    prefers_fast = where_task(
        client, "prefers-fast", desired_worker_labels={"tier": DesiredWorkerLabel(value="fast")}
    )
    blocker = Blocker(client, {"tier": DesiredWorkerLabel(value="fast", required=True)})
    flows = [prefers_fast, blocker.task]
    slow = worker(client, "slow", flows, labels={"tier": "slow"}, slots=5)
    fast = worker(client, "fast", flows, labels={"tier": "fast"}, slots=1)
    async with serving(slow, fast):
        assert (await prefers_fast.aio_run())["worker"] == fast.id  # while it has room
        held = await blocker.task.aio_run_no_wait()
        try:
            # The full worker's heartbeat (every second) tells the others it has no room.
            await wait_until(lambda: reported_free(db_path, fast.id) == 0, timeout=2.5)
            began = time.monotonic()
            result = await asyncio.wait_for(prefers_fast.aio_run(), 2)
            took = time.monotonic() - began
        finally:
            blocker.release.set()
        assert (await held.aio_result())["worker"] == fast.id
    assert result["worker"] == slow.id
    assert took < 0.5, took  # measured: a few milliseconds, with the report in


async def test_optional_label_is_not_stranded_when_the_preferred_worker_fills_up(
    client: Hatchet,
) -> None:
    prefers_fast = where_task(
        client, "prefers-fast", desired_worker_labels={"tier": DesiredWorkerLabel(value="fast")}
    )
    blocker = Blocker(client, {"tier": DesiredWorkerLabel(value="fast", required=True)})
    flows = [prefers_fast, blocker.task]
    slow = worker(client, "slow", flows, labels={"tier": "slow"}, slots=5)
    fast = worker(client, "fast", flows, labels={"tier": "fast"}, slots=1)
    async with serving(slow, fast):
        held = await blocker.task.aio_run_no_wait()
        try:
            await wait_until(blocker.started.is_set)
            # Right after it filled up, before its next heartbeat: the others still see
            # its room, and leave the run for it. Soft: within about a heartbeat someone
            # must take it.
            result = await asyncio.wait_for(prefers_fast.aio_run(), 2.5)
        finally:
            blocker.release.set()
            await held.aio_result()
    assert result["worker"] == slow.id


async def test_optional_label_ranks_workers_for_durable_tasks(client: Hatchet) -> None:
    @client.durable_task(desired_worker_labels={"tier": DesiredWorkerLabel(value="fast")})
    async def durable_where(input: EmptyModel, ctx: DurableContext) -> Where:
        return {"worker": ctx.worker_id}

    # Workers of durable tasks only: 0 default slots, 1000 durable slots (Hatchet's).
    slow = worker(client, "slow", [durable_where], labels={"tier": "slow"}, slots=None)
    fast = worker(client, "fast", [durable_where], labels={"tier": "fast"}, slots=None)
    async with serving(slow, fast):
        results = await durable_where.aio_run_many(
            [durable_where.create_bulk_run_item() for _ in range(3)]
        )
    assert {r["worker"] for r in results} == {fast.id}


# -- sticky runs ----------------------------------------------------------------------


def diamond(client: Hatchet, name: str, sticky: StickyStrategy | None, delay: float) -> Any:
    """first -> (left, right) -> last; each task returns its worker's id."""
    wf = client.workflow(name=name, sticky=sticky)

    async def body(ctx: Context) -> Where:
        await asyncio.sleep(delay)
        return {"worker": ctx.worker_id}

    @wf.task()
    async def first(input: EmptyModel, ctx: Context) -> Where:
        return await body(ctx)

    @wf.task(parents=[first])
    async def left(input: EmptyModel, ctx: Context) -> Where:
        return await body(ctx)

    @wf.task(parents=[first])
    async def right(input: EmptyModel, ctx: Context) -> Where:
        return await body(ctx)

    @wf.task(parents=[left, right])
    async def last(input: EmptyModel, ctx: Context) -> Where:
        return await body(ctx)

    return wf


def workers_of(result: dict[str, Any]) -> list[str]:
    return [result[task]["worker"] for task in ("first", "left", "right", "last")]


async def test_hard_sticky_keeps_every_task_of_a_run_on_one_worker(client: Hatchet) -> None:
    wf = diamond(client, "hard-diamond", StickyStrategy.HARD, delay=0.005)
    # Two slots each: the first tasks spread over both, and a later task becomes ready
    # while the other worker has room.
    a = worker(client, "a", [wf], slots=2)
    b = worker(client, "b", [wf], slots=2)
    async with serving(a, b):
        results = await wf.aio_run_many([wf.create_bulk_run_item() for _ in range(16)])
    holders = []
    for result in results:
        ran = workers_of(result)
        assert len(set(ran)) == 1, ran
        holders.append(ran[0])
    assert set(holders) == {a.id, b.id}, "both workers should have taken runs"


async def test_without_sticky_later_tasks_go_to_the_first_worker_with_room(
    client: Hatchet,
) -> None:
    """The control of the sticky tests below: the same DAG, not sticky, spreads."""
    wf = diamond_on_b(client, "loose", None)
    a = worker(client, "a", [wf], labels={"role": "a"})
    b = worker(client, "b", [wf], labels={"role": "b"})
    async with serving(a, b):
        result = await wf.aio_run()
    assert workers_of(result) == [b.id, a.id, a.id, a.id]


def diamond_on_b(client: Hatchet, name: str, sticky: StickyStrategy | None) -> Any:
    """A diamond whose first task requires the label role=b; the others ask for nothing."""
    wf = client.workflow(name=name, sticky=sticky)
    on_b = {"role": DesiredWorkerLabel(value="b", required=True)}

    @wf.task(desired_worker_labels=on_b)
    async def first(input: EmptyModel, ctx: Context) -> Where:
        return {"worker": ctx.worker_id}

    @wf.task(parents=[first])
    async def left(input: EmptyModel, ctx: Context) -> Where:
        return {"worker": ctx.worker_id}

    @wf.task(parents=[first])
    async def right(input: EmptyModel, ctx: Context) -> Where:
        return {"worker": ctx.worker_id}

    @wf.task(parents=[left, right])
    async def last(input: EmptyModel, ctx: Context) -> Where:
        return {"worker": ctx.worker_id}

    return wf


@pytest.mark.parametrize("strategy", [StickyStrategy.SOFT, StickyStrategy.HARD])
async def test_sticky_run_follows_the_worker_of_its_first_task(
    client: Hatchet, strategy: StickyStrategy
) -> None:
    wf = diamond_on_b(client, f"sticky-{strategy.value.lower()}", strategy)
    a = worker(client, "a", [wf], labels={"role": "a"})  # first in line, with room
    b = worker(client, "b", [wf], labels={"role": "b"})
    async with serving(a, b):
        results = await wf.aio_run_many([wf.create_bulk_run_item() for _ in range(5)])
    assert [workers_of(r) for r in results] == [[b.id] * 4] * 5


class Gate:
    """The first task of a run waits until opened."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()


def gated_on_b(client: Hatchet, name: str, sticky: StickyStrategy, gate: Gate) -> Any:
    wf = client.workflow(name=name, sticky=sticky)

    @wf.task(desired_worker_labels={"role": DesiredWorkerLabel(value="b", required=True)})
    def first(input: EmptyModel, ctx: Context) -> Where:
        gate.entered.set()
        gate.open.wait(10)
        return {"worker": ctx.worker_id}

    @wf.task(parents=[first])
    async def then(input: EmptyModel, ctx: Context) -> Where:
        return {"worker": ctx.worker_id}

    return wf


async def run_with_holder_gone(
    client: Hatchet, db_path: str, strategy: StickyStrategy
) -> tuple[Any, str, str]:
    """Stop the worker holding a sticky run (it drains its first task); return the run's
    ref, and the ids of the worker that stays and the one that stopped."""
    gate = Gate()
    wf = gated_on_b(client, f"gone-{strategy.value.lower()}", strategy, gate)
    marker = where_task(client, "marker")
    a = worker(client, "a", [wf, marker], labels={"role": "a"})
    b = worker(client, "b", [wf], labels={"role": "b"})
    async with serving(a):
        async with serving(b):
            ref = await wf.aio_run_no_wait()
            await wait_until(gate.entered.is_set)
            b.stop()  # draining: takes nothing more, and is no longer a live worker
            sql = "SELECT status FROM workers WHERE id = ?"
            await wait_until(lambda: query(db_path, sql, (b.id,)) == [("PAUSED",)], timeout=2)
            gate.open.set()
        assert a.id is not None and b.id is not None
        if strategy is StickyStrategy.SOFT:
            await asyncio.wait_for(ref.aio_result(), 3)
        else:
            await marker.aio_run()  # a's claims saw `then` queued since b left
            assert await status(client, ref.workflow_run_id) == V1TaskStatus.RUNNING
            details = await client.runs.aio_get_details(ref.workflow_run_id)
            assert details.task_runs["then"].status == V1TaskStatus.QUEUED
    return ref, a.id, b.id


async def test_soft_sticky_moves_on_when_its_worker_is_gone(client: Hatchet, db_path: str) -> None:
    ref, a_id, b_id = await run_with_holder_gone(client, db_path, StickyStrategy.SOFT)
    result = await ref.aio_result()
    assert (result["first"]["worker"], result["then"]["worker"]) == (b_id, a_id)


async def test_hard_sticky_waits_for_its_worker(client: Hatchet, db_path: str) -> None:
    await run_with_holder_gone(client, db_path, StickyStrategy.HARD)


@pytest.mark.parametrize("child_on_b", [True, False])
async def test_sticky_child_runs_on_its_parents_worker(client: Hatchet, child_on_b: bool) -> None:
    """`sticky=True` on a child's trigger sends it to the parent's worker when that
    worker serves the child's workflow; otherwise another worker runs it."""
    child = where_task(client, "child")

    @client.task(desired_worker_labels={"role": DesiredWorkerLabel(value="b", required=True)})
    async def parent(input: EmptyModel, ctx: Context) -> dict[str, str]:
        sticky = await child.aio_run(sticky=True)
        loose = await child.aio_run()
        bulk = await child.aio_run_many([child.create_bulk_run_item(sticky=True)])
        return {
            "parent": ctx.worker_id,
            "sticky": sticky["worker"],
            "loose": loose["worker"],
            "bulk": bulk[0]["worker"],
        }

    a = worker(client, "a", [parent, child], labels={"role": "a"})
    b = worker(client, "b", [parent, child] if child_on_b else [parent], labels={"role": "b"})
    async with serving(a, b):
        result = await parent.aio_run()
    assert result["parent"] == b.id
    expected = b.id if child_on_b else a.id
    assert (result["sticky"], result["bulk"]) == (expected, expected)
    assert result["loose"] == a.id  # the control: not sticky, the first worker takes it


async def test_desired_worker_id_is_preferred(client: Hatchet) -> None:
    job = where_task(client, "job")
    a = worker(client, "a", [job])
    b = worker(client, "b", [job])
    async with serving(a, b):
        assert b.id is not None
        direct = await asyncio.gather(*(job.aio_run(desired_worker_id=b.id) for _ in range(4)))
        bulk = await job.aio_run_many(
            [job.create_bulk_run_item(desired_worker_id=b.id) for _ in range(4)]
        )
        options = await job.aio_run(options=TriggerWorkflowOptions(desired_worker_id=b.id))
        control = await job.aio_run()
        # A preference, not a condition: a worker that does not exist strands nothing.
        unknown = await asyncio.wait_for(job.aio_run(desired_worker_id="no-such-worker"), 3)
    assert {r["worker"] for r in [*direct, *bulk, options]} == {b.id}
    assert control["worker"] == a.id
    assert unknown["worker"] == a.id


# -- labels changed from a task -------------------------------------------------------


async def test_upsert_worker_labels_changes_labels_and_later_routing(client: Hatchet) -> None:
    on_b = {"role": DesiredWorkerLabel(value="b", required=True)}

    @client.task(desired_worker_labels=on_b)
    def relabel(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        ctx.upsert_worker_labels({"x": 1})
        return {"labels": ctx.worker_labels}

    @client.task(desired_worker_labels=on_b)
    def relabel_deprecated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ctx.worker.upsert_labels({"y": "z"})
        return {
            "categories": [w.category.__name__ for w in caught],
            "files": [Path(w.filename).name for w in caught],
            "labels": ctx.worker.labels(),
        }

    @client.task(desired_worker_labels=on_b)
    async def relabel_badly(input: EmptyModel, ctx: Context) -> dict[str, str]:
        try:
            await ctx.aio_upsert_worker_labels({"bad": 1.5})  # type: ignore[dict-item]
        except ValueError as exc:
            return {"error": str(exc)}
        return {"error": ""}

    needs_x = where_task(
        client,
        "needs-x",
        desired_worker_labels={"x": DesiredWorkerLabel(value=1, required=True)},
    )
    marker = where_task(client, "marker")
    flows = [relabel, relabel_deprecated, relabel_badly, needs_x, marker]
    a = worker(client, "a", flows, labels={"role": "a"})
    b = worker(client, "b", flows, labels={"role": "b"})
    async with serving(a, b):
        assert b.id is not None
        waiting = await needs_x.aio_run_no_wait()
        await marker.aio_run()
        assert await status(client, waiting.workflow_run_id) == V1TaskStatus.QUEUED

        assert (await relabel.aio_run())["labels"] == {"role": "b", "x": 1}
        assert (await asyncio.wait_for(waiting.aio_result(), 3))["worker"] == b.id
        later = await needs_x.aio_run_many([needs_x.create_bulk_run_item() for _ in range(3)])
        assert {r["worker"] for r in later} == {b.id}
        seen = await client.workers.aio_get(b.id)
        assert {lb.key: lb.value for lb in seen.labels or []} == {"role": "b", "x": "1"}

        deprecated = await relabel_deprecated.aio_run()
        assert deprecated["categories"] == ["DeprecationWarning"]
        assert deprecated["files"] == [Path(__file__).name]  # points at the caller
        assert deprecated["labels"] == {"role": "b", "x": 1, "y": "z"}
        seen = await client.workers.aio_get(b.id)
        assert {lb.key: lb.value for lb in seen.labels or []} == {
            "role": "b",
            "x": "1",
            "y": "z",
        }

        assert "1.5" in (await relabel_badly.aio_run())["error"]
        assert a.id is not None
        other = await client.workers.aio_get(a.id)
        assert {lb.key: lb.value for lb in other.labels or []} == {"role": "a"}


# -- slots ----------------------------------------------------------------------------


def peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    return max(itertools.accumulate(d for _, d in edges), default=0)


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


async def test_slot_cost_takes_that_many_slots(client: Hatchet) -> None:
    spans: dict[str, list[tuple[float, float]]] = {"heavy": [], "light": []}

    def recording(kind: str) -> Callable[[EmptyModel, Context], Any]:
        async def body(input: EmptyModel, ctx: Context) -> None:
            began = time.monotonic()
            await asyncio.sleep(0.03)
            spans[kind].append((began, time.monotonic()))

        return body

    heavy = client.task(name="heavy", slot_cost=2)(recording("heavy"))
    light = client.task(name="light")(recording("light"))
    w = worker(client, "w", [heavy, light], slots=2)
    async with serving(w):
        refs = []
        for kind in "LLHLHLHLLH":  # two lights first: they fill the worker together
            task = heavy if kind == "H" else light
            refs.append(await task.aio_run_no_wait())
        await asyncio.wait_for(asyncio.gather(*(r.aio_result() for r in refs)), 5)
    assert (len(spans["heavy"]), len(spans["light"])) == (4, 6)
    for h in spans["heavy"]:
        others = [s for s in spans["heavy"] + spans["light"] if s != h]
        assert not any(overlaps(h, s) for s in others), "a slot_cost=2 task shared the worker"
    assert peak(spans["light"]) == 2  # the measure sees overlaps: two lights ran together


async def test_durable_slots_bound_durable_tasks(client: Hatchet) -> None:
    spans: dict[str, list[tuple[float, float]]] = {"durable": [], "plain": []}

    @client.durable_task()
    async def durable(input: EmptyModel, ctx: DurableContext) -> None:
        began = time.monotonic()
        await asyncio.sleep(0.03)  # not a durable wait: it keeps its slot
        spans["durable"].append((began, time.monotonic()))

    @client.task()
    async def plain(input: EmptyModel, ctx: Context) -> None:
        began = time.monotonic()
        await asyncio.sleep(0.03)
        spans["plain"].append((began, time.monotonic()))

    w = worker(client, "w", [durable, plain], slots=1, durable_slots=2)
    async with serving(w):
        refs = [await durable.aio_run_no_wait() for _ in range(6)]
        refs += [await plain.aio_run_no_wait() for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*(r.aio_result() for r in refs)), 5)
    assert peak(spans["durable"]) == 2
    assert peak(spans["plain"]) == 1
    # Durable tasks hold durable slots only: a plain task ran beside them.
    assert any(overlaps(p, d) for p in spans["plain"] for d in spans["durable"])


# -- bad input ------------------------------------------------------------------------

BAD_LABELS: list[Any] = [
    {"gpu": WorkerLabel(key="gpu", value="yes")},  # a worker's label, not a desired one
    {"gpu": 1.5},
    {"gpu": None},
    {"gpu": {"value": "yes"}},
    [WorkerLabel(key="gpu", value="yes")],
    [{"key": "gpu", "value": "yes"}],
    [DesiredWorkerLabel(value="yes")],  # the list form needs keys
    {"gpu": DesiredWorkerLabel(value="yes", comparator=6)},
    {"gpu": DesiredWorkerLabel(value="yes", comparator=-1)},
]


@pytest.mark.parametrize("labels", BAD_LABELS)
def test_bad_desired_labels_are_a_definition_error(client: Hatchet, labels: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="bad-task"):

        @client.task(name="bad-task", desired_worker_labels=labels)
        def bad(input: EmptyModel, ctx: Context) -> None:
            return None

    wf = client.workflow(name="bad-workflow")
    with pytest.raises(InvalidDefinitionError, match="bad-task"):

        @wf.task(name="bad-task", desired_worker_labels=labels)
        def bad_in_workflow(input: EmptyModel, ctx: Context) -> None:
            return None

    with pytest.raises(InvalidDefinitionError, match="bad-task"):

        @wf.durable_task(name="bad-task", desired_worker_labels=labels)
        async def bad_durable(input: EmptyModel, ctx: DurableContext) -> None:
            return None


TRIGGER_BAD_LABELS: list[Any] = [
    [WorkerLabel(key="gpu", value="yes")],
    [{"key": "gpu", "value": "yes"}],
    [DesiredWorkerLabel(value="yes")],
    [DesiredWorkerLabel(key="gpu", value="yes", comparator=9)],
    [1.5],
]


@pytest.mark.parametrize("labels", TRIGGER_BAD_LABELS)
def test_bad_desired_labels_at_trigger_are_a_value_error(
    client: Hatchet, db_path: str, labels: Any
) -> None:
    job = where_task(client, "job")
    good = job.run_no_wait(desired_worker_labels=[DesiredWorkerLabel(key="gpu", value="yes")])
    calls: list[Callable[[], object]] = [
        lambda: job.run_no_wait(desired_worker_labels=labels),
        lambda: job.run(desired_worker_labels=labels),
        lambda: job.create_bulk_run_item(desired_worker_labels=labels),
        lambda: asyncio.run(job.aio_run_no_wait(desired_worker_labels=labels)),
    ]
    if all(isinstance(label, DesiredWorkerLabel) for label in labels):
        options = TriggerWorkflowOptions(desired_worker_label=labels)
        calls.append(lambda: job.run_no_wait(options=options))
    for call in calls:
        with pytest.raises(ValueError, match="desired"):
            call()
    # Nothing was created: the good trigger before them is the only run.
    assert query(db_path, "SELECT id FROM workflow_runs") == [(good.workflow_run_id,)]
