"""Concurrency limits, as Hatchet's engine applies them: GROUP_ROUND_ROBIN,
CANCEL_IN_PROGRESS and CANCEL_NEWEST at `max_runs` 1 and 2, workflow-level (held until
the run ends) and task-level; round-robin fairness between keys; lists of limits; the
schedule timeout of waiting runs; keys evaluated at trigger from `input`,
`additional_metadata` and `workflow_run_id`; definition-time errors; two worker
processes on one database file; replay; and the fast key path agreeing with cel-python.

What ran at once is measured twice: inside the task bodies (a `Tracker`), and from the
task_runs table (`started_at` is written at the claim, before the body starts, and
`finished_at` at the settle, after it ends, so with one engine those intervals contain
the bodies'; across processes see test_limits_hold_across_two_worker_processes)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from hatchlite import (
    BulkCancelReplayOpts,
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    EmptyModel,
    Hatchet,
    InvalidDefinitionError,
    Standalone,
)
from hatchlite.cel import InvalidCELError, compile_expression, evaluate_value
from hatchlite.limits import LimitKeyError, key_value
from hatchlite.models import V1TaskEventType
from hatchlite.testing import TestClock
from tests.conftest import outcome, query, spawn_worker, wait_until, wait_until_sync, worker_up
from tests.procs import limits_worker

pytestmark = pytest.mark.timeout(20)

GRR = ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN
CANCEL_IN_PROGRESS = ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS
CANCEL_NEWEST = ConcurrencyLimitStrategy.CANCEL_NEWEST
START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
SCOPES = ["workflow", "task"]


def limit(
    expression: str, max_runs: int, strategy: ConcurrencyLimitStrategy = GRR
) -> ConcurrencyExpression:
    return ConcurrencyExpression(expression=expression, max_runs=max_runs, limit_strategy=strategy)


class Job(BaseModel):
    group: str = "a"
    n: int = 0


class Tracker:
    """What the task bodies did, recorded from whichever thread runs them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.log: list[tuple[str, str]] = []  # ("start" | "end", key)
        self.release = threading.Event()

    @contextmanager
    def span(self, *keys: str, label: int) -> Iterator[None]:
        """A body running under `keys`; one that sees CancelledError is noted."""
        with self.lock:
            for key in keys:
                self.running[key] += 1
                self.peak[key] = max(self.peak[key], self.running[key])
                self.log.append(("start", key))
            self.started.append(label)
        try:
            yield
        except asyncio.CancelledError:
            with self.lock:
                self.cancelled.append(label)
            raise
        finally:
            with self.lock:
                for key in keys:
                    self.running[key] -= 1
                    self.log.append(("end", key))

    async def held(self) -> None:
        """Block (on the worker's loop) until the test sets `release`."""
        await self.until(self.release.is_set)

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released this task")
            await asyncio.sleep(0.002)

    def count_started(self) -> int:
        with self.lock:
            return len(self.started)


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    t = Tracker()
    yield t
    t.release.set()  # nothing stays blocked past the test


Body = Callable[[Job, Context], Awaitable[dict[str, int]]]
Trigger = Callable[[Job], Awaitable[str]]


def limited(
    hatchet: Hatchet,
    scope: str,
    name: str,
    concurrency: ConcurrencyExpression | list[ConcurrencyExpression],
    body: Body,
    **task_options: Any,
) -> Trigger:
    """A one-task workflow limited at the workflow level (`scope == "workflow"`) or a
    standalone task limited at the task level; returns a trigger giving the run id."""
    if scope == "workflow":
        wf = hatchet.workflow(name=name, input_validator=Job, concurrency=concurrency)
        wf.task(name="work", **task_options)(body)

        async def trigger_workflow(job: Job) -> str:
            return (await wf.aio_run_no_wait(job)).workflow_run_id

        return trigger_workflow
    task = hatchet.task(name=name, input_validator=Job, concurrency=concurrency, **task_options)(
        body
    )

    async def trigger_task(job: Job) -> str:
        return (await task.aio_run_no_wait(job)).workflow_run_id

    return trigger_task


