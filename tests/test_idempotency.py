"""Idempotency (Hatchet §4.6): `TTLBasedIdempotencyConfig` holds a key for `ttl` after
the run that took it was triggered; `StatusBasedIdempotencyConfig` holds it until that
run ends (completed, cancelled, finally failed; not between retries), for at most
`fallback_ttl`. A trigger that hits a held key raises `IdempotencyCollisionError` and
creates nothing; `run_many` creates the others and then raises
`BulkTriggerIdempotencyCollisionError`; an event skips the colliding run silently.
Keys are claimed in the trigger's write transaction, so processes racing on a key get
one run. Also: bad definitions and keys, and `runs.purge` of expired keys."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    BulkPushEventWithMetadata,
    BulkTriggerIdempotencyCollisionError,
    ConcurrencyExpression,
    Context,
    EmptyModel,
    Hatchet,
    IdempotencyCollisionError,
    StatusBasedIdempotencyConfig,
    TriggerWorkflowOptions,
    TTLBasedIdempotencyConfig,
)
from hatchlite.exceptions import InvalidDefinitionError
from hatchlite.limits import LimitKeyError
from hatchlite.testing import TestClock
from tests.conftest import outcome, query, wait_until

pytestmark = pytest.mark.timeout(20)

START = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
# Longer than any clock move here: a blocked task never times out by accident.
LONG = timedelta(hours=6)


def ttl_key(
    expression: str = "input.id", ttl: timedelta = timedelta(minutes=10)
) -> TTLBasedIdempotencyConfig:
    return TTLBasedIdempotencyConfig(key_expression=expression, ttl=ttl)


def status_key(
    expression: str = "input.id", fallback_ttl: timedelta = timedelta(minutes=30)
) -> StatusBasedIdempotencyConfig:
    return StatusBasedIdempotencyConfig(key_expression=expression, fallback_ttl=fallback_ttl)


def data(**fields: Any) -> EmptyModel:
    """An untyped input (EmptyModel keeps extra fields)."""
    return EmptyModel.model_validate(fields)


class Req(BaseModel):
    id: str = ""
    n: int = 0


@dataclass
class Env:
    hatchet: Hatchet
    clock: TestClock
    db: str

    def run_ids(self, workflow: str | None = None) -> list[str]:
        """Ids of the stored runs (of `workflow`), in creation order."""
        if workflow is None:
            rows = query(self.db, "SELECT id FROM workflow_runs ORDER BY seq")
        else:
            rows = query(
                self.db,
                "SELECT id FROM workflow_runs WHERE workflow_name = ? ORDER BY seq",
                (workflow,),
            )
        return [str(r[0]) for r in rows]

    def task_count(self) -> int:
        return len(query(self.db, "SELECT id FROM task_runs"))

    def status(self, run_id: str) -> str:
        return str(query(self.db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])

    def input_id(self, run_id: str) -> str:
        [(text,)] = query(self.db, "SELECT input FROM workflow_runs WHERE id = ?", (run_id,))
        return str(json.loads(str(text))["id"])

    def keys(self) -> dict[tuple[str, str], str]:
        """(workflow, key) -> holder run id, as stored."""
        rows = query(self.db, "SELECT workflow_name, key, run_id FROM idempotency_keys")
        return {(str(w), str(k)): str(r) for w, k, r in rows}

    async def settled(self) -> None:
        """Wait until every stored run has ended."""

        def ended() -> bool:
            rows = query(self.db, "SELECT status FROM workflow_runs")
            return all(status in TERMINAL for (status,) in rows)

        await wait_until(ended)

    async def reaches(self, run_id: str, status: str) -> None:
        await wait_until(lambda: self.status(run_id) == status)


def make_env(tmp_path: Path, name: str = "idem.db", **kwargs: Any) -> Env:
    clock = TestClock(START)
    db = str(tmp_path / name)
    return Env(Hatchet(db=db, clock=clock, **kwargs), clock, db)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = make_env(tmp_path)
    yield e
    e.hatchet.close()


async def collides(trigger: Callable[[], Any], holder: str) -> None:
    """`trigger` (sync or async) raises IdempotencyCollisionError naming `holder`."""
    with pytest.raises(IdempotencyCollisionError) as info:
        result = trigger()
        if asyncio.iscoroutine(result):
            await result
    assert info.value.existing_run_external_id == holder
    assert holder in str(info.value)


async def wait_thread_event(event: threading.Event, timeout: float = 3.0) -> None:
    assert await asyncio.to_thread(event.wait, timeout), f"event not set within {timeout}s"


class Gate:
    """Blocks sync tasks (a threading.Event) until opened; `entered` counts arrivals."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)

    def pass_(self) -> None:
        self.entered.release()
        assert self.open.wait(5), "gate never opened"

    async def arrivals(self, n: int = 1) -> None:
        for _ in range(n):
            assert await asyncio.to_thread(self.entered.acquire, True, 3.0), "no task arrived"


# -- 1. TTL-based ------------------------------------------------------------------------


