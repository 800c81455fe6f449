"""Failures, as Hatchet handles them: retries and backoff, non-retryable errors, execution
and schedule timeouts, failure cascades in DAGs, on-failure / on-success tasks and
illegal task outputs."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    Context,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    NonRetryableException,
    TaskRunError,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.testing import TestClock
from hatchlite.types import V1TaskStatus
from tests.conftest import outcome, query, wait_until

# A hang is a failure: no test here should take more than about a second.
pytestmark = pytest.mark.timeout(20)


class StepError(Exception):
    """A user exception with a distinctive class name."""


async def wait_event(event: threading.Event, timeout: float = 2.0) -> bool:
    return await asyncio.to_thread(event.wait, timeout)


def attempts(db_path: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db_path,
        """SELECT task_run_id, retry_count, status, worker_id, error, started_at, finished_at
           FROM task_attempts WHERE task_run_id = ? ORDER BY id""",
        (task_id,),
    )


def task_rows(db_path: str, run_id: str) -> dict[str, tuple[Any, ...]]:
    """task name -> (status, retry_count, started_at, output, error) of one run."""
    rows = query(
        db_path,
        """SELECT task_name, status, retry_count, started_at, output, error FROM task_runs
           WHERE workflow_run_id = ?""",
        (run_id,),
    )
    return {r[0]: r[1:] for r in rows}


def run_status(db_path: str, run_id: str) -> str:
    return str(query(db_path, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


@pytest.fixture
def clock_db(tmp_path: Path) -> str:
    """A separate database for clients on a TestClock (the `hatchet` fixture's engine
    runs on the system clock, and one database has one engine with one clock)."""
    return str(tmp_path / "clock.db")


# -- retries -------------------------------------------------------------------------


def test_retries_until_success(hatchet: Hatchet, db_path: str) -> None:
    seen: list[tuple[int, int, int, str]] = []

    @hatchet.task(retries=2)
    def flaky(input: EmptyModel, ctx: Context) -> dict[str, int]:
        seen.append((ctx.retry_count, ctx.attempt_number, ctx.max_attempts, ctx.task_run_id))
        if ctx.retry_count < 2:
            raise StepError(f"boom {ctx.retry_count}")
        return {"attempt": ctx.attempt_number}

    ref = flaky.run_no_wait()
    assert ref.result() == {"attempt": 3}
    task_id = ref.workflow_run_id  # a one-task workflow: run id == task id
    # retry_count is 0-based, attempt_number = retry_count + 1; the task id is stable.
    assert seen == [(0, 1, 3, task_id), (1, 2, 3, task_id), (2, 3, 3, task_id)]

    rows = attempts(db_path, task_id)
    failed = [r for r in rows if r[2] == "FAILED"]
    assert [r[1] for r in failed] == [0, 1]  # one row per failed attempt
    for (row_task, retry, _, worker_id, error, started, finished), text in zip(
        failed, ["boom 0", "boom 1"], strict=True
    ):
        assert row_task == task_id
        assert worker_id
        err = json.loads(error)
        assert err["exc_type"] == "StepError"
        assert err["message"] == text
        assert started is not None and finished >= started
        assert retry in (0, 1)
    # The successful last attempt is recorded too.
    assert [(r[1], r[2], r[4]) for r in rows[2:]] == [(2, "COMPLETED", None)]

    status, retry_count, *_ = task_rows(db_path, task_id)["flaky"]
    assert (status, retry_count) == ("COMPLETED", 2)
    assert run_status(db_path, task_id) == "COMPLETED"


async def test_exhausted_retries_fail_the_run(hatchet: Hatchet, db_path: str) -> None:
    calls: list[int] = []

    @hatchet.task(retries=2)
    def always_fails(input: EmptyModel, ctx: Context) -> dict[str, int]:
        calls.append(ctx.attempt_number)
        raise StepError(f"step1 failed on attempt {ctx.attempt_number}")

    ref = always_fails.run_no_wait()
    run_id = ref.workflow_run_id
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        ref.result()
    group = info.value
    assert isinstance(group, ValueError)
    assert group.message == f"Workflow run {run_id} failed."
    assert len(group.exceptions) == 1
    error = group.exceptions[0]
    assert isinstance(error, TaskRunError)
    assert error.exc_type == "StepError"
    assert "step1 failed on attempt 3" in error.exc  # the last attempt's error
    assert error.task_run_external_id == run_id
    assert "raise StepError" in error.trace
    text = str(group)
    assert run_id in text and "step1 failed on attempt 3" in text and "StepError" in text

    assert calls == [1, 2, 3]  # retries + 1 attempts
    rows = attempts(db_path, run_id)
    assert [(r[1], r[2]) for r in rows] == [(0, "FAILED"), (1, "FAILED"), (2, "FAILED")]
    status, retry_count, *_ = task_rows(db_path, run_id)["always_fails"]
    assert (status, retry_count) == ("FAILED", 2)
    assert run_status(db_path, run_id) == "FAILED"
    assert hatchet.runs.get_status(run_id) == V1TaskStatus.FAILED

    # aio_result raises the same way.
    with pytest.raises(FailedTaskRunExceptionGroup, match="step1 failed on attempt 3"):
        await outcome(ref)
    with pytest.raises(FailedTaskRunExceptionGroup):
        await always_fails.aio_run()


def test_backoff_waits_factor_to_the_k_capped_at_max(clock_db: str) -> None:
    client = Hatchet(db=clock_db, clock=TestClock(auto_advance=True))
    starts: list[float] = []
    try:

        @client.task(retries=4, backoff_factor=2, backoff_max_seconds=5)
        def backs_off(input: EmptyModel, ctx: Context) -> None:
            starts.append(client.clock.time())
            raise StepError("again")

        real_start = time.monotonic()
        ref = backs_off.run_no_wait()
        with pytest.raises(FailedTaskRunExceptionGroup):
            ref.result()
        real_elapsed = time.monotonic() - real_start

        # retry k waits min(backoff_max_seconds, backoff_factor ** k) seconds
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert gaps == pytest.approx([2, 4, 5, 5])
        rows = attempts(clock_db, ref.workflow_run_id)
        assert len(rows) == 5
        started = [r[5] for r in rows]
        assert started == pytest.approx(starts)
        db_gaps = [b - a for a, b in itertools.pairwise(started)]
        assert db_gaps == pytest.approx([2, 4, 5, 5])
        assert real_elapsed < 1.0  # 16 s of backoff took no real time
    finally:
        client.close()


def test_without_backoff_factor_retry_is_immediate(clock_db: str) -> None:
    client = Hatchet(db=clock_db, clock=TestClock(auto_advance=True))
    starts: list[float] = []
    try:

        @client.task(retries=2)
        def quick_retry(input: EmptyModel, ctx: Context) -> dict[str, int]:
            starts.append(client.clock.time())
            if ctx.retry_count < 2:
                raise StepError("again")
            return {"n": ctx.retry_count}

        assert quick_retry.run() == {"n": 2}
        assert len(starts) == 3
        assert starts[0] == starts[1] == starts[2]  # no clock time passed between attempts
    finally:
        client.close()


def test_non_retryable_exception_stops_retries(hatchet: Hatchet, db_path: str) -> None:
    calls: list[int] = []

    @hatchet.task(retries=3)
    def refuses(input: EmptyModel, ctx: Context) -> None:
        calls.append(ctx.retry_count)
        raise NonRetryableException("do not retry me")

    ref = refuses.run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        ref.result()
    assert calls == [0]
    [error] = info.value.exceptions
    assert error.exc_type == "NonRetryableException"
    assert "do not retry me" in error.exc
    assert [(r[1], r[2]) for r in attempts(db_path, ref.workflow_run_id)] == [(0, "FAILED")]
    assert task_rows(db_path, ref.workflow_run_id)["refuses"][:2] == ("FAILED", 0)


# -- execution timeout ------------------------------------------------------------------


async def test_async_task_past_execution_timeout_fails(hatchet: Hatchet, db_path: str) -> None:
    interrupted = threading.Event()

    @hatchet.task(execution_timeout=timedelta(seconds=0.2))
    async def hangs(input: EmptyModel, ctx: Context) -> None:
        try:
            await asyncio.Event().wait()  # forever
        except asyncio.CancelledError:
            interrupted.set()
            raise

    real_start = time.monotonic()
    ref = await hangs.aio_run(wait_for_result=False)
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await outcome(ref)
    assert time.monotonic() - real_start < 1.5
    [error] = info.value.exceptions
    assert "Task exceeded timeout of" in error.exc
    assert error.exc_type == "HatchetError"  # an engine error, not the user's
    assert "Task exceeded timeout of" in str(info.value)
    assert interrupted.is_set()  # the coroutine was cancelled
    assert run_status(db_path, ref.workflow_run_id) == "FAILED"
    rows = attempts(db_path, ref.workflow_run_id)
    assert len(rows) == 1 and rows[0][1] == 0


async def test_execution_timeout_is_retried(hatchet: Hatchet, db_path: str) -> None:
    attempt_numbers: list[int] = []

    @hatchet.task(execution_timeout=timedelta(seconds=0.2), retries=1)
    async def hangs_twice(input: EmptyModel, ctx: Context) -> None:
        attempt_numbers.append(ctx.attempt_number)
        await asyncio.Event().wait()

    ref = await hangs_twice.aio_run(wait_for_result=False)
    with pytest.raises(FailedTaskRunExceptionGroup, match="Task exceeded timeout of"):
        await outcome(ref)
    assert attempt_numbers == [1, 2]
    rows = attempts(db_path, ref.workflow_run_id)
    assert [r[1] for r in rows] == [0, 1]
    assert all("Task exceeded timeout of" in json.loads(r[4])["message"] for r in rows)
    assert task_rows(db_path, ref.workflow_run_id)["hangs_twice"][:2] == ("FAILED", 1)


async def test_sync_task_past_execution_timeout_fails_promptly(
    hatchet: Hatchet, db_path: str
) -> None:
    release = threading.Event()
    finished = threading.Event()

    @hatchet.task(execution_timeout=timedelta(seconds=0.2))
    def overruns(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        release.wait(5)  # a thread cannot be killed; it runs on after the timeout
        finished.set()
        return {"late": True}

    try:
        real_start = time.monotonic()
        ref = overruns.run_no_wait()
        with pytest.raises(FailedTaskRunExceptionGroup, match="Task exceeded timeout of"):
            await outcome(ref)
        assert time.monotonic() - real_start < 1.5
        assert not finished.is_set()  # ended while the thread still runs
        assert run_status(db_path, ref.workflow_run_id) == "FAILED"
    finally:
        release.set()
    # The late return value does not change the outcome.
    assert await wait_event(finished)
    await RUNTIME.acall(hatchet._engine.flush)  # write the late attempt's outcome, if any
    status, _, _, output, error = task_rows(db_path, ref.workflow_run_id)["overruns"]
    assert (status, output) == ("FAILED", None)
    assert "Task exceeded timeout of" in json.loads(error)["message"]


async def test_sync_task_sees_cancellation_flag_after_timeout(hatchet: Hatchet) -> None:
    flagged = threading.Event()
    done = threading.Event()

    @hatchet.task(execution_timeout=timedelta(seconds=0.1))
    def polls(input: EmptyModel, ctx: Context) -> None:
        try:
            stop = time.monotonic() + 0.5
            while time.monotonic() < stop:
                if ctx.is_cancelled and ctx.exit_flag:
                    flagged.set()
                    return
                done.wait(0.005)
        finally:
            done.set()

    ref = polls.run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup, match="Task exceeded timeout of"):
        await outcome(ref)
    await wait_event(done)
    assert flagged.is_set()  # reference §3.1: the flag is set on cancel, timeout, eviction


# -- schedule timeout -------------------------------------------------------------------


async def test_schedule_timeout_cancels_a_queued_run(clock_db: str) -> None:
    clock = TestClock()
    client = Hatchet(db=clock_db, auto_worker=False, clock=clock)
    try:
        wf = client.workflow(name="never-scheduled")

        @wf.task()  # default schedule_timeout: 5 minutes
        def waits_for_a_worker(input: EmptyModel, ctx: Context) -> dict[str, bool]:
            return {"ran": True}

        ref = await wf.aio_run(wait_for_result=False)
        run_id = ref.workflow_run_id
        assert client.runs.get_status(run_id) == V1TaskStatus.QUEUED

        clock.advance(timedelta(minutes=4))
        await RUNTIME.acall(client._engine.flush)  # one scheduler step at the new time
        assert client.runs.get_status(run_id) == V1TaskStatus.QUEUED  # not yet

        clock.advance(timedelta(minutes=2))  # 6 minutes queued > 5 minutes
        await wait_until(lambda: client.runs.get_status(run_id) == V1TaskStatus.CANCELLED)

        assert await outcome(ref) == {}  # cancelled: returns normally, no outputs
        with pytest.raises(ValueError, match=f"Workflow run {run_id} was cancelled."):
            ref.result()
        rows = task_rows(clock_db, run_id)
        assert rows["waits_for_a_worker"][0] == "CANCELLED"
        assert [r[2] for r in attempts(clock_db, run_id)] == ["SCHEDULING_TIMED_OUT"]
        assert rows["waits_for_a_worker"][2] is None  # never started
        detail = client.runs.get_details(run_id)
        assert detail.task_runs["waits_for_a_worker"].status == V1TaskStatus.CANCELLED
        assert detail.task_runs["waits_for_a_worker"].error is None  # no error text
    finally:
        client.close()


# -- failures in DAGs -------------------------------------------------------------------


async def test_failed_task_cancels_its_descendants_only(hatchet: Hatchet, db_path: str) -> None:
    ran: list[str] = []
    failing = threading.Event()
    wf = hatchet.workflow(name="cascade")

    @wf.task()
    def root(input: EmptyModel, ctx: Context) -> None:
        ran.append("root")
        failing.set()
        raise StepError("root failed")

    @wf.task(parents=[root])
    def child(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ran.append("child")
        return {"c": 1}

    @wf.task(parents=[child])
    def grandchild(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ran.append("grandchild")
        return {"g": 1}

    @wf.task()
    def independent(input: EmptyModel, ctx: Context) -> dict[str, int]:
        # Still running when root's failure is recorded; its child is released after it.
        failing.wait(2)
        stop = time.monotonic() + 2
        while task_rows(db_path, ctx.workflow_run_id)["root"][0] != "FAILED":
            assert time.monotonic() < stop, "root never failed"
            failing.wait(0.002)
        ran.append("independent")
        return {"i": 1}

    @wf.task(parents=[independent])
    def after_independent(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ran.append("after_independent")
        return {"a": ctx.task_output(independent)["i"]}

    ref = await wf.aio_run(wait_for_result=False)
    run_id = ref.workflow_run_id
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await outcome(ref)
    [error] = info.value.exceptions  # cancelled tasks carry no error
    assert error.exc_type == "StepError" and error.exc == "root failed"

    assert sorted(ran) == ["after_independent", "independent", "root"]
    rows = task_rows(db_path, run_id)
    assert {name: row[0] for name, row in rows.items()} == {
        "root": "FAILED",
        "child": "CANCELLED",
        "grandchild": "CANCELLED",
        "independent": "COMPLETED",
        "after_independent": "COMPLETED",
    }
    assert rows["child"][2] is None and rows["grandchild"][2] is None  # never started
    assert json.loads(rows["after_independent"][3]) == {"a": 1}
    assert run_status(db_path, run_id) == "FAILED"
    assert hatchet.runs.get_status(run_id) == V1TaskStatus.FAILED
    with pytest.raises(FailedTaskRunExceptionGroup, match="root failed"):
        ref.result()


# -- on-failure / on-success tasks -------------------------------------------------------


async def test_on_failure_task_sees_the_errors(hatchet: Hatchet, db_path: str) -> None:
    seen: dict[str, Any] = {}
    on_failure_ran = threading.Event()
    wf = hatchet.workflow(name="with-on-failure")

    @wf.task()
    def step1(input: EmptyModel, ctx: Context) -> None:
        raise StepError("step1 failed")

    @wf.task()
    def step2(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        # On-failure runs as soon as a task fails, while this one still runs.
        return {"saw_on_failure": on_failure_ran.wait(2)}

    @wf.on_failure_task()
    def cleanup(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        seen["errors"] = ctx.task_run_errors
        seen["fetched"] = ctx.fetch_task_run_error(step1)
        seen["parsed"] = ctx.get_task_run_error(step1)
        seen["step2_error"] = ctx.get_task_run_error(step2)
        seen["name"] = ctx.task_name
        on_failure_ran.set()
        return {"handled": True}

    assert cleanup.name == "cleanup-on-failure"
    ref = await wf.aio_run(wait_for_result=False)
    run_id = ref.workflow_run_id
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await outcome(ref)
    assert [e.exc for e in info.value.exceptions] == ["step1 failed"]

    assert seen["name"] == "cleanup-on-failure"
    assert set(seen["errors"]) == {"step1"}
    assert "step1 failed" in seen["errors"]["step1"]
    assert "StepError" in seen["errors"]["step1"]
    assert isinstance(seen["fetched"], str) and "step1 failed" in seen["fetched"]
    parsed = seen["parsed"]
    assert isinstance(parsed, TaskRunError)
    assert (parsed.exc_type, parsed.exc) == ("StepError", "step1 failed")
    assert seen["step2_error"] is None

    rows = task_rows(db_path, run_id)
    assert rows["cleanup-on-failure"][0] == "COMPLETED"
    assert json.loads(rows["cleanup-on-failure"][3]) == {"handled": True}
    assert json.loads(rows["step2"][3]) == {"saw_on_failure": True}
    assert run_status(db_path, run_id) == "FAILED"  # the run stays FAILED


def test_on_failure_task_does_not_run_without_a_failure(hatchet: Hatchet, db_path: str) -> None:
    called: list[str] = []
    wf = hatchet.workflow(name="no-failure")

    @wf.task()
    def fine(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    @wf.on_failure_task()
    def on_fail(input: EmptyModel, ctx: Context) -> None:
        called.append("on_fail")

    ref = wf.run_no_wait()
    assert ref.result() == {"fine": {"ok": 1}}
    assert called == []
    rows = task_rows(db_path, ref.workflow_run_id)
    assert set(rows) == {"fine"}  # no on-failure task run was created
    assert run_status(db_path, ref.workflow_run_id) == "COMPLETED"


def test_on_success_task_runs_after_every_task_succeeded(hatchet: Hatchet, db_path: str) -> None:
    seen: dict[str, Any] = {}
    wf = hatchet.workflow(name="with-on-success")

    @wf.task()
    def a(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"a": 1}

    @wf.task(parents=[a])
    def b(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"b": 2}

    @wf.task()
    def c(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"c": 3}

    @wf.on_success_task()
    def celebrate(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        seen["leaves"] = (ctx.task_output(b), ctx.task_output(c))
        seen["name"] = ctx.task_name
        return {"celebrated": True}

    assert celebrate.name == "celebrate-on-success"
    ref = wf.run_no_wait()
    assert ref.result() == {
        "a": {"a": 1},
        "b": {"b": 2},
        "c": {"c": 3},
        "celebrate-on-success": {"celebrated": True},
    }
    assert seen == {"leaves": ({"b": 2}, {"c": 3}), "name": "celebrate-on-success"}
    rows = query(
        db_path,
        "SELECT task_name, started_at FROM task_runs WHERE workflow_run_id = ?",
        (ref.workflow_run_id,),
    )
    starts = dict(rows)
    # Its parents are the leaves (b and c): it started after both.
    finished = dict(
        query(
            db_path,
            "SELECT task_name, finished_at FROM task_runs WHERE workflow_run_id = ?",
            (ref.workflow_run_id,),
        )
    )
    assert starts["celebrate-on-success"] >= max(finished["b"], finished["c"])


def test_on_success_task_does_not_run_when_a_task_fails(hatchet: Hatchet, db_path: str) -> None:
    called: list[str] = []
    wf = hatchet.workflow(name="failing-with-on-success")

    @wf.task()
    def ok(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    @wf.task()
    def broken(input: EmptyModel, ctx: Context) -> None:
        raise StepError("broken failed")

    @wf.on_success_task()
    def celebrate(input: EmptyModel, ctx: Context) -> None:
        called.append("celebrate")

    ref = wf.run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup, match="broken failed"):
        ref.result()
    assert called == []
    rows = task_rows(db_path, ref.workflow_run_id)
    assert rows["celebrate-on-success"][0] == "CANCELLED"
    assert rows["celebrate-on-success"][2] is None
    assert run_status(db_path, ref.workflow_run_id) == "FAILED"


# -- task outputs ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a string", 42, [1, 2]], ids=["str", "int", "list"])
def test_illegal_output_fails_the_attempt(hatchet: Hatchet, db_path: str, bad: object) -> None:
    @hatchet.task(retries=1)
    def returns_bad(input: EmptyModel, ctx: Context) -> Any:
        return bad

    ref = returns_bad.run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        ref.result()
    [error] = info.value.exceptions
    assert error.exc_type == "IllegalTaskOutputError"
    assert "IllegalTaskOutputError" in str(info.value)
    # Illegal output is an ordinary failure: retried.
    rows = attempts(db_path, ref.workflow_run_id)
    assert [(r[1], r[2]) for r in rows] == [(0, "FAILED"), (1, "FAILED")]


def test_output_with_nul_character_fails(hatchet: Hatchet) -> None:
    @hatchet.task()
    def returns_nul(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"text": "a\u0000b"}

    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        returns_nul.run()
    [error] = info.value.exceptions
    assert error.exc_type == "IllegalTaskOutputError"


class Model(BaseModel):
    value: int


@dataclasses.dataclass
class Data:
    value: int


def test_legal_outputs_succeed(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task()
    def model(input: EmptyModel, ctx: Context) -> Model:
        return Model(value=1)

    @hatchet.task()
    def data(input: EmptyModel, ctx: Context) -> Data:
        return Data(value=2)

    @hatchet.task()
    def nothing(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.task()
    def empty(input: EmptyModel, ctx: Context) -> None:
        return {}  # type: ignore[return-value]

    @hatchet.task()
    def empty_dict(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {}

    assert model.run() == Model(value=1)
    assert data.run() == Data(value=2)
    # Falsy output is no output; `-> None` validates it into an EmptyModel.
    assert nothing.run() == EmptyModel()
    assert isinstance(empty.run(), EmptyModel)
    assert empty_dict.run() == {}

    wf = hatchet.workflow(name="falsy-outputs")

    @wf.task()
    def gives_none(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task()
    def gives_empty(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {}

    @wf.task()
    def gives_model(input: EmptyModel, ctx: Context) -> Model:
        return Model(value=3)

    ref = wf.run_no_wait()
    # result(): every task, None for no output.
    assert ref.result() == {"gives_none": None, "gives_empty": None, "gives_model": {"value": 3}}
    rows = task_rows(db_path, ref.workflow_run_id)
    assert rows["gives_none"][0] == rows["gives_empty"][0] == "COMPLETED"
    assert rows["gives_none"][3] is None and rows["gives_empty"][3] is None


async def test_aio_result_omits_tasks_without_output(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="falsy-aio")

    @wf.task()
    def gives_none(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task()
    def gives_data(input: EmptyModel, ctx: Context) -> Data:
        return Data(value=4)

    assert await wf.aio_run() == {"gives_data": {"value": 4}}
