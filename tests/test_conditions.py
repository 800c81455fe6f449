"""Task conditions on DAG tasks: `wait_for`, `skip_if` and `cancel_if` with sleep, user
event and parent-output conditions, `or_` groups and several groups; which action wins
when several are met at once; skipped tasks, all-parents-skipped and cancelled
descendants; `consider_events_since` and scopes; gated roots; gated tasks holding no
slot; `ctx.trigger_data`; replay; definition-time errors.

Sleeps run on a `TestClock` moved by hand. "The engine has stepped since the clock
moved" is proven by running a trivial task after the move; a push is settled when it
returns (it meets conditions inside its own transaction)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hatchlite import (
    ClientConfig,
    Context,
    DefaultFilter,
    DurableContext,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    InvalidDefinitionError,
    ParentCondition,
    SleepCondition,
    Standalone,
    UserEventCondition,
    V1TaskStatus,
    Workflow,
    or_,
)
from hatchlite.models import V1TaskEventType
from hatchlite.testing import TestClock
from tests.conftest import outcome, query, wait_until, wait_until_sync
from tests.procs import cond_worker
from tests.test_processes import ROOT

pytestmark = pytest.mark.timeout(20)

START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
E = V1TaskEventType


class Num(EmptyModel):
    n: int = 0


@dataclass
class Env:
    hatchet: Hatchet
    clock: TestClock
    db: str
    ran: Counter[str] = field(default_factory=Counter)
    _noop: Standalone[EmptyModel, dict[str, bool]] | None = None

    async def stepped(self) -> None:
        """Run a trivial task: the engine has taken a step since the clock last moved."""
        if self._noop is None:

            @self.hatchet.task(name="noop")
            def noop(input: EmptyModel, ctx: Context) -> dict[str, bool]:
                return {"ok": True}

            self._noop = noop
        await asyncio.wait_for(self._noop.aio_run(), 3)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = TestClock(START)
    db = str(tmp_path / "conditions.db")
    client = Hatchet(db=db, clock=clock)
    yield Env(client, clock, db)
    client.close()


# -- reading the database ------------------------------------------------------------


def task_row(db: str, run_id: str, name: str) -> tuple[str, str | None]:
    """(status, output) of one task run of a run."""
    rows = query(
        db,
        "SELECT status, output FROM task_runs WHERE workflow_run_id = ? AND task_name = ?",
        (run_id, name),
    )
    assert len(rows) == 1, rows
    status, output = rows[0]
    return str(status), output if output is None else str(output)


def status_of(db: str, run_id: str, name: str) -> str:
    return task_row(db, run_id, name)[0]


def task_id(db: str, run_id: str, name: str) -> str:
    [(found,)] = query(
        db,
        "SELECT id FROM task_runs WHERE workflow_run_id = ? AND task_name = ?",
        (run_id, name),
    )
    return str(found)


def gate(db: str, run_id: str, name: str) -> list[tuple[str, str, str, str]]:
    """(action, kind, readable_key, status) of the conditions of a task's gate."""
    return [
        (str(a), str(k), str(r), str(s))
        for a, k, r, s in query(
            db,
            """SELECT c.action, c.kind, c.readable_key, c.status FROM durable_conditions c
               JOIN task_runs t ON t.id = c.task_run_id
               WHERE t.workflow_run_id = ? AND t.task_name = ? AND c.node_id = 0
               ORDER BY c.idx""",
            (run_id, name),
        )
    ]


def gate_open(db: str, run_id: str, name: str) -> bool:
    return any(s == "OPEN" for *_, s in gate(db, run_id, name))


def run_status(db: str, run_id: str) -> str:
    return str(query(db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


def events_of(hatchet: Hatchet, run_id: str, task: str) -> list[tuple[V1TaskEventType, str]]:
    details = hatchet.runs.get(run_id)
    ids = {t.task_external_id: t.display_name for t in details.tasks}
    tid = next((i for i, name in ids.items() if name.startswith(f"{task}-") or name == task), None)
    return [(e.event_type, e.message) for e in details.task_events if e.task_id == tid]


async def done(db: str, run_id: str) -> str:
    """Wait for the run to end; its status."""
    await wait_until(lambda: run_status(db, run_id) in ("COMPLETED", "FAILED", "CANCELLED"))
    return run_status(db, run_id)


# -- 1. sleep conditions -----------------------------------------------------------


async def test_sleep_wait_for_starts_its_timer_when_the_parents_are_done(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    wf = h.workflow(name="nap_after")

    @wf.task(wait_for=[UserEventCondition(event_key="nap:first")])
    def first(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 1}

    @wf.task(parents=[first], wait_for=[SleepCondition(timedelta(hours=1))])
    def later(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        env.ran["later"] += 1
        return {"trigger": ctx.trigger_data}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "first"))
    # The child's timer has not started: its parent has not run.
    assert gate(db, run_id, "later") == []
    clock.advance(timedelta(hours=2))
    await h.event.aio_push("nap:first", {})
    await wait_until(lambda: gate_open(db, run_id, "later"))
    released = clock.time()
    [(wake_at,)] = query(
        db,
        "SELECT wake_at FROM durable_conditions WHERE task_run_id = ? AND node_id = 0",
        (task_id(db, run_id, "later"),),
    )
    assert wake_at == pytest.approx(released + 3600)

    clock.advance(timedelta(minutes=59))
    await env.stepped()
    assert status_of(db, run_id, "later") == "PENDING"
    assert env.ran["later"] == 0
    # A gated task is not listed among the run's task runs until it is decided.
    assert set((await h.runs.aio_get_details(run_id)).task_runs) == {"first"}

    clock.advance(timedelta(minutes=1))
    result = await outcome(ref)
    assert result["later"] == {"trigger": {"sleep:1h": [{"sleep_duration": "1h"}]}}
    assert env.ran["later"] == 1
    assert gate(db, run_id, "later") == [("QUEUE", "SLEEP", "sleep:1h", "MET")]


async def test_a_zero_sleep_is_met_when_the_gate_opens(env: Env) -> None:
    wf = env.hatchet.workflow(name="zero_nap")

    @wf.task()
    def first(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(parents=[first], wait_for=[SleepCondition(timedelta(0))])
    def second(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    result = await asyncio.wait_for(wf.aio_run(), 3)
    assert result["second"] == {"trigger": {"sleep:0h": [{"sleep_duration": "0h"}]}}


async def test_sleep_skip_if_skips_a_task_still_waiting(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    wf = h.workflow(name="deadline")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="deadline:approve")],
        skip_if=[SleepCondition(timedelta(days=1))],
    )
    def approve(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        env.ran["approve"] += 1
        return {"approved": True}

    @wf.task(parents=[begin, approve])
    def report(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"approve_skipped": ctx.was_skipped(approve)}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "approve"))
    clock.advance(timedelta(hours=23))
    await env.stepped()
    assert status_of(db, run_id, "approve") == "PENDING"
    clock.advance(timedelta(hours=1))
    result = await outcome(ref)
    assert result["approve"] == {"skipped": True}
    assert result["report"] == {"approve_skipped": True}
    assert env.ran["approve"] == 0
    assert (E.SKIPPED, "skipped: a skip_if condition was met") in events_of(h, run_id, "approve")
    # A late approval changes nothing: the gate is closed.
    await h.event.aio_push("deadline:approve", {})
    assert gate(db, run_id, "approve") == [
        ("QUEUE", "EVENT", "deadline:approve", "CLOSED"),
        ("SKIP", "SLEEP", "sleep:24h", "MET"),
    ]


async def test_sleep_cancel_if_cancels_the_task_and_its_descendants(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    wf = h.workflow(name="expire")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="expire:confirm")],
        cancel_if=[SleepCondition(timedelta(minutes=30))],
    )
    def confirm(input: EmptyModel, ctx: Context) -> None:
        env.ran["confirm"] += 1

    @wf.task(parents=[confirm])
    def ship(input: EmptyModel, ctx: Context) -> None:
        env.ran["ship"] += 1

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "confirm"))
    clock.advance(timedelta(minutes=30))
    assert await done(db, run_id) == "CANCELLED"
    assert status_of(db, run_id, "confirm") == "CANCELLED"
    assert status_of(db, run_id, "ship") == "CANCELLED"
    assert env.ran == Counter()
    await h.event.aio_push("expire:confirm", {})
    await env.stepped()
    assert env.ran == Counter()