async def test_a_ttl_key_collides_within_the_ttl_even_after_the_run_ended(env: Env) -> None:
    h = env.hatchet
    ran: list[str] = []

    @h.task(input_validator=Req, idempotency=ttl_key(ttl=timedelta(minutes=10)))
    def charge(input: Req, ctx: Context) -> dict[str, str]:
        ran.append(input.id)
        return {"id": input.id}

    first = await charge.aio_run_no_wait(Req(id="a"))
    assert await outcome(first) == {"id": "a"}
    tasks = env.task_count()

    # Held although the run completed: every way of triggering is refused.
    await collides(lambda: charge.aio_run_no_wait(Req(id="a", n=2)), first.workflow_run_id)
    await collides(lambda: charge.aio_run(Req(id="a")), first.workflow_run_id)
    await collides(lambda: charge.run_no_wait(Req(id="a")), first.workflow_run_id)
    await collides(lambda: charge.run(Req(id="a")), first.workflow_run_id)
    assert env.run_ids() == [first.workflow_run_id]  # nothing created
    assert env.task_count() == tasks

    env.clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    await collides(lambda: charge.aio_run_no_wait(Req(id="a")), first.workflow_run_id)
    assert len(env.run_ids()) == 1

    env.clock.advance(timedelta(seconds=2))  # the ttl has passed
    second = await charge.aio_run_no_wait(Req(id="a", n=3))
    assert second.workflow_run_id != first.workflow_run_id
    assert await outcome(second) == {"id": "a"}
    assert env.run_ids() == [first.workflow_run_id, second.workflow_run_id]
    # The new run holds the key now, for a fresh ttl.
    await collides(lambda: charge.aio_run_no_wait(Req(id="a")), second.workflow_run_id)
    assert ran == ["a", "a"]


async def test_different_keys_and_different_workflows_never_collide(env: Env) -> None:
    h = env.hatchet

    @h.task(input_validator=Req, idempotency=ttl_key())
    def one(input: Req, ctx: Context) -> None:
        pass

    @h.task(input_validator=Req, idempotency=ttl_key())
    def other(input: Req, ctx: Context) -> None:
        pass

    refs = [await one.aio_run_no_wait(Req(id=k)) for k in ("a", "b", "A", "a ", "")]
    # The same key in another workflow is another key.
    elsewhere = await other.aio_run_no_wait(Req(id="a"))
    assert len(set(env.run_ids())) == 6
    assert env.run_ids("one") == [r.workflow_run_id for r in refs]
    assert env.run_ids("other") == [elsewhere.workflow_run_id]
    await collides(lambda: one.aio_run_no_wait(Req(id="b")), refs[1].workflow_run_id)
    await collides(lambda: other.aio_run_no_wait(Req(id="a")), elsewhere.workflow_run_id)
    await env.settled()


async def test_the_key_comes_from_additional_metadata(env: Env) -> None:
    h = env.hatchet
    wf = h.workflow(
        name="Webhook",
        idempotency=ttl_key("additional_metadata.request_id"),
        default_additional_metadata={"request_id": "default"},
    )
    done: list[str] = []

    @wf.task()
    def first(input: EmptyModel, ctx: Context) -> None:
        done.append(str(ctx.additional_metadata["request_id"]))

    @wf.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> None:
        pass

    r1 = await wf.aio_run_no_wait(additional_metadata={"request_id": "r1"})
    # The input plays no part; the metadata may come through the options too.
    await collides(
        lambda: wf.aio_run_no_wait(data(x=1), additional_metadata={"request_id": "r1"}),
        r1.workflow_run_id,
    )
    await collides(
        lambda: wf.aio_run_no_wait(
            options=TriggerWorkflowOptions(additional_metadata={"request_id": "r1"})
        ),
        r1.workflow_run_id,
    )
    r2 = await wf.aio_run_no_wait(additional_metadata={"request_id": "r2", "other": "x"})
    # Without one, the workflow's default metadata gives the key.
    d1 = await wf.aio_run_no_wait()
    await collides(lambda: wf.aio_run_no_wait(), d1.workflow_run_id)
    assert env.run_ids() == [r1.workflow_run_id, r2.workflow_run_id, d1.workflow_run_id]
    await env.settled()
    assert sorted(done) == ["default", "r1", "r2"]


async def test_a_key_expression_beyond_a_member_path_is_evaluated_by_cel(env: Env) -> None:
    h = env.hatchet

    @h.task(
        input_validator=Req,
        idempotency=ttl_key("input.id + ':' + additional_metadata.tenant"),
    )
    def scoped(input: Req, ctx: Context) -> None:
        pass

    a = await scoped.aio_run_no_wait(Req(id="1"), additional_metadata={"tenant": "t1"})
    b = await scoped.aio_run_no_wait(Req(id="1"), additional_metadata={"tenant": "t2"})
    await collides(
        lambda: scoped.aio_run_no_wait(Req(id="1"), additional_metadata={"tenant": "t1"}),
        a.workflow_run_id,
    )
    assert env.keys() == {
        ("scoped", "1:t1"): a.workflow_run_id,
        ("scoped", "1:t2"): b.workflow_run_id,
    }
    await env.settled()


# -- 2. status-based ---------------------------------------------------------------------