def noop_task(hatchet: Hatchet) -> Standalone[EmptyModel, dict[str, bool]]:
    """Running it to completion proves the engine stepped since the test last acted."""

    @hatchet.task(name="noop")
    def noop(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": True}

    return noop


# -- reading the database ------------------------------------------------------------


def run_status(db: str, run_id: str) -> str:
    return str(query(db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


def all_have(db: str, run_ids: list[str], status: str) -> bool:
    return all(run_status(db, r) == status for r in run_ids)


def spans(db: str, workflow: str, task: str | None = None) -> list[tuple[str, int, float, float]]:
    """(group, n, started_at, finished_at) of the completed task runs of `workflow`."""
    rows = query(
        db,
        """SELECT json_extract(w.input, '$.group'), json_extract(w.input, '$.n'),
                  t.started_at, t.finished_at
           FROM task_runs t JOIN workflow_runs w ON w.id = t.workflow_run_id
           WHERE t.workflow_name = ? AND t.status = 'COMPLETED'
             AND (? IS NULL OR t.task_name = ?)""",
        (workflow, task, task),
    )
    return [(str(g), int(str(n)), float(str(s)), float(str(e))) for g, n, s, e in rows]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant; one ending when another starts is not
    an overlap."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    open_now = peak = 0
    for _, delta in points:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def peak_by_group(rows: list[tuple[str, int, float, float]]) -> dict[str, int]:
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for group, _, started, finished in rows:
        groups[group].append((started, finished))
    return {g: peak_overlap(iv) for g, iv in groups.items()}


def slots(db: str) -> list[tuple[str, str, str, str]]:
    """(scope, run id, key, status) of every concurrency row, in arrival order."""
    return [
        (str(s), str(r), str(k), str(st))
        for s, r, k, st in query(
            db, "SELECT scope, run_id, key, status FROM concurrency_slots ORDER BY seq"
        )
    ]


def stored_keys(db: str, run_id: str) -> Any:
    [(raw,)] = query(db, "SELECT limit_keys FROM workflow_runs WHERE id = ?", (run_id,))
    return json.loads(str(raw))


def limit_messages(hatchet: Hatchet, run_id: str) -> list[str]:
    """Messages of the CANCELLED task events a concurrency limit wrote for a run."""
    return [
        e.message
        for e in hatchet.runs.get(run_id).task_events
        if e.event_type == V1TaskEventType.CANCELLED and "concurrency limit" in e.message
    ]


def counts(db: str) -> tuple[int, int, int]:
    """(workflow runs, task runs, concurrency rows) stored."""
    return (
        int(str(query(db, "SELECT count(*) FROM workflow_runs")[0][0])),
        int(str(query(db, "SELECT count(*) FROM task_runs")[0][0])),
        int(str(query(db, "SELECT count(*) FROM concurrency_slots")[0][0])),
    )


# -- the three strategies ------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("max_runs", [1, 2])
async def test_group_round_robin_runs_every_run_at_most_max_runs_per_key(
    hatchet: Hatchet, db_path: str, tracker: Tracker, scope: str, max_runs: int
) -> None:
    async def work(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span(input.group, label=input.n):
            await asyncio.sleep(0.02)
        return {"n": input.n}

    trigger = limited(hatchet, scope, "grr", limit("input.group", max_runs), work)
    jobs = [Job(group=g, n=i + (100 if g == "b" else 0)) for i in range(5) for g in "ab"]
    run_ids = [await trigger(job) for job in jobs]
    await wait_until(lambda: all_have(db_path, run_ids, "COMPLETED"))

    assert tracker.peak == {"a": max_runs, "b": max_runs}
    rows = spans(db_path, "grr")
    assert sorted(n for _, n, _, _ in rows) == sorted(j.n for j in jobs)
    assert peak_by_group(rows) == {"a": max_runs, "b": max_runs}
    if max_runs == 1:  # admitted one by one, oldest first
        for group in "ab":
            order = [n for g, n, _, _ in sorted(rows, key=lambda r: r[2]) if g == group]
            assert order == sorted(order)
    assert slots(db_path) == []


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("max_runs", [1, 2])
async def test_cancel_in_progress_keeps_the_newest_and_stops_running_older_ones(
    hatchet: Hatchet, db_path: str, tracker: Tracker, scope: str, max_runs: int
) -> None:
    async def work(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span(input.group, label=input.n):
            await tracker.held()
        return {"n": input.n}

    trigger = limited(
        hatchet, scope, "cip", limit("input.group", max_runs, CANCEL_IN_PROGRESS), work
    )
    older = [await trigger(Job(group="k", n=i)) for i in range(max_runs)]
    other = await trigger(Job(group="other", n=99))  # another key: never touched
    await wait_until(lambda: tracker.count_started() == max_runs + 1)  # all running

    every = list(older)
    for i in range(2):
        every.append(await trigger(Job(group="k", n=max_runs + i)))
        # Inside the arrival's trigger: it is admitted, the oldest holder is cancelled.
        statuses = [run_status(db_path, r) for r in every]
        assert statuses[: i + 1] == ["CANCELLED"] * (i + 1), statuses
        assert "CANCELLED" not in statuses[i + 1 :], statuses
    cancelled, kept = every[:-max_runs], every[-max_runs:]
    # The older runs were RUNNING when the newer arrived: their bodies are stopped.
    await wait_until(lambda: set(range(max_runs)) <= set(tracker.cancelled))
    assert set(tracker.cancelled) <= set(range(len(cancelled)))

    tracker.release.set()
    await wait_until(lambda: all_have(db_path, [*kept, other], "COMPLETED"))
    assert all_have(db_path, cancelled, "CANCELLED")
    done = {n for _, n, _, _ in spans(db_path, "cip")}
    assert done == {99, *range(len(cancelled), len(every))}
    for run_id in cancelled:
        [message] = limit_messages(hatchet, run_id)
        assert "'k'" in message and "CANCEL_IN_PROGRESS" in message, message
    for run_id in cancelled[:max_runs]:  # these were running: one CANCELLED, after STARTED
        kinds = [e.event_type for e in hatchet.runs.get(run_id).task_events]
        assert kinds.count(V1TaskEventType.CANCELLED) == 1, kinds
        assert kinds[-1] == V1TaskEventType.CANCELLED and V1TaskEventType.STARTED in kinds
    for run_id in [*kept, other]:
        assert limit_messages(hatchet, run_id) == []
    assert slots(db_path) == []


async def test_an_admitted_waiter_queues_behind_runs_of_other_keys_ready_before_it(
    db_path: str,
) -> None:
    """One slot, at most one per user: ann-1 runs, bob-1 (ready since it was triggered)
    goes before ann-2 (ready only when ann-1 ended), then ann-2, ann-3."""
    client = Hatchet(db=db_path, auto_worker=False)
    order: list[str] = []
    try:
        wf = client.workflow(
            name="exports", input_validator=Job, concurrency=limit("input.group", 1)
        )

        @wf.task()
        async def export(input: Job, ctx: Context) -> None:
            order.append(f"{input.group}-{input.n}")

        jobs = [Job(group="ann", n=1), Job(group="ann", n=2), Job(group="ann", n=3)]
        refs = [await wf.aio_run_no_wait(job) for job in [*jobs, Job(group="bob", n=1)]]
        worker = client.worker("one-slot", slots=1, workflows=[wf])
        serving = asyncio.create_task(worker.aio_start())
        for ref in refs:
            await asyncio.wait_for(ref.aio_result(), 5)
        worker.stop()
        await serving
    finally:
        await client.aio_close()
    assert order == ["ann-1", "bob-1", "ann-2", "ann-3"]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("max_runs", [1, 2])
async def test_cancel_newest_keeps_the_oldest_and_cancels_newer_arrivals(
    hatchet: Hatchet, db_path: str, tracker: Tracker, scope: str, max_runs: int
) -> None:
    async def work(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span(input.group, label=input.n):
            await tracker.held()
        return {"n": input.n}

    trigger = limited(hatchet, scope, "cn", limit("input.group", max_runs, CANCEL_NEWEST), work)
    oldest = [await trigger(Job(group="k", n=i)) for i in range(max_runs)]
    await wait_until(lambda: tracker.count_started() == max_runs)

    newer = [await trigger(Job(group="k", n=10 + i)) for i in range(3)]
    # Refused inside the trigger's own transaction.
    assert [run_status(db_path, r) for r in newer] == ["CANCELLED"] * 3
    other = await trigger(Job(group="other", n=99))
    await wait_until(lambda: tracker.count_started() == max_runs + 1)

    tracker.release.set()
    await wait_until(lambda: all_have(db_path, [*oldest, other], "COMPLETED"))
    assert sorted(tracker.started) == [*range(max_runs), 99]  # the newer never started
    assert tracker.cancelled == []
    never_started = query(
        db_path,
        f"SELECT count(*) FROM task_runs WHERE started_at IS NULL AND status = 'CANCELLED' "
        f"AND workflow_run_id IN ({','.join('?' * len(newer))})",
        tuple(newer),
    )
    assert never_started == [(3,)]
    for run_id in newer:
        [message] = limit_messages(hatchet, run_id)
        assert "'k'" in message and "CANCEL_NEWEST" in message, message
    for run_id in oldest:
        assert limit_messages(hatchet, run_id) == []

    # The holders ended: the key admits a new arrival again.
    late = await trigger(Job(group="k", n=50))
    await wait_until(lambda: run_status(db_path, late) == "COMPLETED")
    assert slots(db_path) == []


# -- fairness, lists of limits, levels -------------------------------------------------


async def test_round_robin_a_long_queue_of_one_key_does_not_delay_another_key(
    hatchet: Hatchet, tracker: Tracker
) -> None:
    @hatchet.task(name="fair", input_validator=Job, concurrency=limit("input.group", 1))
    async def fair(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span(input.group, label=input.n):
            await asyncio.sleep(0.05)
        return {"n": input.n}

    a_refs = await fair.aio_run_many_no_wait(
        [fair.create_bulk_run_item(Job(group="a", n=i)) for i in range(200)]
    )
    with tracker.lock:
        a_done_before = tracker.log.count(("end", "a"))
    b_ref = await fair.aio_run_no_wait(Job(group="b", n=1000))
    assert await outcome(b_ref) == {"n": 1000}
    with tracker.lock:
        b_start = tracker.log.index(("start", "b"))
        a_done_at_b_start = tracker.log[:b_start].count(("end", "a"))
    assert a_done_at_b_start - a_done_before <= 1, tracker.log[: b_start + 1]
    assert tracker.peak["a"] == 1
    await hatchet.runs.aio_bulk_cancel(
        BulkCancelReplayOpts(ids=[r.workflow_run_id for r in a_refs])
    )


@pytest.mark.parametrize("scope", SCOPES)
async def test_a_list_of_limits_holds_every_limit_at_once(
    hatchet: Hatchet, db_path: str, tracker: Tracker, scope: str
) -> None:
    async def work(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span(input.group, "*", label=input.n):
            await asyncio.sleep(0.02)
        return {"n": input.n}

    per_user_and_global = [limit("input.group", 1), limit("'global'", 2)]
    trigger = limited(hatchet, scope, "two-limits", per_user_and_global, work)
    run_ids = [await trigger(Job(group=f"u{u}", n=10 * u + i)) for i in range(3) for u in range(3)]
    await wait_until(lambda: all_have(db_path, run_ids, "COMPLETED"))

    assert tracker.peak == {"*": 2, "u0": 1, "u1": 1, "u2": 1}
    rows = spans(db_path, "two-limits")
    assert len(rows) == 9
    assert peak_overlap([(s, e) for _, _, s, e in rows]) == 2
    assert peak_by_group(rows) == {"u0": 1, "u1": 1, "u2": 1}
    assert slots(db_path) == []


async def test_a_workflow_level_limit_is_held_until_the_run_ends(
    hatchet: Hatchet, db_path: str
) -> None:
    log: list[tuple[str, int]] = []
    wf = hatchet.workflow(name="whole-run", input_validator=Job, concurrency=limit("'all'", 1))

    @wf.task()
    async def first(input: Job, ctx: Context) -> dict[str, int]:
        log.append(("first", input.n))
        await asyncio.sleep(0.01)
        return {"n": input.n}

    @wf.task(parents=[first])
    async def second(input: Job, ctx: Context) -> dict[str, int]:
        log.append(("second", input.n))
        await asyncio.sleep(0.01)
        return {"n": input.n}

    run_ids = [(await wf.aio_run_no_wait(Job(n=i))).workflow_run_id for i in range(3)]
    await wait_until(lambda: all_have(db_path, run_ids, "COMPLETED"))

    # The second task of a run ends before any task of the next run starts.
    assert log == [(task, n) for n in range(3) for task in ("first", "second")]
    by_run: dict[int, list[float]] = defaultdict(list)
    for _, n, started, finished in spans(db_path, "whole-run"):
        by_run[n] += [started, finished]
    runs = sorted((min(v), max(v)) for v in by_run.values())
    assert len(runs) == 3 and peak_overlap(runs) == 1


async def test_a_task_level_limit_in_a_dag_limits_only_that_task(
    hatchet: Hatchet, db_path: str, tracker: Tracker
) -> None:
    wf = hatchet.workflow(name="one-task-limited", input_validator=Job)

    @wf.task()
    async def fan(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span("fan", label=input.n):
            # Unlimited: all three runs' first tasks are running together.
            await tracker.until(lambda: tracker.running["fan"] == 3 or tracker.peak["fan"] == 3)
        return {"n": input.n}

    @wf.task(parents=[fan], concurrency=[limit("'narrow'", 1)])
    async def narrow(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span("narrow", label=input.n):
            await asyncio.sleep(0.02)
        return {"n": input.n}

    run_ids = [(await wf.aio_run_no_wait(Job(n=i))).workflow_run_id for i in range(3)]
    await wait_until(lambda: all_have(db_path, run_ids, "COMPLETED"))
    assert tracker.peak == {"fan": 3, "narrow": 1}
    assert peak_overlap([(s, e) for *_, s, e in spans(db_path, "one-task-limited", "fan")]) == 3
    assert peak_overlap([(s, e) for *_, s, e in spans(db_path, "one-task-limited", "narrow")]) == 1
    assert slots(db_path) == []


async def test_standalone_concurrency_is_task_level_and_an_int_is_a_constant_key(
    hatchet: Hatchet, db_path: str, tracker: Tracker
) -> None:
    @hatchet.task(name="three-at-once", input_validator=Job, concurrency=3)
    async def three(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span("all", label=input.n):
            await tracker.held()
        return {"n": input.n}

    noop = noop_task(hatchet)
    # Different inputs, one key: the int is the constant key of GROUP_ROUND_ROBIN.
    run_ids = [
        (await three.aio_run_no_wait(Job(group=f"g{i}", n=i))).workflow_run_id for i in range(5)
    ]
    await wait_until(lambda: tracker.count_started() == 3)
    await asyncio.wait_for(noop.aio_run(), 3)  # the engine stepped; two still wait
    assert sorted(tracker.started) == [0, 1, 2]
    assert slots(db_path) == [("TASK", r, "constant", "HELD") for r in run_ids[:3]] + [
        ("TASK", r, "constant", "WAITING") for r in run_ids[3:]
    ]
    assert stored_keys(db_path, run_ids[0]) == {"three-at-once": ["constant"]}

    tracker.release.set()
    await wait_until(lambda: all_have(db_path, run_ids, "COMPLETED"))
    assert tracker.peak["all"] == 3
    assert slots(db_path) == []


# -- schedule timeouts ---------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
async def test_waiters_past_their_schedule_timeout_are_cancelled_and_free_nothing(
    tmp_path: Path, tracker: Tracker, scope: str
) -> None:
    clock = TestClock(START)
    db = str(tmp_path / "timeouts.db")
    client = Hatchet(db=db, clock=clock)
    try:

        async def work(input: Job, ctx: Context) -> dict[str, int]:
            with tracker.span("k", label=input.n):
                if input.n == 0:
                    await tracker.held()
            return {"n": input.n}

        trigger = limited(
            client,
            scope,
            "timeouts",
            limit("'k'", 1),
            work,
            schedule_timeout=timedelta(minutes=1),
            execution_timeout=timedelta(hours=1),
        )
        noop = noop_task(client)
        holder = await trigger(Job(n=0))
        await wait_until(lambda: tracker.started == [0])
        early = await trigger(Job(n=1))  # deadline START + 60 s
        clock.advance(timedelta(seconds=30))
        late = await trigger(Job(n=2))  # deadline START + 90 s
        clock.advance(timedelta(seconds=40))

        await wait_until(lambda: run_status(db, early) == "CANCELLED")
        events = [e.event_type for e in client.runs.get(early).task_events]
        assert V1TaskEventType.SCHEDULING_TIMED_OUT in events, events
        # The expired waiter held nothing: the holder still runs alone, `late` waits.
        await asyncio.wait_for(noop.aio_run(), 3)
        assert tracker.started == [0]
        assert run_status(db, late) == "QUEUED"
        owner = "RUN" if scope == "workflow" else "TASK"
        assert slots(db) == [(owner, holder, "k", "HELD"), (owner, late, "k", "WAITING")]

        tracker.release.set()
        await wait_until(lambda: all_have(db, [holder, late], "COMPLETED"))
        assert tracker.started == [0, 2]
        assert tracker.peak["k"] == 1
        assert slots(db) == []
    finally:
        tracker.release.set()
        client.close()


# -- keys ----------------------------------------------------------------------------


async def test_keys_come_from_input_metadata_and_the_run_id(
    hatchet: Hatchet, db_path: str, tracker: Tracker
) -> None:
    def build(name: str, expression: str) -> Standalone[Job, dict[str, int]]:
        @hatchet.task(
            name=name, input_validator=Job, concurrency=limit(expression, 1, CANCEL_NEWEST)
        )
        async def work(input: Job, ctx: Context) -> dict[str, int]:
            with tracker.span(name, label=input.n):
                await tracker.held()
            return {"n": input.n}

        return work

    by_tenant = build("by-tenant", "additional_metadata.tenant")
    by_run = build("by-run-id", "workflow_run_id")
    by_both = build("by-both", "input.group + '/' + additional_metadata.tenant")

    async def run(task: Standalone[Job, dict[str, int]], n: int, group: str, tenant: str) -> str:
        ref = await task.aio_run_no_wait(
            Job(group=group, n=n), additional_metadata={"tenant": tenant}
        )
        return ref.workflow_run_id

    t1 = await run(by_tenant, 1, "x", "t1")
    t1_again = await run(by_tenant, 2, "y", "t1")  # same tenant, other input: cancelled
    t2 = await run(by_tenant, 3, "x", "t2")
    own = [await run(by_run, 10 + i, "x", "t1") for i in range(3)]  # a key each
    both = [
        await run(by_both, 20, "u1", "t1"),
        await run(by_both, 21, "u1", "t2"),
        await run(by_both, 22, "u2", "t1"),
    ]
    both_again = await run(by_both, 23, "u1", "t1")

    assert run_status(db_path, t1_again) == "CANCELLED"
    assert run_status(db_path, both_again) == "CANCELLED"
    await wait_until(lambda: tracker.count_started() == 8)
    assert stored_keys(db_path, t1) == {"by-tenant": ["t1"]}
    assert stored_keys(db_path, t2) == {"by-tenant": ["t2"]}
    assert [stored_keys(db_path, r) for r in own] == [{"by-run-id": [r]} for r in own]
    assert [stored_keys(db_path, r) for r in both] == [
        {"by-both": ["u1/t1"]},
        {"by-both": ["u1/t2"]},
        {"by-both": ["u2/t1"]},
    ]
    tracker.release.set()
    await wait_until(lambda: all_have(db_path, [t1, t2, *own, *both], "COMPLETED"))


async def test_a_key_that_fails_on_the_run_refuses_the_trigger_and_stores_nothing(
    hatchet: Hatchet, db_path: str
) -> None:
    @hatchet.task(name="needs-user", concurrency=limit("input.user", 1))
    async def needs_user(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    @hatchet.task(name="needs-tenant", concurrency=limit("additional_metadata.tenant", 1))
    async def needs_tenant(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    wf = hatchet.workflow(name="late-key")

    @wf.task()
    async def root(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    @wf.task(parents=[root], concurrency=[limit("input.user", 1)])
    async def child(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    ok = EmptyModel.model_validate({"user": "u1"})
    assert await needs_user.aio_run(ok) == {"ok": 1}
    before = counts(db_path)
    assert before == (1, 1, 0)

    with pytest.raises(LimitKeyError) as missing:
        await needs_user.aio_run_no_wait(EmptyModel())
    assert isinstance(missing.value, ValueError)
    assert "'needs-user'" in str(missing.value) and "'input.user'" in str(missing.value)

    with pytest.raises(LimitKeyError, match=r"'input\.user' gave int 5, not a string"):
        await needs_user.aio_run_no_wait(EmptyModel.model_validate({"user": 5}))
    with pytest.raises(LimitKeyError, match="not a string"):
        await needs_user.aio_run_no_wait(EmptyModel.model_validate({"user": None}))
    with pytest.raises(LimitKeyError, match=r"'additional_metadata\.tenant'"):
        await needs_tenant.aio_run_no_wait(EmptyModel())
    # A bulk trigger with one bad item stores none of them.
    with pytest.raises(LimitKeyError):
        await needs_user.aio_run_many_no_wait(
            [
                needs_user.create_bulk_run_item(ok),
                needs_user.create_bulk_run_item(EmptyModel()),
            ]
        )
    # A task-level key of a task that runs later is evaluated at trigger all the same.
    with pytest.raises(LimitKeyError) as later:
        await wf.aio_run_no_wait(EmptyModel())
    assert "'late-key'" in str(later.value) and "'child'" in str(later.value)

    assert counts(db_path) == before


def test_definition_errors_name_the_definition_and_the_expression(hatchet: Hatchet) -> None:
    def body(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {}

    with pytest.raises(InvalidDefinitionError) as bad_task:
        hatchet.task(name="bad-cel", concurrency=limit("input.(", 1))(body)
    assert "'bad-cel'" in str(bad_task.value) and "input.(" in str(bad_task.value)

    with pytest.raises(InvalidDefinitionError) as bad_workflow:
        hatchet.workflow(name="bad-wf-cel", concurrency=limit("1 +", 1))
    assert "workflow 'bad-wf-cel'" in str(bad_workflow.value) and "1 +" in str(bad_workflow.value)

    host = hatchet.workflow(name="host")
    with pytest.raises(InvalidDefinitionError) as bad_step:
        host.task(name="step", concurrency=[limit("input.ok", 1), limit("}{", 1)])(body)
    assert "workflow 'host', task 'step'" in str(bad_step.value)
    assert "}{" in str(bad_step.value)

    with pytest.raises(ValidationError, match="max_runs"):
        ConcurrencyExpression(expression="'k'", max_runs=0)
    unchecked = ConcurrencyExpression.model_construct(
        expression="'k'", max_runs=0, limit_strategy=GRR
    )
    with pytest.raises(InvalidDefinitionError, match=r"workflow 'zero'.*max_runs must be positive"):
        hatchet.workflow(name="zero", concurrency=unchecked)
    with pytest.raises(InvalidDefinitionError, match="'zero-int'"):
        hatchet.task(name="zero-int", concurrency=0)(body)
    with pytest.raises(InvalidDefinitionError, match="'not-a-limit'"):
        hatchet.workflow(name="not-a-limit", concurrency=["input.user"])  # type: ignore[list-item]

    for strategy in (ConcurrencyLimitStrategy.DROP_NEWEST, ConcurrencyLimitStrategy.QUEUE_NEWEST):
        with pytest.raises(InvalidDefinitionError) as deprecated:
            hatchet.workflow(name=f"old-{strategy.value}", concurrency=limit("'k'", 1, strategy))
        message = str(deprecated.value)
        assert f"'old-{strategy.value}'" in message and strategy.value in message
        assert "deprecated" in message


# -- replay --------------------------------------------------------------------------


async def test_a_replayed_run_waits_for_its_workflow_limit_again(
    hatchet: Hatchet, db_path: str, tracker: Tracker
) -> None:
    wf = hatchet.workflow(name="replayed", input_validator=Job, concurrency=limit("'r'", 1))

    @wf.task()
    async def work(input: Job, ctx: Context) -> dict[str, int]:
        with tracker.span("r", label=input.n):
            if input.n == 2:
                await tracker.held()
        return {"n": input.n}

    noop = noop_task(hatchet)
    first = await wf.aio_run_no_wait(Job(n=1))
    await outcome(first)
    holder = (await wf.aio_run_no_wait(Job(n=2))).workflow_run_id
    await wait_until(lambda: tracker.started == [1, 2])

    await hatchet.runs.aio_replay(first.workflow_run_id)
    await asyncio.wait_for(noop.aio_run(), 3)
    assert tracker.started == [1, 2]  # the replay waits behind the holder
    assert run_status(db_path, first.workflow_run_id) == "QUEUED"
    assert [(r, st) for _, r, _, st in slots(db_path)] == [
        (holder, "HELD"),
        (first.workflow_run_id, "WAITING"),
    ]

    tracker.release.set()
    await wait_until(lambda: all_have(db_path, [first.workflow_run_id, holder], "COMPLETED"))
    assert tracker.started == [1, 2, 1]
    assert tracker.peak["r"] == 1
    assert slots(db_path) == []


# -- two worker processes --------------------------------------------------------------


def start_worker(db: str, log: Path, slots_per_worker: int) -> subprocess.Popen[bytes]:
    return spawn_worker("limits_worker", [db, str(slots_per_worker)], log)


@pytest.mark.timeout(60)
def test_limits_hold_across_two_worker_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    client = Hatchet(db=db, auto_worker=False)
    serial = limits_worker.build(client)
    runs = 48
    refs = serial.run_many_no_wait(
        [
            serial.create_bulk_run_item(limits_worker.Job(group=f"g{i % 3}", n=i))
            for i in range(runs)
        ]
    )
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    procs = [start_worker(db, log, 1) for log in logs]
    try:
        for proc, log in zip(procs, logs, strict=True):
            wait_until_sync(partial(worker_up, db, proc), what="worker registration")
            assert proc.poll() is None, log.read_text()
        results = [ref.result() for ref in refs]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in zip(procs, logs, strict=True):
            assert proc.wait(30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        client.close()

    assert sorted(int(r["n"]) for r in results) == list(range(runs))
    assert {int(r["pid"]) for r in results} == {p.pid for p in procs}  # both workers served
    rows = query(
        db,
        """SELECT json_extract(w.input, '$.group'), t.status, t.worker_id,
                  json_extract(t.output, '$.began'), json_extract(t.output, '$.ended')
           FROM task_runs t JOIN workflow_runs w ON w.id = t.workflow_run_id""",
    )
    assert len(rows) == runs and {status for _, status, *_ in rows} == {"COMPLETED"}
    # The bodies' own wall-clock times (one machine), stored in the outputs: no two runs
    # of a key overlapped. (Not started_at/finished_at: each process reads `now` before
    # it waits for the write lock, so a claim committed just after the settle that
    # admitted it can carry a `now` some microseconds earlier; see the report.)
    bodies: dict[str, list[tuple[float, float]]] = defaultdict(list)
    served: dict[str, set[str]] = defaultdict(set)
    for group, _, worker, began, ended in rows:
        bodies[str(group)].append((float(str(began)), float(str(ended))))
        served[str(group)].add(str(worker))
    assert {g: peak_overlap(iv) for g, iv in bodies.items()} == {f"g{i}": 1 for i in range(3)}
    # One key's runs went to both processes: the limit was shared, not per process.
    assert any(len(workers) == 2 for workers in served.values()), served
    assert slots(db) == []


# -- the fast key path agrees with cel-python ------------------------------------------

NAMES = ["a", "b", "user", "tenant", "_x", "in", "null", "true", "as"]
names = st.sampled_from(NAMES) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,3}", fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)  # past int64, which CEL refuses
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(names | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(names, json_values, max_size=5)
paths = st.builds(
    lambda root, parts, pad: f"{pad}{root}.{'.'.join(parts)}{pad}",
    st.sampled_from(["input", "additional_metadata"]),
    st.lists(names, min_size=1, max_size=3),
    st.sampled_from(["", " ", "\t"]),
)
literals = st.builds(
    lambda quote, text, pad: f"{pad}{quote}{text}{quote}{pad}",
    st.sampled_from(["'", '"']),
    st.text(max_size=8),
    st.sampled_from(["", " "]),
)


def parses(expression: str) -> bool:
    try:
        compile_expression(expression)
    except InvalidCELError:
        return False
    return True


def fast_and_full(expression: str, variables: dict[str, Any]) -> tuple[Any, Any]:
    """(key_value's answer, cel-python's): ("ok", type, value) or ("error", message)."""
    try:
        value = key_value(expression, variables)
        fast: tuple[Any, ...] = ("ok", type(value), value)
    except ValueError as exc:
        fast = ("error", str(exc))
    full_value, error = evaluate_value(expression, variables)
    full = ("error", error) if error is not None else ("ok", type(full_value), full_value)
    return fast, full


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=paths | literals, inp=objects, metadata=objects)
def test_key_value_agrees_with_cel_python(
    expression: str, inp: dict[str, Any], metadata: dict[str, Any]
) -> None:
    # Only expressions a definition accepts reach key_value (the CEL is checked there).
    assume(parses(expression))
    variables = {"input": inp, "additional_metadata": metadata, "workflow_run_id": "run-1"}
    fast, full = fast_and_full(expression, variables)
    assert fast == full


@pytest.mark.parametrize("big", [2**63, 2**70, -(2**63) - 1, 2**63 - 1, -(2**63)])
def test_key_value_agrees_with_cel_python_when_the_input_has_a_huge_int(big: int) -> None:
    """cel-python refuses data holding an int beyond 64 bits, wherever it is: so does
    the fast path (and both take the int64 bounds)."""
    variables = {"input": {"user": "u1", "big": big}, "additional_metadata": {}}
    fast, full = fast_and_full("input.user", variables)
    assert fast == full