# -- 2. user event conditions ------------------------------------------------------


async def test_event_wait_for_drops_events_pushed_before_the_gate_opens(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="late_listener")

    @wf.task(wait_for=[UserEventCondition(event_key="ll:first")])
    def first(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[first],
        wait_for=[UserEventCondition(event_key="ll:second", expression="input.ok == true")],
    )
    def second(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        env.ran["second"] += 1
        return {"trigger": ctx.trigger_data}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "first"))
    await h.event.aio_push("ll:second", {"ok": True, "early": True})  # before its gate opens
    await h.event.aio_push("ll:first", {})
    await wait_until(lambda: gate_open(db, run_id, "second"))
    await env.stepped()
    assert status_of(db, run_id, "second") == "PENDING"
    await h.event.aio_push("ll:second", {"ok": False})  # the expression is false
    await h.event.aio_push("ll:other", {"ok": True})  # another key
    assert gate(db, run_id, "second") == [("QUEUE", "EVENT", "ll:second", "OPEN")]
    await h.event.aio_push("ll:second", {"ok": True, "n": 2})
    result = await outcome(ref)
    assert result["second"] == {"trigger": {"ll:second": [{"ok": True, "n": 2}]}}
    assert env.ran["second"] == 1


async def test_event_expression_sees_additional_metadata(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="meta_gate")

    @wf.task(
        wait_for=[
            UserEventCondition(event_key="meta:go", expression="additional_metadata.region == 'eu'")
        ]
    )
    def gated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    @wf.task(parents=[gated])
    def after(input: EmptyModel, ctx: Context) -> None:
        return None

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "gated"))
    await h.event.aio_push("meta:go", {"v": 1}, additional_metadata={"region": "us"})
    assert status_of(db, run_id, "gated") == "PENDING"
    await h.event.aio_push("meta:go", {"v": 2}, additional_metadata={"region": "eu"})
    assert (await outcome(ref))["gated"] == {"trigger": {"meta:go": [{"v": 2}]}}


async def test_one_push_meets_the_waits_of_every_run(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="broadcast", input_validator=Num)

    @wf.task(wait_for=[UserEventCondition(event_key="broadcast:go")])
    def gated(input: Num, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    @wf.task(parents=[gated])
    def after(input: Num, ctx: Context) -> None:
        return None

    refs = [await wf.aio_run_no_wait(Num(n=i)) for i in range(5)]
    for ref in refs:
        await wait_until(lambda ref=ref: gate_open(db, ref.workflow_run_id, "gated"))
    await h.event.aio_push("broadcast:go", {})
    results = [await outcome(ref) for ref in refs]
    assert [r["gated"]["n"] for r in results] == list(range(5))


async def test_event_skip_if_and_cancel_if(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    wf = h.workflow(name="review")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[SleepCondition(timedelta(hours=1))],
        skip_if=[UserEventCondition(event_key="review:skip")],
        cancel_if=[UserEventCondition(event_key="review:abort", expression="input.really")],
    )
    def review(input: EmptyModel, ctx: Context) -> None:
        env.ran["review"] += 1

    @wf.task(parents=[begin, review])
    def publish(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        env.ran["publish"] += 1
        return {"review_skipped": ctx.was_skipped(review)}

    skipped = await wf.aio_run_no_wait()
    await wait_until(lambda: gate_open(db, skipped.workflow_run_id, "review"))
    await h.event.aio_push("review:skip", {})
    result = await outcome(skipped)
    assert result["review"] == {"skipped": True}
    assert result["publish"] == {"review_skipped": True}

    cancelled = await wf.aio_run_no_wait()
    run_id = cancelled.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "review"))
    await h.event.aio_push("review:abort", {"really": False})
    assert status_of(db, run_id, "review") == "PENDING"
    await h.event.aio_push("review:abort", {"really": True})
    assert await done(db, run_id) == "CANCELLED"
    assert (status_of(db, run_id, "review"), status_of(db, run_id, "publish")) == (
        "CANCELLED",
        "CANCELLED",
    )

    ran = await wf.aio_run_no_wait()
    await wait_until(lambda: gate_open(db, ran.workflow_run_id, "review"))
    clock.advance(timedelta(hours=1))
    assert (await outcome(ran))["publish"] == {"review_skipped": False}
    assert env.ran == Counter({"review": 1, "publish": 2})


# -- 3. parent conditions ------------------------------------------------------------