async def test_a_status_key_is_held_while_running_and_released_when_it_completes(
    env: Env,
) -> None:
    h = env.hatchet
    gate = Gate()

    @h.task(input_validator=Req, idempotency=status_key(), execution_timeout=LONG)
    def work(input: Req, ctx: Context) -> dict[str, int]:
        gate.pass_()
        return {"n": input.n}

    first = await work.aio_run_no_wait(Req(id="a", n=1))
    await gate.arrivals()
    assert env.status(first.workflow_run_id) == "RUNNING"
    await collides(lambda: work.aio_run_no_wait(Req(id="a")), first.workflow_run_id)
    await collides(lambda: work.run_no_wait(Req(id="a")), first.workflow_run_id)
    assert env.run_ids() == [first.workflow_run_id]

    gate.open.set()
    assert await outcome(first) == {"n": 1}
    # Released at once, well within the fallback ttl.
    second = await work.aio_run_no_wait(Req(id="a", n=2))
    assert await outcome(second) == {"n": 2}
    assert env.run_ids() == [first.workflow_run_id, second.workflow_run_id]


async def test_a_status_key_is_held_while_queued_and_released_when_cancelled(
    tmp_path: Path,
) -> None:
    """No worker: the run stays QUEUED, and holds its key until it is cancelled."""
    e = make_env(tmp_path, auto_worker=False)
    h = e.hatchet
    try:

        @h.task(input_validator=Req, idempotency=status_key())
        def queued(input: Req, ctx: Context) -> None:
            pass

        first = await queued.aio_run_no_wait(Req(id="q"))
        assert e.status(first.workflow_run_id) == "QUEUED"
        await collides(lambda: queued.aio_run_no_wait(Req(id="q")), first.workflow_run_id)
        assert e.run_ids() == [first.workflow_run_id]

        await h.runs.aio_cancel(first.workflow_run_id)
        assert e.status(first.workflow_run_id) == "CANCELLED"
        second = await queued.aio_run_no_wait(Req(id="q"))
        assert e.run_ids() == [first.workflow_run_id, second.workflow_run_id]
        await collides(lambda: queued.aio_run_no_wait(Req(id="q")), second.workflow_run_id)
    finally:
        h.close()


async def test_a_status_key_of_a_running_async_task_is_released_when_it_is_cancelled(
    env: Env,
) -> None:
    h = env.hatchet
    started = threading.Event()
    blocked: dict[str, Any] = {}
    cancelled = threading.Event()

    @h.task(input_validator=Req, idempotency=status_key(), execution_timeout=LONG)
    async def wait_forever(input: Req, ctx: Context) -> None:
        release = asyncio.Event()  # on the engine's loop
        blocked["release"] = release
        blocked["loop"] = asyncio.get_running_loop()
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    first = await wait_forever.aio_run_no_wait(Req(id="c"))
    await wait_thread_event(started)
    assert env.status(first.workflow_run_id) == "RUNNING"
    await collides(lambda: wait_forever.aio_run_no_wait(Req(id="c")), first.workflow_run_id)

    await h.runs.aio_cancel(first.workflow_run_id)
    await wait_thread_event(cancelled)
    await env.reaches(first.workflow_run_id, "CANCELLED")
    started.clear()
    second = await wait_forever.aio_run_no_wait(Req(id="c"))
    await wait_thread_event(started)
    await collides(lambda: wait_forever.aio_run_no_wait(Req(id="c")), second.workflow_run_id)
    blocked["loop"].call_soon_threadsafe(blocked["release"].set)
    await env.reaches(second.workflow_run_id, "COMPLETED")
    assert env.run_ids() == [first.workflow_run_id, second.workflow_run_id]


async def test_a_status_key_is_held_across_retries_and_released_when_the_run_finally_fails(
    env: Env,
) -> None:
    """Attempt 1 fails; the retry waits out its backoff (the clock is still), then runs
    and fails too. The key is held throughout, released only by the final failure."""
    h = env.hatchet
    gate = Gate()
    attempts: list[int] = []

    @h.task(
        input_validator=Req,
        idempotency=status_key(fallback_ttl=timedelta(minutes=30)),
        retries=1,
        backoff_factor=5.0,
        execution_timeout=LONG,
    )
    def flaky(input: Req, ctx: Context) -> None:
        attempts.append(ctx.retry_count)
        if ctx.retry_count == 1:
            gate.pass_()
        raise RuntimeError(f"attempt {ctx.retry_count} failed")

    first = await flaky.aio_run_no_wait(Req(id="r"))
    run_id = first.workflow_run_id

    def waiting_for_retry() -> bool:
        rows = query(
            env.db, "SELECT status, retry_count FROM task_runs WHERE workflow_run_id = ?", (run_id,)
        )
        return rows == [("QUEUED", 1)]

    await wait_until(waiting_for_retry)  # between attempts, waiting out the backoff
    assert env.status(run_id) not in TERMINAL
    await collides(lambda: flaky.aio_run_no_wait(Req(id="r")), run_id)

    env.clock.advance(5)  # the backoff: the retry starts
    await gate.arrivals()
    await collides(lambda: flaky.aio_run_no_wait(Req(id="r")), run_id)
    assert env.run_ids() == [run_id]

    gate.open.set()
    await env.reaches(run_id, "FAILED")
    assert attempts == [0, 1]
    second = await flaky.aio_run_no_wait(Req(id="r"))
    assert env.run_ids() == [run_id, second.workflow_run_id]


async def test_a_status_key_is_released_by_a_run_that_completes_after_a_retry(env: Env) -> None:
    h = env.hatchet
    gate = Gate()

    @h.task(input_validator=Req, idempotency=status_key(), retries=2, execution_timeout=LONG)
    def second_time_lucky(input: Req, ctx: Context) -> dict[str, int]:
        if ctx.retry_count == 0:
            raise RuntimeError("first attempt fails")
        gate.pass_()
        return {"attempt": ctx.retry_count}

    first = await second_time_lucky.aio_run_no_wait(Req(id="x"))
    await gate.arrivals()  # the retry is running
    await collides(lambda: second_time_lucky.aio_run_no_wait(Req(id="x")), first.workflow_run_id)
    gate.open.set()
    assert await outcome(first) == {"attempt": 1}
    again = await second_time_lucky.aio_run_no_wait(Req(id="x"))
    assert await outcome(again) == {"attempt": 1}


async def test_a_status_key_is_capped_by_the_fallback_ttl_while_the_run_still_runs(
    env: Env,
) -> None:
    h = env.hatchet
    gate = Gate()

    @h.task(
        input_validator=Req,
        idempotency=status_key(fallback_ttl=timedelta(minutes=5)),
        execution_timeout=LONG,
    )
    def stuck(input: Req, ctx: Context) -> None:
        gate.pass_()

    first = await stuck.aio_run_no_wait(Req(id="s"))
    await gate.arrivals()
    env.clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    await collides(lambda: stuck.aio_run_no_wait(Req(id="s")), first.workflow_run_id)

    env.clock.advance(timedelta(seconds=2))
    second = await stuck.aio_run_no_wait(Req(id="s"))
    assert env.status(first.workflow_run_id) == "RUNNING"  # still running, key released
    await collides(lambda: stuck.aio_run_no_wait(Req(id="s")), second.workflow_run_id)
    await gate.arrivals()
    gate.open.set()
    await env.settled()
    assert env.status(first.workflow_run_id) == "COMPLETED"
    assert len(env.run_ids()) == 2


async def test_a_status_keyed_dag_workflow_holds_its_key_until_its_last_task_ends(
    env: Env,
) -> None:
    h = env.hatchet
    gate = Gate()
    wf = h.workflow(name="Pipeline", input_validator=Req, idempotency=status_key())

    @wf.task()
    def extract(input: Req, ctx: Context) -> None:
        pass

    @wf.task(parents=[extract], execution_timeout=LONG)
    def load(input: Req, ctx: Context) -> None:
        gate.pass_()

    first = await wf.aio_run_no_wait(Req(id="p"))
    await gate.arrivals()  # `extract` completed, the run is not done
    await collides(lambda: wf.aio_run_no_wait(Req(id="p")), first.workflow_run_id)
    other = await wf.aio_run_no_wait(Req(id="other"))
    await gate.arrivals()
    gate.open.set()
    await env.reaches(first.workflow_run_id, "COMPLETED")
    second = await wf.aio_run_no_wait(Req(id="p"))
    await env.settled()
    assert env.run_ids() == [first.workflow_run_id, other.workflow_run_id, second.workflow_run_id]


# -- 3. bulk triggers --------------------------------------------------------------------


async def test_run_many_creates_the_others_then_raises_with_the_collisions(env: Env) -> None:
    h = env.hatchet

    @h.task(input_validator=Req, idempotency=ttl_key())
    def item(input: Req, ctx: Context) -> dict[str, str]:
        return {"id": input.id}

    held_a = await item.aio_run_no_wait(Req(id="a"))
    held_c = await item.aio_run_no_wait(Req(id="c"))
    batch = [item.create_bulk_run_item(Req(id=k)) for k in ("a", "b", "c", "d", "e")]

    with pytest.raises(BulkTriggerIdempotencyCollisionError) as info:
        await item.aio_run_many(batch, wait_for_result=False)
    err = info.value
    created = err.successful_workflow_run_external_ids
    assert [env.input_id(run_id) for run_id in created] == ["b", "d", "e"]
    assert [type(c) for c in err.collisions] == [IdempotencyCollisionError] * 2
    assert [c.existing_run_external_id for c in err.collisions] == [
        held_a.workflow_run_id,
        held_c.workflow_run_id,
    ]
    assert env.run_ids() == [held_a.workflow_run_id, held_c.workflow_run_id, *created]
    await env.settled()  # the ones created run
    assert {env.status(r) for r in created} == {"COMPLETED"}

    # The sync form, waiting for results: raises after creating (and not waiting for) them.
    batch = [item.create_bulk_run_item(Req(id=k)) for k in ("b", "f", "g")]
    with pytest.raises(BulkTriggerIdempotencyCollisionError) as info:
        item.run_many(batch)
    assert [env.input_id(r) for r in info.value.successful_workflow_run_external_ids] == ["f", "g"]
    assert [c.existing_run_external_id for c in info.value.collisions] == [created[0]]
    await env.settled()
    assert len(env.run_ids()) == 7


async def test_run_many_without_collisions_returns_normally(env: Env) -> None:
    h = env.hatchet

    @h.task(input_validator=Req, idempotency=status_key())
    def item(input: Req, ctx: Context) -> dict[str, str]:
        return {"id": input.id}

    out = await item.aio_run_many([item.create_bulk_run_item(Req(id=k)) for k in "xyz"])
    assert out == [{"id": "x"}, {"id": "y"}, {"id": "z"}]
    # Every key was released when its run ended.
    again = item.run_many([item.create_bulk_run_item(Req(id=k)) for k in "xyz"])
    assert again == out