def branch_workflow(env: Env) -> Workflow[Num]:
    wf = env.hatchet.workflow(name="branch", input_validator=Num)

    @wf.task()
    def start(input: Num, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    @wf.task(parents=[start], wait_for=[ParentCondition(start, "output.n > 3")])
    def left(input: Num, ctx: Context) -> dict[str, str]:
        env.ran["left"] += 1
        return {"side": "left"}

    @wf.task(parents=[start], wait_for=[ParentCondition(start, "output.n <= 3")])
    def right(input: Num, ctx: Context) -> dict[str, str]:
        env.ran["right"] += 1
        return {"side": "right"}

    @wf.task(parents=[left, right])
    def join(input: Num, ctx: Context) -> dict[str, Any]:
        taken = right if ctx.was_skipped(left) else left
        try:
            ctx.task_output(left if taken is right else right)
        except ValueError as exc:
            error = str(exc)
        return {
            "left_skipped": ctx.was_skipped(left),
            "right_skipped": ctx.was_skipped(right),
            "taken": ctx.task_output(taken)["side"],
            "error": error,
        }

    return wf


@pytest.mark.parametrize(("n", "taken", "skipped"), [(5, "left", "right"), (2, "right", "left")])
async def test_parent_output_branch(env: Env, n: int, taken: str, skipped: str) -> None:
    wf = branch_workflow(env)
    ref = await wf.aio_run_no_wait(Num(n=n))
    result = await outcome(ref)
    assert result[skipped] == {"skipped": True}
    assert result[taken] == {"side": taken}
    assert result["join"] == {
        "left_skipped": skipped == "left",
        "right_skipped": skipped == "right",
        "taken": taken,
        "error": f"{skipped} was skipped",
    }
    assert env.ran == Counter({taken: 1})
    run_id = ref.workflow_run_id
    assert status_of(env.db, run_id, skipped) == "COMPLETED"
    assert run_status(env.db, run_id) == "COMPLETED"
    assert (E.SKIPPED, "skipped: its wait_for can never be met") in events_of(
        env.hatchet, run_id, skipped
    )
    assert not any(t == E.SKIPPED for t, _ in events_of(env.hatchet, run_id, taken))
    details = await env.hatchet.runs.aio_get_details(run_id)
    assert details.task_runs[skipped].status == V1TaskStatus.COMPLETED
    assert details.task_runs[skipped].output == {"skipped": True}


async def test_parent_condition_skip_if_and_cancel_if(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="gatekeeper", input_validator=Num)

    @wf.task()
    def score(input: Num, ctx: Context) -> dict[str, int]:
        return {"score": input.n}

    @wf.task(
        parents=[score],
        skip_if=[ParentCondition(score, "output.score < 10")],
        cancel_if=[ParentCondition(score, "output.score < 0", readable_data_key="negative")],
    )
    def award(input: Num, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    @wf.task(parents=[score, award])
    def notify(input: Num, ctx: Context) -> dict[str, bool]:
        return {"award_skipped": ctx.was_skipped(award)}

    ran = await outcome(await wf.aio_run_no_wait(Num(n=50)))
    # No wait_for: queued as soon as neither skip nor cancel is met; nothing carried.
    assert ran["award"] == {"trigger": {}}
    assert ran["notify"] == {"award_skipped": False}

    skipped = await outcome(await wf.aio_run_no_wait(Num(n=5)))
    assert skipped["award"] == {"skipped": True}
    assert skipped["notify"] == {"award_skipped": True}

    # Both met at once (a negative score is also under 10): cancel beats skip.
    ref = await wf.aio_run_no_wait(Num(n=-1))
    assert await done(db, ref.workflow_run_id) == "CANCELLED"
    assert status_of(db, ref.workflow_run_id, "award") == "CANCELLED"
    assert status_of(db, ref.workflow_run_id, "notify") == "CANCELLED"
    assert status_of(db, ref.workflow_run_id, "score") == "COMPLETED"


async def test_parent_condition_on_a_grandparent(env: Env) -> None:
    wf = env.hatchet.workflow(name="lineage", input_validator=Num)

    @wf.task()
    def root(input: Num, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    @wf.task(parents=[root])
    def middle(input: Num, ctx: Context) -> dict[str, int]:
        return {"m": 1}

    @wf.task(parents=[middle], skip_if=[ParentCondition(root, "output.n == 0")])
    def leaf(input: Num, ctx: Context) -> dict[str, str]:
        return {"leaf": "ran"}

    assert (await asyncio.wait_for(wf.aio_run(Num(n=1)), 3))["leaf"] == {"leaf": "ran"}
    assert (await asyncio.wait_for(wf.aio_run(Num(n=0)), 3))["leaf"] == {"skipped": True}


async def test_parent_condition_payload_is_in_trigger_data(env: Env) -> None:
    wf = env.hatchet.workflow(name="carry")

    @wf.task()
    def make(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"size": 7}

    @wf.task(parents=[make], wait_for=[ParentCondition(make, "output.size > 1")])
    def use(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    result = await asyncio.wait_for(wf.aio_run(), 3)
    assert result["use"] == {"trigger": {"make:output.size > 1": [{"size": 7}]}}


async def test_parent_condition_failing_on_the_output_is_not_met(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    wf = env.hatchet.workflow(name="odd_output")

    @wf.task()
    def make(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"size": "big"}

    @wf.task(parents=[make], wait_for=[ParentCondition(make, "output.size > 1")])
    def use(input: EmptyModel, ctx: Context) -> None:
        env.ran["use"] += 1

    with caplog.at_level(logging.WARNING, logger="hatchlite"):
        result = await asyncio.wait_for(wf.aio_run(), 3)
    assert result["use"] == {"skipped": True}
    assert env.ran["use"] == 0
    assert any("output.size > 1" in r.getMessage() for r in caplog.records)


# -- 4. or_ groups and several groups ----------------------------------------------


def race_workflow(env: Env) -> Workflow[EmptyModel]:
    wf = env.hatchet.workflow(name="race")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[
            or_(SleepCondition(timedelta(minutes=10)), UserEventCondition(event_key="race:go"))
        ],
    )
    def racer(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        env.ran["racer"] += 1
        return {"trigger": ctx.trigger_data}

    return wf


async def test_or_group_event_wins(env: Env) -> None:
    wf = race_workflow(env)
    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(env.db, run_id, "racer"))
    await env.hatchet.event.aio_push("race:go", {"first": True})
    assert (await outcome(ref))["racer"] == {"trigger": {"race:go": [{"first": True}]}}
    # The losing timer is closed; it never fires later.
    assert gate(env.db, run_id, "racer") == [
        ("QUEUE", "SLEEP", "sleep:10m", "CLOSED"),
        ("QUEUE", "EVENT", "race:go", "MET"),
    ]
    env.clock.advance(timedelta(hours=1))
    await env.stepped()
    assert env.ran["racer"] == 1


async def test_or_group_sleep_wins(env: Env) -> None:
    wf = race_workflow(env)
    ref = await wf.aio_run_no_wait()
    await wait_until(lambda: gate_open(env.db, ref.workflow_run_id, "racer"))
    env.clock.advance(timedelta(minutes=10))
    result = await outcome(ref)
    assert result["racer"] == {"trigger": {"sleep:10m": [{"sleep_duration": "10m"}]}}
    await env.hatchet.event.aio_push("race:go", {})
    await env.stepped()
    assert env.ran["racer"] == 1


async def test_every_group_must_be_met(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="quorum")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[
            UserEventCondition(event_key="q:legal"),
            or_(UserEventCondition(event_key="q:cfo"), UserEventCondition(event_key="q:ceo")),
            or_(
                SleepCondition(timedelta(hours=2)),
                UserEventCondition(event_key="q:now", readable_data_key="rush"),
            ),
        ],
    )
    def sign(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "sign"))
    await h.event.aio_push("q:ceo", {"who": "ceo"})
    await h.event.aio_push("q:legal", {"who": "legal"})
    assert status_of(db, run_id, "sign") == "PENDING"
    assert [s for *_, s in gate(db, run_id, "sign")] == ["MET", "OPEN", "MET", "OPEN", "OPEN"]
    await h.event.aio_push("q:legal", {"who": "legal again"})  # met already: no change
    env.clock.advance(timedelta(hours=2))
    result = await outcome(ref)
    assert result["sign"] == {
        "trigger": {
            "q:legal": [{"who": "legal"}],
            "q:ceo": [{"who": "ceo"}],
            "sleep:2h": [{"sleep_duration": "2h"}],
        }
    }


async def test_skip_if_or_group(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="skip_either", input_validator=Num)

    @wf.task()
    def begin(input: Num, ctx: Context) -> dict[str, int]:
        return {"n": input.n}

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="se:go")],
        skip_if=[
            or_(ParentCondition(begin, "output.n == 1"), UserEventCondition(event_key="se:skip"))
        ],
    )
    def work(input: Num, ctx: Context) -> None:
        env.ran["work"] += 1

    # The parent member of the or_ is met at once.
    assert (await asyncio.wait_for(wf.aio_run(Num(n=1)), 3))["work"] == {"skipped": True}
    # Its parent member is false; the event member can still skip it.
    ref = await wf.aio_run_no_wait(Num(n=2))
    await wait_until(lambda: gate_open(db, ref.workflow_run_id, "work"))
    await h.event.aio_push("se:skip", {})
    assert (await outcome(ref))["work"] == {"skipped": True}
    assert env.ran["work"] == 0


# -- 5. which action wins ----------------------------------------------------------


async def test_cancel_beats_skip_at_the_same_moment(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    wf = h.workflow(name="tie")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="tie:never")],
        skip_if=[SleepCondition(timedelta(hours=1))],
        cancel_if=[SleepCondition(timedelta(hours=1), readable_data_key="cancel:1h")],
    )
    def timed(input: EmptyModel, ctx: Context) -> None:
        env.ran["timed"] += 1

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="tie:both", readable_data_key="go")],
        skip_if=[UserEventCondition(event_key="tie:both", readable_data_key="skip")],
        cancel_if=[UserEventCondition(event_key="tie:both", readable_data_key="cancel")],
    )
    def evented(input: EmptyModel, ctx: Context) -> None:
        env.ran["evented"] += 1

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "timed") and gate_open(db, run_id, "evented"))
    await h.event.aio_push("tie:both", {})
    assert status_of(db, run_id, "evented") == "CANCELLED"
    clock.advance(timedelta(hours=1))
    assert await done(db, run_id) == "CANCELLED"
    assert status_of(db, run_id, "timed") == "CANCELLED"
    assert env.ran == Counter()