async def test_a_key_twice_in_one_ttl_batch_goes_to_the_first_item(env: Env) -> None:
    h = env.hatchet

    @h.task(input_validator=Req, idempotency=ttl_key())
    def item(input: Req, ctx: Context) -> None:
        pass

    batch = [item.create_bulk_run_item(Req(id=k, n=n)) for n, k in enumerate("aba")]
    with pytest.raises(BulkTriggerIdempotencyCollisionError) as info:
        await item.aio_run_many(batch, wait_for_result=False)
    first_a, b = info.value.successful_workflow_run_external_ids
    assert [env.input_id(first_a), env.input_id(b)] == ["a", "b"]
    [collision] = info.value.collisions
    assert collision.existing_run_external_id == first_a
    assert env.run_ids() == [first_a, b]
    await env.settled()


async def test_a_key_twice_in_one_status_batch_goes_to_the_first_item(env: Env) -> None:
    h = env.hatchet
    gate = Gate()

    @h.task(input_validator=Req, idempotency=status_key(), execution_timeout=LONG)
    def item(input: Req, ctx: Context) -> None:
        gate.pass_()

    batch = [item.create_bulk_run_item(Req(id=k)) for k in "aa"]
    try:
        with pytest.raises(BulkTriggerIdempotencyCollisionError) as info:
            await item.aio_run_many(batch, wait_for_result=False)
        [first] = info.value.successful_workflow_run_external_ids
        assert [c.existing_run_external_id for c in info.value.collisions] == [first]
        assert env.run_ids() == [first]
    finally:
        gate.open.set()
        await env.settled()


# -- 4. runnables and ways of triggering -------------------------------------------------


async def test_runs_create_by_name_honours_the_key_of_a_workflow_defined_here(env: Env) -> None:
    h = env.hatchet
    wf = h.workflow(name="ByName", input_validator=Req, idempotency=ttl_key())

    @wf.task()
    def step(input: Req, ctx: Context) -> None:
        pass

    details = await h.runs.aio_create("ByName", {"id": "k"})
    run_id = details.run.metadata.id
    await collides(lambda: h.runs.aio_create("ByName", {"id": "k"}), run_id)
    await collides(lambda: h.runs.create("ByName", {"id": "k"}), run_id)
    await collides(lambda: wf.aio_run_no_wait(Req(id="k")), run_id)
    assert env.run_ids() == [run_id]
    await env.settled()


def run_script(script: str, timeout: float = 30) -> str:
    from tests.test_processes import ROOT

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_runs_create_honours_the_key_of_a_workflow_another_process_defined(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "remote.db")
    run_script(
        f"""
        from datetime import timedelta
        from hatchlite import Context, EmptyModel, Hatchet, TTLBasedIdempotencyConfig
        client = Hatchet(db={db!r}, auto_worker=False)
        wf = client.workflow(
            name="Remote",
            idempotency=TTLBasedIdempotencyConfig(
                key_expression="input.id + '/' + additional_metadata.tenant",
                ttl=timedelta(hours=1),
            ),
        )

        @wf.task()
        def step(input: EmptyModel, ctx: Context) -> None:
            pass

        client.workflows.list()  # registers what this process defines
        client.close()
        """
    )
    h = Hatchet(db=db, auto_worker=False)
    try:
        first = h.runs.create("Remote", {"id": "7"}, additional_metadata={"tenant": "t"})
        run_id = first.run.metadata.id
        with pytest.raises(IdempotencyCollisionError) as info:
            h.runs.create("Remote", {"id": "7"}, additional_metadata={"tenant": "t"})
        assert info.value.existing_run_external_id == run_id
        other = h.runs.create("Remote", {"id": "7"}, additional_metadata={"tenant": "u"})
        # A key that fails on the data refuses the trigger here too.
        with pytest.raises(LimitKeyError, match="Remote"):
            h.runs.create("Remote", {"id": "7"})
        rows = query(db, "SELECT id FROM workflow_runs ORDER BY seq")
        assert [r[0] for r in rows] == [run_id, other.run.metadata.id]
    finally:
        h.close()