async def test_skip_beats_queue_at_the_same_moment(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="tie_skip")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="ts:both", readable_data_key="go")],
        skip_if=[UserEventCondition(event_key="ts:both", readable_data_key="skip")],
    )
    def maybe(input: EmptyModel, ctx: Context) -> None:
        env.ran["maybe"] += 1

    ref = await wf.aio_run_no_wait()
    await wait_until(lambda: gate_open(db, ref.workflow_run_id, "maybe"))
    await h.event.aio_push("ts:both", {})
    assert (await outcome(ref))["maybe"] == {"skipped": True}
    assert env.ran == Counter()


async def test_the_first_action_met_wins(env: Env) -> None:
    """Queue met first: a skip condition met later changes nothing."""
    h, db = env.hatchet, env.db
    wf = h.workflow(name="first_wins")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="fw:go")],
        skip_if=[UserEventCondition(event_key="fw:skip")],
        cancel_if=[UserEventCondition(event_key="fw:cancel")],
    )
    def work(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"ran": "yes"}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "work"))
    await h.event.aio_push("fw:go", {})
    assert (await outcome(ref))["work"] == {"ran": "yes"}
    await h.event.aio_push("fw:skip", {})
    await h.event.aio_push("fw:cancel", {})
    assert status_of(db, run_id, "work") == "COMPLETED"
    assert run_status(db, run_id) == "COMPLETED"


# -- 6. skipped and cancelled parents ---------------------------------------------


async def test_a_task_whose_parents_were_all_skipped_is_skipped(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="all_skipped")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"skip": True}

    @wf.task(parents=[begin], skip_if=[ParentCondition(begin, "output.skip")])
    def a(input: EmptyModel, ctx: Context) -> None:
        env.ran["a"] += 1

    @wf.task(parents=[begin], skip_if=[ParentCondition(begin, "output.skip")])
    def b(input: EmptyModel, ctx: Context) -> None:
        env.ran["b"] += 1

    @wf.task(parents=[begin])
    def c(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"c": "ran"}

    @wf.task(parents=[a, b])
    def both_skipped(input: EmptyModel, ctx: Context) -> None:
        env.ran["both_skipped"] += 1

    @wf.task(parents=[both_skipped])
    def grandchild(input: EmptyModel, ctx: Context) -> None:
        env.ran["grandchild"] += 1

    @wf.task(parents=[a, c])
    def one_skipped(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"a": ctx.was_skipped(a), "c": ctx.was_skipped(c)}

    ref = await wf.aio_run_no_wait()
    result = await outcome(ref)
    run_id = ref.workflow_run_id
    for name in ("a", "b", "both_skipped", "grandchild"):
        assert result[name] == {"skipped": True}, name
    assert result["one_skipped"] == {"a": True, "c": False}
    assert env.ran == Counter()
    assert run_status(db, run_id) == "COMPLETED"
    assert (E.SKIPPED, "skipped: every parent was skipped") in events_of(h, run_id, "both_skipped")


async def test_a_gated_task_with_a_failed_parent_is_cancelled(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="broken_parent")

    @wf.task(retries=0)
    def fragile(input: EmptyModel, ctx: Context) -> None:
        raise RuntimeError("boom")

    @wf.task(parents=[fragile], wait_for=[UserEventCondition(event_key="bp:go")])
    def gated(input: EmptyModel, ctx: Context) -> None:
        env.ran["gated"] += 1

    @wf.task()
    def independent(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": True}

    ref = await wf.aio_run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup):
        await outcome(ref)
    run_id = ref.workflow_run_id
    assert status_of(db, run_id, "gated") == "CANCELLED"
    assert gate(db, run_id, "gated") == []  # its gate never opened
    assert status_of(db, run_id, "independent") == "COMPLETED"
    assert run_status(db, run_id) == "FAILED"
    await h.event.aio_push("bp:go", {})
    await env.stepped()
    assert env.ran == Counter()


async def test_cancel_if_cascades_to_descendants_only(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="cascade")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="cascade:go")],
        cancel_if=[UserEventCondition(event_key="cascade:abort")],
    )
    def mid(input: EmptyModel, ctx: Context) -> None:
        env.ran["mid"] += 1

    @wf.task(parents=[mid])
    def child(input: EmptyModel, ctx: Context) -> None:
        env.ran["child"] += 1

    @wf.task(parents=[child], wait_for=[UserEventCondition(event_key="cascade:go")])
    def grandchild(input: EmptyModel, ctx: Context) -> None:
        env.ran["grandchild"] += 1

    @wf.task(parents=[begin])
    def side(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        env.ran["side"] += 1
        return {"side": True}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "mid"))
    await h.event.aio_push("cascade:abort", {"why": "test"})
    assert await done(db, run_id) == "CANCELLED"
    statuses = {n: status_of(db, run_id, n) for n in ("mid", "child", "grandchild", "side")}
    assert statuses == {
        "mid": "CANCELLED",
        "child": "CANCELLED",
        "grandchild": "CANCELLED",
        "side": "COMPLETED",
    }
    # A cancelled run returns normally from aio_result, with the outputs it has.
    assert (await outcome(ref))["side"] == {"side": True}
    await h.event.aio_push("cascade:go", {})
    await env.stepped()
    assert env.ran == Counter({"side": 1})


async def test_cancelling_a_run_closes_its_gates(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="cancel_waiting")

    @wf.task(wait_for=[UserEventCondition(event_key="cw:go")])
    def gated(input: EmptyModel, ctx: Context) -> None:
        env.ran["gated"] += 1

    @wf.task(parents=[gated])
    def after(input: EmptyModel, ctx: Context) -> None:
        env.ran["after"] += 1

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "gated"))
    await h.runs.aio_cancel(run_id)
    assert await done(db, run_id) == "CANCELLED"
    await h.event.aio_push("cw:go", {})
    await env.stepped()
    assert env.ran == Counter()
    assert status_of(db, run_id, "gated") == "CANCELLED"
    assert [s for *_, s in gate(db, run_id, "gated")] == ["CLOSED"]


# -- 7. consider_events_since and scopes --------------------------------------------


async def test_consider_events_since_counts_earlier_events(env: Env) -> None:
    h, clock, db = env.hatchet, env.clock, env.db
    await h.event.aio_push("since:ready", {"n": 1})
    pushed_at = clock.now()
    clock.advance(timedelta(minutes=5))
    await h.event.aio_push("since:ready", {"n": 2})
    await h.event.aio_push("since:ready", {"n": 3})
    clock.advance(timedelta(minutes=5))

    def define(name: str, since: datetime, expression: str | None) -> Workflow[EmptyModel]:
        wf = h.workflow(name=name)

        @wf.task(
            wait_for=[
                UserEventCondition(
                    event_key="since:ready",
                    expression=expression,
                    consider_events_since=since,
                )
            ]
        )
        def gated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
            return {"trigger": ctx.trigger_data}

        @wf.task(parents=[gated])
        def after(input: EmptyModel, ctx: Context) -> None:
            return None

        return wf

    # The earliest matching event since then counts.
    everything = define("since_all", pushed_at - timedelta(seconds=1), None)
    result = await asyncio.wait_for(everything.aio_run(), 3)
    assert result["gated"] == {"trigger": {"since:ready": [{"n": 1}]}}
    # The expression applies to earlier events too.
    third = define("since_expr", pushed_at, "input.n == 3")
    result = await asyncio.wait_for(third.aio_run(), 3)
    assert result["gated"] == {"trigger": {"since:ready": [{"n": 3}]}}
    # Events before the window do not count: the task waits for a new one.
    recent = define("since_recent", clock.now() - timedelta(minutes=1), None)
    ref = await recent.aio_run_no_wait()
    await wait_until(lambda: gate_open(db, ref.workflow_run_id, "gated"))
    await env.stepped()
    assert status_of(db, ref.workflow_run_id, "gated") == "PENDING"
    await h.event.aio_push("since:ready", {"n": 4})
    assert (await outcome(ref))["gated"] == {"trigger": {"since:ready": [{"n": 4}]}}


async def test_consider_events_since_opens_with_the_gate_of_a_child(env: Env) -> None:
    """For a non-root task the window is looked at when its parents are done."""
    h, db = env.hatchet, env.db
    since = env.clock.now()
    wf = h.workflow(name="since_child")

    @wf.task(wait_for=[UserEventCondition(event_key="sc:first")])
    def first(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[first],
        wait_for=[UserEventCondition(event_key="sc:second", consider_events_since=since)],
    )
    def second(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "first"))
    await h.event.aio_push("sc:second", {"early": True})  # before second's gate opens
    await h.event.aio_push("sc:first", {})
    assert (await outcome(ref))["second"] == {"trigger": {"sc:second": [{"early": True}]}}


async def test_event_condition_scope(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="scoped_gate")

    @wf.task(wait_for=[UserEventCondition(event_key="sg:go", scope="tenant-a")])
    def gated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    @wf.task(parents=[gated])
    def after(input: EmptyModel, ctx: Context) -> None:
        return None

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "gated"))
    await h.event.aio_push("sg:go", {"scope": None})
    await h.event.aio_push("sg:go", {"scope": "b"}, scope="tenant-b")
    assert status_of(db, run_id, "gated") == "PENDING"
    await h.event.aio_push("sg:go", {"scope": "a"}, scope="tenant-a")
    assert (await outcome(ref))["gated"] == {"trigger": {"sg:go": [{"scope": "a"}]}}


async def test_unscoped_condition_matches_scoped_events(env: Env) -> None:
    wf = env.hatchet.workflow(name="any_scope")

    @wf.task(wait_for=[UserEventCondition(event_key="as:go")])
    def gated(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(parents=[gated])
    def after(input: EmptyModel, ctx: Context) -> None:
        return None

    ref = await wf.aio_run_no_wait()
    await wait_until(lambda: gate_open(env.db, ref.workflow_run_id, "gated"))
    await env.hatchet.event.aio_push("as:go", {}, scope="whatever")
    await outcome(ref)


async def test_event_condition_keys_are_namespaced(tmp_path: Path) -> None:
    db = str(tmp_path / "ns.db")
    client = Hatchet(db=db, clock=TestClock(START), config=ClientConfig(namespace="Team"))
    try:
        wf = client.workflow(name="spaced")

        @wf.task(wait_for=[UserEventCondition(event_key="go")])
        def gated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
            return {"trigger": ctx.trigger_data}

        @wf.task(parents=[gated])
        def after(input: EmptyModel, ctx: Context) -> None:
            return None

        ref = await wf.aio_run_no_wait()
        await wait_until(lambda: gate_open(db, ref.workflow_run_id, "gated"))
        assert query(db, "SELECT event_key FROM durable_conditions") == [("team_go",)]
        await client.event.aio_push("go", {"n": 1})
        # The readable key is the condition's own (not namespaced) key.
        assert (await outcome(ref))["gated"] == {"trigger": {"go": [{"n": 1}]}}
    finally:
        client.close()


# -- 8. gated roots, slots, never-met gates -----------------------------------------


async def test_a_gated_root_opens_at_run_creation(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="gated_root")

    @wf.task(wait_for=[UserEventCondition(event_key="gr:go")])
    def root(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        env.ran["root"] += 1
        return {"trigger": ctx.trigger_data}

    @wf.task()
    def plain(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"plain": True}

    await h.event.aio_push("gr:go", {"early": True})  # before the run exists: dropped
    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    # The gate is recorded in the transaction that created the run.
    assert gate(db, run_id, "root") == [("QUEUE", "EVENT", "gr:go", "OPEN")]
    await wait_until(lambda: status_of(db, run_id, "plain") == "COMPLETED")
    assert status_of(db, run_id, "root") == "PENDING"
    assert run_status(db, run_id) in ("QUEUED", "RUNNING")
    details = await h.runs.aio_get_details(run_id)
    assert set(details.task_runs) == {"plain"} and not details.done
    await h.event.aio_push("gr:go", {"late": True})
    result = await outcome(ref)
    assert result["root"] == {"trigger": {"gr:go": [{"late": True}]}}
    assert env.ran["root"] == 1


async def test_a_gated_task_holds_no_slot(tmp_path: Path) -> None:
    db = str(tmp_path / "slots.db")
    client = Hatchet(db=db, clock=TestClock(START), auto_worker=False)
    wf = client.workflow(name="patient")

    @wf.task(wait_for=[UserEventCondition(event_key="patient:go")])
    def waiting(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"waited": "yes"}

    @wf.task(parents=[waiting])
    def after(input: EmptyModel, ctx: Context) -> None:
        return None

    @client.task(name="busy")
    def busy(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"busy": 1}

    worker = client.worker("one-slot", slots=1, workflows=[wf, busy])
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        gated = await wf.aio_run_no_wait()
        await wait_until(lambda: gate_open(db, gated.workflow_run_id, "waiting"))
        # Three runs of another task go through the only slot while the gate waits.
        for _ in range(3):
            assert await asyncio.wait_for(busy.aio_run(), 3) == {"busy": 1}
        assert status_of(db, gated.workflow_run_id, "waiting") == "PENDING"
        listed = await client.runs.aio_list(only_tasks=True, since=START - timedelta(days=1))
        assert "waiting" not in {row.display_name.split("-")[0] for row in listed.rows}
        await client.event.aio_push("patient:go", {})
        assert (await outcome(gated))["waiting"] == {"waited": "yes"}
    finally:
        worker.stop()
        thread.join(10)
        client.close()


async def test_a_wait_for_that_can_never_be_met_skips_at_once(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="never", input_validator=Num)

    @wf.task()
    def check(input: Num, ctx: Context) -> dict[str, bool]:
        return {"ok": input.n > 0}

    @wf.task(
        parents=[check],
        wait_for=[
            ParentCondition(check, "output.ok"),
            UserEventCondition(event_key="never:go"),
        ],
    )
    def strict(input: Num, ctx: Context) -> None:
        env.ran["strict"] += 1

    @wf.task(
        parents=[check],
        wait_for=[
            or_(ParentCondition(check, "output.ok"), UserEventCondition(event_key="never:go"))
        ],
    )
    def lenient(input: Num, ctx: Context) -> dict[str, Any]:
        env.ran["lenient"] += 1
        return {"trigger": ctx.trigger_data}

    ref = await wf.aio_run_no_wait(Num(n=0))
    run_id = ref.workflow_run_id
    # `strict`: its parent group is false, so no event can release it.
    await wait_until(lambda: status_of(db, run_id, "strict") == "COMPLETED")
    assert task_row(db, run_id, "strict")[1] == '{"skipped":true}'
    # `lenient`: its parent member is false, but the event can still meet its group.
    assert status_of(db, run_id, "lenient") == "PENDING"
    await h.event.aio_push("never:go", {"x": 1})
    result = await outcome(ref)
    assert result["strict"] == {"skipped": True}
    assert result["lenient"] == {"trigger": {"never:go": [{"x": 1}]}}
    assert env.ran == Counter({"lenient": 1})


# -- 9. durable tasks, replay ------------------------------------------------------


async def test_a_gated_durable_task(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="durable_gate")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 3}

    @wf.durable_task(parents=[begin], wait_for=[UserEventCondition(event_key="dg:start")])
    async def patient(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        env.ran["patient"] += 1
        second = await ctx.aio_wait_for_event("dg:more")
        return {"trigger": ctx.trigger_data, "second": second}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "patient"))
    await h.event.aio_push("dg:more", {"too": "early"})
    await h.event.aio_push("dg:start", {"go": 1})
    tid = task_id(db, run_id, "patient")
    await wait_until(
        lambda: bool(
            query(db, "SELECT 1 FROM durable_events WHERE task_run_id = ? AND node_id = 1", (tid,))
        )
    )
    await h.event.aio_push("dg:more", {"go": 2})
    result = await outcome(ref)
    assert result["patient"] == {"trigger": {"dg:start": [{"go": 1}]}, "second": {"go": 2}}