RACER = """
import os, sys
from datetime import timedelta
from hatchlite import Context, EmptyModel, Hatchet, IdempotencyCollisionError
from hatchlite import {config}

db, go, ready = sys.argv[1], sys.argv[2], sys.argv[3]
client = Hatchet(db=db, auto_worker=False)
wf = client.workflow(name="Racy", idempotency={config}(key_expression="input.id", {ttl}))

@wf.task()
def step(input: EmptyModel, ctx: Context) -> None:
    pass

client.workflows.list()  # engine started, definition registered: only the trigger is left
open(ready, "w").close()
while not os.path.exists(go):
    pass
try:
    ref = wf.run_no_wait({{"id": "same"}})
    print("created", ref.workflow_run_id, flush=True)
except IdempotencyCollisionError as exc:
    print("collided", exc.existing_run_external_id, flush=True)
client.close()
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("config", "ttl"),
    [
        ("TTLBasedIdempotencyConfig", "ttl=timedelta(hours=1)"),
        ("StatusBasedIdempotencyConfig", "fallback_ttl=timedelta(hours=1)"),
    ],
)
def test_processes_racing_on_one_key_get_exactly_one_run(
    tmp_path: Path, config: str, ttl: str
) -> None:
    from tests.test_processes import ROOT

    db = str(tmp_path / "race.db")
    go = tmp_path / "go"
    script = RACER.format(config=config, ttl=ttl)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db, str(go), str(tmp_path / f"ready-{i}")],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        deadline = time.monotonic() + 20
        while not all((tmp_path / f"ready-{i}").exists() for i in range(4)):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "the racers did not get ready"
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=20) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    lines = [out.split() for out, _ in outputs]
    created = [ids for verb, *ids in lines if verb == "created"]
    collided = [ids for verb, *ids in lines if verb == "collided"]
    assert len(created) == 1, lines
    assert collided == [created[0]] * 3, lines
    rows = query(db, "SELECT id FROM workflow_runs")
    assert [r[0] for r in rows] == created[0]
    assert query(db, "SELECT key, run_id FROM idempotency_keys") == [("same", created[0][0])]


# -- 5. events ---------------------------------------------------------------------------


async def test_a_push_with_a_held_key_is_stored_and_starts_nothing(env: Env) -> None:
    h = env.hatchet
    keyed = h.workflow(
        name="Keyed", on_events=["order:placed"], input_validator=Req, idempotency=ttl_key()
    )
    plain = h.workflow(name="Plain", on_events=["order:placed"], input_validator=Req)

    @keyed.task()
    def k(input: Req, ctx: Context) -> None:
        pass

    @plain.task()
    def p(input: Req, ctx: Context) -> None:
        pass

    def started(event_id: str) -> list[str]:
        runs = h.event.get(event_id).triggered_runs or []
        return [r.workflow_run_id for r in runs]

    e1 = await h.event.aio_push("order:placed", {"id": "o1"})
    [keyed_run] = env.run_ids("Keyed")
    assert len(started(e1.event_id)) == 2
    e2 = await h.event.aio_push("order:placed", {"id": "o1"})  # no error
    # Stored; the keyed workflow is skipped, the other one starts.
    assert query(env.db, "SELECT count(*) FROM events") == [(2,)]
    assert started(e2.event_id) == env.run_ids("Plain")[1:]
    assert env.run_ids("Keyed") == [keyed_run]

    # A direct trigger collides with the run the event started.
    await collides(lambda: keyed.aio_run_no_wait(Req(id="o1")), keyed_run)
    e3 = await h.event.aio_push("order:placed", {"id": "o2"})
    assert len(started(e3.event_id)) == 2
    assert len(env.run_ids("Keyed")) == 2
    await env.settled()


async def test_an_event_for_a_key_a_direct_trigger_holds_starts_nothing(env: Env) -> None:
    h = env.hatchet

    @h.task(on_events=["job:*"], input_validator=Req, idempotency=ttl_key())
    def job(input: Req, ctx: Context) -> None:
        pass

    direct = await job.aio_run_no_wait(Req(id="j"))
    pushed = await h.event.aio_push("job:go", {"id": "j"})
    assert h.event.get(pushed.event_id).triggered_runs == []
    assert env.run_ids() == [direct.workflow_run_id]
    await env.settled()


async def test_bulk_pushed_events_with_one_key_start_one_run(env: Env) -> None:
    h = env.hatchet
    gate = Gate()

    @h.task(
        on_events=["user:signup"],
        input_validator=Req,
        idempotency=status_key(),
        execution_timeout=LONG,
    )
    def welcome(input: Req, ctx: Context) -> None:
        gate.pass_()

    events = await h.event.aio_bulk_push(
        [
            BulkPushEventWithMetadata(key="user:signup", payload={"id": user})
            for user in ("u1", "u1", "u2", "u1")
        ]
    )
    triggered = [h.event.get(e.event_id).triggered_runs or [] for e in events]
    assert [len(t) for t in triggered] == [1, 0, 1, 0]
    assert env.run_ids() == [triggered[0][0].workflow_run_id, triggered[2][0].workflow_run_id]
    await gate.arrivals(2)
    gate.open.set()
    await env.settled()
    # Status-based: the key was released when the run ended; the next push starts one.
    again = await h.event.aio_push("user:signup", {"id": "u1"})
    assert len(h.event.get(again.event_id).triggered_runs or []) == 1
    await env.settled()


@pytest.mark.parametrize(
    "config",
    [ttl_key(), status_key()],
    ids=["ttl", "status"],
)
async def test_an_event_two_filters_match_starts_one_run_of_a_keyed_workflow(
    env: Env, config: Any
) -> None:
    h = env.hatchet
    gate = Gate()
    wf = h.workflow(name="Filtered", on_events=["sale"], input_validator=Req, idempotency=config)

    @wf.task(execution_timeout=LONG)
    def record(input: Req, ctx: Context) -> None:
        gate.pass_()

    listed = await h.workflows.aio_list(workflow_name="Filtered")
    [wid] = [w.metadata.id for w in listed.rows or [] if w.name == "Filtered"]
    await h.filters.aio_create(wid, "true", "shop", {"filter": 1})
    await h.filters.aio_create(wid, "input.id == 's1'", "shop", {"filter": 2})
    try:
        pushed = await h.event.aio_push("sale", {"id": "s1"}, scope="shop")
        assert len(h.event.get(pushed.event_id).triggered_runs or []) == 1
        assert len(env.run_ids()) == 1
    finally:
        gate.open.set()
        await env.settled()


async def test_an_event_whose_key_fails_is_stored_and_starts_no_run_of_that_workflow(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    h = env.hatchet

    @h.task(on_events=["ping"], idempotency=ttl_key("input.missing.id"))
    def keyed(input: EmptyModel, ctx: Context) -> None:
        pass

    @h.task(on_events=["ping"])
    def unkeyed(input: EmptyModel, ctx: Context) -> None:
        pass

    pushed = await h.event.aio_push("ping", {"id": "x"})  # no error
    assert env.run_ids("keyed") == []
    started = h.event.get(pushed.event_id).triggered_runs or []
    assert [r.workflow_run_id for r in started] == env.run_ids("unkeyed") != []
    assert env.keys() == {}
    assert "starts no run of workflow 'keyed'" in caplog.text
    assert "input.missing.id" in caplog.text
    await env.settled()


# -- 6. bad input ------------------------------------------------------------------------


def test_a_bad_key_expression_is_a_definition_error_naming_workflow_and_expression(
    hatchet: Hatchet,
) -> None:
    with pytest.raises(InvalidDefinitionError) as info:
        hatchet.workflow(name="BadKey", idempotency=ttl_key("input.("))
    assert "BadKey" in str(info.value)
    assert "input.(" in str(info.value)

    with pytest.raises(InvalidDefinitionError) as info:

        @hatchet.task(idempotency=status_key("input.id +"))
        def bad_standalone(input: EmptyModel, ctx: Context) -> None:
            pass

    assert "bad_standalone" in str(info.value)
    assert "input.id +" in str(info.value)


@pytest.mark.parametrize(
    "config",
    [
        TTLBasedIdempotencyConfig(key_expression="input.id", ttl=timedelta(0)),
        TTLBasedIdempotencyConfig(key_expression="input.id", ttl=timedelta(seconds=-5)),
        StatusBasedIdempotencyConfig(key_expression="input.id", fallback_ttl=timedelta(0)),
        StatusBasedIdempotencyConfig(key_expression="input.id", fallback_ttl=timedelta(days=-1)),
    ],
)
def test_a_non_positive_ttl_is_a_definition_error(hatchet: Hatchet, config: Any) -> None:
    with pytest.raises(InvalidDefinitionError, match="ttl must be positive"):
        hatchet.workflow(name="NoTtl", idempotency=config)
    with pytest.raises(InvalidDefinitionError, match="ttl must be positive"):

        @hatchet.task(idempotency=config)
        def no_ttl(input: EmptyModel, ctx: Context) -> None:
            pass


@pytest.mark.parametrize(
    "config",
    [
        "input.id",
        {"key_expression": "input.id", "ttl": 60},
        ConcurrencyExpression(expression="input.id", max_runs=1),
        timedelta(minutes=1),
    ],
)
def test_something_not_an_idempotency_config_is_a_definition_error(
    hatchet: Hatchet, config: Any
) -> None:
    with pytest.raises(InvalidDefinitionError, match="idempotency takes"):
        hatchet.workflow(name="NotAConfig", idempotency=config)
    with pytest.raises(InvalidDefinitionError, match="idempotency takes"):

        @hatchet.task(idempotency=config)
        def not_a_config(input: EmptyModel, ctx: Context) -> None:
            pass


async def test_a_key_that_fails_or_is_not_a_string_refuses_the_trigger(env: Env) -> None:
    h = env.hatchet

    @h.task(idempotency=ttl_key("input.order.id"))
    def by_order(input: EmptyModel, ctx: Context) -> None:
        pass

    @h.task(idempotency=status_key("input.count"))
    def by_count(input: EmptyModel, ctx: Context) -> None:
        pass

    @h.task(idempotency=ttl_key("additional_metadata.request_id"))
    def by_request(input: EmptyModel, ctx: Context) -> None:
        pass

    with pytest.raises(LimitKeyError, match=r"by_order.*input\.order\.id"):
        await by_order.aio_run_no_wait(data(id="x"))  # missing field
    with pytest.raises(LimitKeyError, match=r"by_order.*input\.order\.id"):
        by_order.run_no_wait(data(order="not a map"))
    with pytest.raises(LimitKeyError, match="not a string"):
        await by_count.aio_run(data(count=3))
    with pytest.raises(LimitKeyError, match="not a string"):
        await by_count.aio_run_no_wait(data(count=None))
    with pytest.raises(LimitKeyError, match="by_request"):
        await by_request.aio_run_no_wait()  # no metadata
    # A bulk trigger with one bad item creates none of them.
    with pytest.raises(LimitKeyError):
        await by_order.aio_run_many(
            [
                by_order.create_bulk_run_item(data(order={"id": "good"})),
                by_order.create_bulk_run_item(data(order={})),
            ],
            wait_for_result=False,
        )
    assert env.run_ids() == []
    assert env.task_count() == 0
    assert env.keys() == {}

    # And the good key is free afterwards.
    ok = await by_order.aio_run_no_wait(data(order={"id": "good"}))
    assert env.keys() == {("by_order", "good"): ok.workflow_run_id}
    await env.settled()


# -- 7. retention ------------------------------------------------------------------------


async def test_purge_deletes_expired_keys_and_keeps_held_ones(env: Env) -> None:
    h = env.hatchet
    gate = Gate()

    @h.task(input_validator=Req, idempotency=ttl_key(ttl=timedelta(minutes=1)))
    def short(input: Req, ctx: Context) -> None:
        pass

    @h.task(input_validator=Req, idempotency=ttl_key(ttl=timedelta(hours=1)))
    def long(input: Req, ctx: Context) -> None:
        pass

    @h.task(
        input_validator=Req,
        idempotency=status_key(fallback_ttl=timedelta(hours=1)),
        execution_timeout=LONG,
    )
    def running(input: Req, ctx: Context) -> None:
        gate.pass_()

    s = await short.aio_run_no_wait(Req(id="k"))
    lo = await long.aio_run_no_wait(Req(id="k"))
    r = await running.aio_run_no_wait(Req(id="k"))
    await gate.arrivals()
    env.clock.advance(timedelta(minutes=2))  # `short`'s key expired
    assert len(env.keys()) == 3

    await h.runs.aio_purge(older_than=timedelta(0))
    assert env.keys() == {("long", "k"): lo.workflow_run_id, ("running", "k"): r.workflow_run_id}
    await collides(lambda: long.aio_run_no_wait(Req(id="k")), lo.workflow_run_id)
    await collides(lambda: running.aio_run_no_wait(Req(id="k")), r.workflow_run_id)
    again = await short.aio_run_no_wait(Req(id="k"))
    assert again.workflow_run_id != s.workflow_run_id
    gate.open.set()
    await env.settled()


# -- 8. children -------------------------------------------------------------------------


async def test_a_retried_parent_gets_its_existing_child_despite_the_childs_key(
    env: Env,
) -> None:
    h = env.hatchet

    @h.task(idempotency=ttl_key(ttl=timedelta(hours=1)))
    def child(input: EmptyModel, ctx: Context) -> None:
        pass

    spawned: list[str] = []

    @h.task(retries=1)
    def parent(input: EmptyModel, ctx: Context) -> None:
        spawned.append(child.run_no_wait(data(id="k")).workflow_run_id)
        if ctx.retry_count == 0:
            raise RuntimeError("first attempt fails after spawning")

    await parent.aio_run()
    assert len(spawned) == 2
    assert spawned[0] == spawned[1]
    assert env.run_ids("child") == [spawned[0]]


async def test_a_respawned_child_does_not_leave_its_key_to_a_run_that_does_not_exist(
    env: Env,
) -> None:
    """The child's ttl has passed when the parent's retry spawns it again (same child
    index): the existing child is returned, and the key must name a real run."""
    h = env.hatchet

    @h.task(idempotency=ttl_key(ttl=timedelta(minutes=1)))
    def child(input: EmptyModel, ctx: Context) -> None:
        pass

    spawned: list[str] = []

    @h.task(retries=1, backoff_factor=300.0)
    def parent(input: EmptyModel, ctx: Context) -> None:
        spawned.append(child.run_no_wait(data(id="k")).workflow_run_id)
        if ctx.retry_count == 0:
            raise RuntimeError("first attempt fails after spawning")

    ref = await parent.aio_run_no_wait()

    def waiting_for_retry() -> bool:
        rows = query(
            env.db,
            "SELECT status, retry_count FROM task_runs WHERE workflow_run_id = ?",
            (ref.workflow_run_id,),
        )
        return rows == [("QUEUED", 1)]

    await wait_until(waiting_for_retry)
    env.clock.advance(301)  # past the backoff and the child's ttl
    await outcome(ref)
    assert spawned == [spawned[0]] * 2  # the existing child, as without idempotency
    assert env.run_ids("child") == [spawned[0]]
    holders = set(env.keys().values())
    assert holders <= set(env.run_ids()), "the key names a run that does not exist"


async def test_a_child_whose_key_is_held_raises_in_the_parent(env: Env) -> None:
    h = env.hatchet

    @h.task(input_validator=Req, idempotency=ttl_key())
    def child(input: Req, ctx: Context) -> None:
        pass

    held = await child.aio_run_no_wait(Req(id="c"))
    seen: list[str] = []

    @h.task()
    def parent(input: EmptyModel, ctx: Context) -> None:
        try:
            child.run_no_wait(Req(id="c"))
        except IdempotencyCollisionError as exc:
            seen.append(exc.existing_run_external_id)

    await parent.aio_run()
    assert seen == [held.workflow_run_id]
    assert env.run_ids("child") == [held.workflow_run_id]


# -- 9. what a collision reports ---------------------------------------------------------

QUIET = """
from datetime import timedelta
from hatchlite import Context, EmptyModel, Hatchet, IdempotencyCollisionError
from hatchlite import TTLBasedIdempotencyConfig

client = Hatchet(db={db!r}, auto_worker=False)
wf = client.workflow(
    name="Quiet",
    idempotency=TTLBasedIdempotencyConfig(key_expression="input.id", ttl=timedelta(hours=1)),
)

@wf.task()
def step(input: EmptyModel, ctx: Context) -> None:
    pass

try:
    wf.run_no_wait({{"id": "q"}})
    print("created")
except IdempotencyCollisionError:
    print("collided")
client.close()
"""


def test_a_trigger_that_collided_does_not_warn_that_its_runs_stay_queued(
    tmp_path: Path,
) -> None:
    from tests.test_processes import ROOT

    db = str(tmp_path / "quiet.db")
    runs = [
        subprocess.run(
            [sys.executable, "-c", QUIET.format(db=db)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["created", "collided"]
    assert "no running worker" in runs[0].stderr  # a run was created: rightly warned
    assert "no running worker" not in runs[1].stderr, runs[1].stderr