async def test_replay_gates_a_task_again(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="replayed_gate")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        env.ran["begin"] += 1

    @wf.task(parents=[begin], wait_for=[UserEventCondition(event_key="rg:go")])
    def gated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        env.ran["gated"] += 1
        return {"trigger": ctx.trigger_data}

    ref = await wf.aio_run_no_wait()
    run_id = ref.workflow_run_id
    await wait_until(lambda: gate_open(db, run_id, "gated"))
    await h.event.aio_push("rg:go", {"round": 1})
    assert (await outcome(ref))["gated"] == {"trigger": {"rg:go": [{"round": 1}]}}

    await h.runs.aio_replay(run_id)
    await wait_until(lambda: env.ran["begin"] == 2 and gate_open(db, run_id, "gated"))
    await env.stepped()
    assert status_of(db, run_id, "gated") == "PENDING"
    assert env.ran["gated"] == 1
    await h.event.aio_push("rg:go", {"round": 2})
    assert await done(db, run_id) == "COMPLETED"
    assert env.ran == Counter({"begin": 2, "gated": 2})
    output = task_row(db, run_id, "gated")[1]
    assert output is not None
    assert json.loads(output) == {"trigger": {"rg:go": [{"round": 2}]}}


async def test_replay_of_a_skipped_task_decides_it_again(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="replay_skip")
    switch = {"ok": False}

    @wf.task()
    def check(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": switch["ok"]}

    @wf.task(parents=[check], skip_if=[ParentCondition(check, "!output.ok")])
    def act(input: EmptyModel, ctx: Context) -> dict[str, str]:
        env.ran["act"] += 1
        return {"act": "ran"}

    ref = await wf.aio_run_no_wait()
    assert (await outcome(ref))["act"] == {"skipped": True}
    switch["ok"] = True
    await h.runs.aio_replay(ref.workflow_run_id)
    await wait_until(lambda: env.ran["act"] == 1)
    assert await done(db, ref.workflow_run_id) == "COMPLETED"
    assert json.loads(task_row(db, ref.workflow_run_id, "act")[1] or "") == {"act": "ran"}


async def test_a_gated_task_keeps_its_trigger_data_across_retries(env: Env) -> None:
    h, db = env.hatchet, env.db
    wf = h.workflow(name="gated_retry")
    seen: list[dict[str, Any]] = []

    @wf.task(wait_for=[UserEventCondition(event_key="gretry:go")], retries=1)
    def flaky(input: EmptyModel, ctx: Context) -> dict[str, int]:
        seen.append(ctx.trigger_data)
        if ctx.attempt_number == 1:
            raise RuntimeError("first attempt fails")
        return {"attempt": ctx.attempt_number}

    @wf.task(parents=[flaky])
    def after(input: EmptyModel, ctx: Context) -> None:
        return None

    ref = await wf.aio_run_no_wait()
    await wait_until(lambda: gate_open(db, ref.workflow_run_id, "flaky"))
    await h.event.aio_push("gretry:go", {"k": 1})
    assert (await outcome(ref))["flaky"] == {"attempt": 2}
    assert seen == [{"gretry:go": [{"k": 1}]}] * 2


async def test_a_single_task_workflow_can_be_gated(env: Env) -> None:
    h, db = env.hatchet, env.db
    single = h.workflow(name="single_gated")

    @single.task(wait_for=[UserEventCondition(event_key="single:go")])
    def only(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"trigger": ctx.trigger_data}

    ref = await single.aio_run_no_wait()
    # One task: the run id is the task's id, and the gate is recorded with the run.
    assert status_of(db, ref.workflow_run_id, "only") == "PENDING"
    assert task_id(db, ref.workflow_run_id, "only") == ref.workflow_run_id
    await h.event.aio_push("single:go", {"a": 1})
    assert await outcome(ref) == {"only": {"trigger": {"single:go": [{"a": 1}]}}}

    skipped = h.workflow(name="single_skipped")

    @skipped.task(skip_if=[SleepCondition(timedelta(0))])
    def never(input: EmptyModel, ctx: Context) -> None:
        env.ran["never"] += 1

    assert await asyncio.wait_for(skipped.aio_run(), 3) == {"never": {"skipped": True}}
    assert env.ran == Counter()


async def test_a_run_whose_tasks_are_all_skipped_at_creation_ends_at_once(env: Env) -> None:
    wf = env.hatchet.workflow(name="skipped_whole")

    @wf.task(skip_if=[SleepCondition(timedelta(0))])
    def root(input: EmptyModel, ctx: Context) -> None:
        env.ran["root"] += 1

    @wf.task(parents=[root])
    def child(input: EmptyModel, ctx: Context) -> None:
        env.ran["child"] += 1

    result = await asyncio.wait_for(wf.aio_run(), 3)
    assert result == {"root": {"skipped": True}, "child": {"skipped": True}}
    assert env.ran == Counter()


async def test_a_long_sleep_gate_takes_no_real_time_with_auto_advance(tmp_path: Path) -> None:
    clock = TestClock(START, auto_advance=True)
    client = Hatchet(db=str(tmp_path / "auto.db"), clock=clock)
    try:
        wf = client.workflow(name="week")

        @wf.task()
        def begin(input: EmptyModel, ctx: Context) -> None:
            return None

        @wf.task(parents=[begin], wait_for=[SleepCondition(timedelta(days=7))])
        def later(input: EmptyModel, ctx: Context) -> dict[str, Any]:
            return {"trigger": ctx.trigger_data}

        result = await asyncio.wait_for(wf.aio_run(), 3)
        assert result["later"] == {"trigger": {"sleep:168h": [{"sleep_duration": "168h"}]}}
        assert clock.now() >= START + timedelta(days=7)
    finally:
        client.close()


def _reopen_flow(client: Hatchet, ran: Counter[str]) -> Workflow[EmptyModel]:
    wf = client.workflow(name="reopened")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        ran["begin"] += 1

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="reopen:go"), SleepCondition(timedelta(hours=1))],
    )
    def gated(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        ran["gated"] += 1
        return {"trigger": ctx.trigger_data}

    return wf


async def test_a_gate_survives_closing_and_reopening_the_engine(tmp_path: Path) -> None:
    db = str(tmp_path / "reopen.db")
    clock = TestClock(START)
    ran: Counter[str] = Counter()
    first = Hatchet(db=db, clock=clock)
    try:
        ref = await _reopen_flow(first, ran).aio_run_no_wait()
        run_id = ref.workflow_run_id
        await wait_until(lambda: gate_open(db, run_id, "gated"))
        await first.event.aio_push("reopen:go", {"before": "close"})
    finally:
        first.close()
    clock.advance(timedelta(hours=2))  # the timer falls due while nothing runs

    second = Hatchet(db=db, clock=clock)
    try:
        wf = _reopen_flow(second, ran)
        result = await asyncio.wait_for(wf.aio_get_result(run_id), 3)
        assert result["gated"] == {
            "trigger": {
                "reopen:go": [{"before": "close"}],
                "sleep:1h": [{"sleep_duration": "1h"}],
            }
        }
        assert ran == Counter({"begin": 1, "gated": 1})
    finally:
        second.close()


# -- 9b. downtime and redeploys ------------------------------------------------------


def _deadline_flow(client: Hatchet) -> Workflow[EmptyModel]:
    wf = client.workflow(name="deadline")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(
        parents=[begin],
        wait_for=[UserEventCondition(event_key="dl:go")],
        skip_if=[SleepCondition(timedelta(hours=1))],
    )
    def approve(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ran": True}

    return wf


async def test_a_deadline_that_passed_while_no_worker_ran_beats_a_later_event(
    tmp_path: Path,
) -> None:
    """The skip_if timer fell due at +1h while the worker was down; an event pushed at
    +2h by a process without workers comes too late."""
    db, clock = str(tmp_path / "deadline.db"), TestClock(START)
    worker = Hatchet(db=db, clock=clock)
    try:
        run_id = (await _deadline_flow(worker).aio_run_no_wait()).workflow_run_id
        await wait_until(lambda: gate_open(db, run_id, "approve"))
    finally:
        worker.close()
    clock.advance(timedelta(hours=2))
    pusher = Hatchet(db=db, clock=clock, auto_worker=False)
    try:
        await pusher.event.aio_push("dl:go", {})
    finally:
        pusher.close()
    assert task_row(db, run_id, "approve") == ("COMPLETED", '{"skipped":true}')
    assert run_status(db, run_id) == "COMPLETED"


async def test_timers_met_in_one_step_decide_in_the_order_they_fell_due(
    tmp_path: Path,
) -> None:
    """wait_for a 1h sleep, skip_if a 2h sleep, the engine down from +0h to +3h: the
    step that meets both queues the task, as an engine that stayed up would have."""
    db, clock = str(tmp_path / "timers.db"), TestClock(START)

    def define(client: Hatchet) -> Workflow[EmptyModel]:
        wf = client.workflow(name="two_timers")

        @wf.task()
        def begin(input: EmptyModel, ctx: Context) -> None:
            return None

        @wf.task(
            parents=[begin],
            wait_for=[SleepCondition(timedelta(hours=1))],
            skip_if=[SleepCondition(timedelta(hours=2))],
        )
        def work(input: EmptyModel, ctx: Context) -> dict[str, bool]:
            return {"ran": True}

        return wf

    first = Hatchet(db=db, clock=clock)
    try:
        run_id = (await define(first).aio_run_no_wait()).workflow_run_id
        await wait_until(lambda: gate_open(db, run_id, "work"))
    finally:
        first.close()
    clock.advance(timedelta(hours=3))
    second = Hatchet(db=db, clock=clock)
    try:
        result = await asyncio.wait_for(define(second).aio_get_result(run_id), 3)
        assert result["work"] == {"ran": True}
    finally:
        second.close()


def _renamed_flow(client: Hatchet, gated_name: str) -> Workflow[EmptyModel]:
    wf = client.workflow(name="redeployed")

    @wf.task()
    def begin(input: EmptyModel, ctx: Context) -> None:
        return None

    def gated(input: EmptyModel, ctx: Context) -> None:
        return None

    gated.__name__ = gated.__qualname__ = gated_name
    wf.task(
        parents=[begin],
        wait_for=[or_(SleepCondition(timedelta(hours=1)), UserEventCondition(event_key="rd:go"))],
    )(gated)
    return wf


@pytest.mark.parametrize("met_by", ["timer", "event"])
async def test_a_gated_task_renamed_by_a_redeploy_fails_its_run_not_the_engine(
    tmp_path: Path, met_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    db, clock = str(tmp_path / "renamed.db"), TestClock(START)
    old = Hatchet(db=db, clock=clock)
    try:
        run_id = (await _renamed_flow(old, "later").aio_run_no_wait()).workflow_run_id
        await wait_until(lambda: gate_open(db, run_id, "later"))
    finally:
        old.close()

    new = Hatchet(db=db, clock=clock)
    try:
        _renamed_flow(new, "later_v2")

        @new.task(name="other")
        def other(input: EmptyModel, ctx: Context) -> dict[str, int]:
            return {"pong": 1}

        if met_by == "event":
            await new.event.aio_push("rd:go", {})  # the push is stored, not refused
            assert query(db, "SELECT count(*) FROM events WHERE key = 'rd:go'") == [(1,)]
        else:
            clock.advance(timedelta(hours=2))
        assert await asyncio.wait_for(other.aio_run(), 3) == {"pong": 1}
        assert await done(db, run_id) == "FAILED"
        [(error,)] = query(
            db,
            "SELECT error FROM task_runs WHERE workflow_run_id = ? AND task_name = 'later'",
            (run_id,),
        )
        assert "'later'" in json.loads(str(error))["message"]
        assert not gate_open(db, run_id, "later")
        assert "engine step failed" not in caplog.text
    finally:
        new.close()


# -- 10. definition-time errors ----------------------------------------------------


@pytest.mark.parametrize("param", ["wait_for", "skip_if", "cancel_if"])
@pytest.mark.parametrize(
    ("make", "expression", "why"),
    [
        (lambda p: UserEventCondition(event_key="k", expression="input.n >"), "input.n >", ""),
        (lambda p: ParentCondition(p, "output.n + 1"), "output.n + 1", "not boolean"),
        (lambda p: UserEventCondition(event_key="k", expression="'text'"), "'text'", "not boolean"),
    ],
)
def test_bad_cel_in_a_condition_is_a_definition_error(
    hatchet: Hatchet, param: str, make: Any, expression: str, why: str
) -> None:
    wf = hatchet.workflow(name="Bad_CEL")

    @wf.task()
    def parent(input: EmptyModel, ctx: Context) -> None:
        return None

    with pytest.raises(InvalidDefinitionError) as info:

        @wf.task(name="Child", parents=[parent], **{param: [make(parent)]})
        def child(input: EmptyModel, ctx: Context) -> None:
            return None

    message = str(info.value)
    assert "'Bad_CEL'" in message and "'child'" in message and expression in message
    assert why in message
    assert [t.name for t in wf.tasks] == ["parent"]


def test_duplicate_readable_keys_are_a_definition_error(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="dupes")

    with pytest.raises(ValueError, match="sleep:30s"):

        @wf.task(
            wait_for=[SleepCondition(timedelta(seconds=30))],
            skip_if=[SleepCondition(timedelta(seconds=30))],
        )
        def twins(input: EmptyModel, ctx: Context) -> None:
            return None

    with pytest.raises(InvalidDefinitionError, match="distinct"):

        @wf.task(
            wait_for=[
                or_(UserEventCondition(event_key="same"), UserEventCondition(event_key="same"))
            ]
        )
        def same_events(input: EmptyModel, ctx: Context) -> None:
            return None

    # Distinct readable keys make the same event usable twice.
    @wf.task(
        wait_for=[UserEventCondition(event_key="same", readable_data_key="one")],
        cancel_if=[UserEventCondition(event_key="same", readable_data_key="two")],
    )
    def fine(input: EmptyModel, ctx: Context) -> None:
        return None


def test_a_parent_condition_must_name_an_upstream_task(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="upstream")

    @wf.task()
    def a(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 1}

    @wf.task()
    def b(input: EmptyModel, ctx: Context) -> None:
        return None

    with pytest.raises(InvalidDefinitionError, match=r"'a' is not upstream"):

        @wf.task(parents=[b], wait_for=[ParentCondition(a, "output.n > 0")])
        def c(input: EmptyModel, ctx: Context) -> None:
            return None

    with pytest.raises(InvalidDefinitionError, match=r"'a' is not upstream"):

        @wf.task(skip_if=[ParentCondition(a)])
        def root_with_parent_condition(input: EmptyModel, ctx: Context) -> None:
            return None


def test_other_bad_conditions_are_definition_errors(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="odd")

    with pytest.raises(InvalidDefinitionError, match="needs a key"):

        @wf.task(wait_for=[UserEventCondition(event_key="")])
        def no_key(input: EmptyModel, ctx: Context) -> None:
            return None

    with pytest.raises(InvalidDefinitionError, match="timezone-aware"):

        @wf.task(
            wait_for=[UserEventCondition(event_key="k", consider_events_since=datetime(2030, 1, 1))]
        )
        def naive(input: EmptyModel, ctx: Context) -> None:
            return None


def test_something_that_is_not_a_condition_is_a_definition_error(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="odd_item")

    with pytest.raises(InvalidDefinitionError, match="not a condition"):

        @wf.task(wait_for=["sleep:5s"])  # type: ignore[list-item]
        def not_a_condition(input: EmptyModel, ctx: Context) -> None:
            return None


def test_bad_default_filter_is_a_definition_error(hatchet: Hatchet) -> None:
    with pytest.raises(InvalidDefinitionError) as info:
        hatchet.workflow(
            name="Filtered",
            on_events=["f:x"],
            default_filters=[DefaultFilter(expression="input.n +", scope="s")],
        )
    assert "'Filtered'" in str(info.value) and "input.n +" in str(info.value)
    with pytest.raises(InvalidDefinitionError, match="not boolean"):
        hatchet.workflow(
            name="Filtered2",
            on_events=["f:x"],
            default_filters=[DefaultFilter(expression="input.n + 1", scope="s")],
        )


# -- 11. a real worker SIGKILLed while tasks wait on conditions ---------------------


def _start_cond_worker(db: str, effects: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, cond_worker.EFFECTS_ENV: str(effects), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.procs.cond_worker", db],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )

    def registered() -> bool:
        try:
            return bool(
                query(db, "SELECT 1 FROM workers WHERE pid = ? AND status = 'ACTIVE'", (proc.pid,))
            )
        except sqlite3.OperationalError:  # the schema is not there yet
            return False

    wait_until_sync(lambda: proc.poll() is not None or registered(), what="worker registration")
    assert proc.poll() is None, log.read_text()
    return proc


def _count(db: str, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(query(db, sql, params)[0][0])


@pytest.mark.timeout(60)
def test_condition_waits_survive_a_worker_sigkill(tmp_path: Path) -> None:
    """A DAG task gated on a sleep AND an event, and a durable task waiting for an event,
    keep waiting across a SIGKILL of their worker and each fires exactly once."""
    db, effects, log = str(tmp_path / "cond.db"), tmp_path / "effects.log", tmp_path / "w.log"
    effects.touch()
    client = Hatchet(db=db, auto_worker=False)
    wf, condwait = cond_worker.build(client)
    procs: list[subprocess.Popen[bytes]] = []
    runs = 3
    try:
        dag_refs = wf.run_many_no_wait(
            [wf.create_bulk_run_item(cond_worker.Job(n=i)) for i in range(runs)]
        )
        durable_refs = condwait.run_many_no_wait(
            [condwait.create_bulk_run_item(cond_worker.Job(n=i)) for i in range(runs)]
        )
        procs.append(_start_cond_worker(db, effects, log))
        # Every gate is open (its event condition recorded and unmet; its timer may or
        # may not be due yet) and every durable task waits for its event: then the
        # worker dies.
        wait_until_sync(
            lambda: (
                _count(
                    db,
                    "SELECT count(*) FROM durable_conditions WHERE node_id = 0 AND status = 'OPEN' "
                    "AND action = 'QUEUE' AND kind = 'EVENT'",
                )
                == runs
                and _count(
                    db,
                    "SELECT count(*) FROM durable_events WHERE kind = 'WAIT' AND status = 'PENDING'",
                )
                == runs
            ),
            timeout=20,
            what="every task waiting",
        )
        wake_before = query(
            db, "SELECT task_run_id, wake_at FROM durable_conditions WHERE kind = 'SLEEP'"
        )
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait()
        pending = "SELECT count(*) FROM task_runs WHERE task_name = 'gated' AND status = 'PENDING'"
        assert _count(db, pending) == runs

        # While no worker runs: the DAG event, and the durable event of run 0.
        client.event.push(cond_worker.DAG_EVENT, {"go": True})
        client.event.push(cond_worker.DURABLE_EVENT, {"n": 0})
        procs.append(_start_cond_worker(db, effects, log))
        new_pid = procs[-1].pid
        # The other durable runs are taken again by the new worker and wait again.
        wait_until_sync(
            lambda: (
                _count(
                    db,
                    """SELECT count(*) FROM task_runs t JOIN workers w ON w.id = t.worker_id
                   WHERE t.workflow_name = 'condwait' AND t.status = 'RUNNING' AND w.pid = ?""",
                    (new_pid,),
                )
                == runs - 1
            ),
            timeout=20,
            what="durable tasks resumed by the new worker",
        )
        for i in range(1, runs):
            client.event.push(cond_worker.DURABLE_EVENT, {"n": i})
        dag_results = [ref.result() for ref in dag_refs]
        durable_results = [ref.result() for ref in durable_refs]
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        client.close()

    for i, result in enumerate(dag_results):
        # (a 1.5 s sleep is keyed "1s": Hatchet renders durations in whole units)
        assert result["gated"] == {
            "n": i,
            "trigger": {"sleep:1s": [{"sleep_duration": "1s"}], "cond:go": [{"go": True}]},
        }
    assert [r["event"] for r in durable_results] == [{"n": i} for i in range(runs)]

    lines = [line.split() for line in effects.read_text().splitlines()]
    by_kind: dict[str, Counter[str]] = {}
    for kind, run_id, _pid in lines:
        by_kind.setdefault(kind, Counter())[run_id] += 1
    # Each gated task and each durable task's code after its wait ran exactly once.
    assert sorted(by_kind["gated"].values()) == [1] * runs
    assert sorted(by_kind["durable-woke"].values()) == [1] * runs
    assert sorted(by_kind["prepare"].values()) == [1] * runs
    # The durable tasks started again after the kill (a replay), not from scratch only.
    assert all(n >= 2 for n in by_kind["durable-start"].values()), by_kind["durable-start"]
    # The timers kept the wake-up time stored before the kill.
    assert (
        query(db, "SELECT task_run_id, wake_at FROM durable_conditions WHERE kind = 'SLEEP'")
        == wake_before
    )
    # And no gated task was queued before its timer was due.
    for queued_at, wake_at in query(
        db,
        """SELECT t.queued_at, c.wake_at FROM task_runs t JOIN durable_conditions c
           ON c.task_run_id = t.id AND c.node_id = 0 AND c.kind = 'SLEEP'""",
    ):
        assert queued_at >= wake_at
    assert "Traceback" not in log.read_text()
