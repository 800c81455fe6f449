"""Defects found trying hatchlite as a new user: BaseExceptions from tasks, a task that
kills its process, two definitions under one name, runs nobody serves, parameters
accepted but not enforced, stream chunks, sizes, and exiting with a stuck thread."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hatchlite import (
    ClientConfig,
    Context,
    DurableContext,
    EmptyModel,
    EvictionPolicy,
    FailedTaskRunExceptionGroup,
    Hatchet,
    InvalidDefinitionError,
    UserEventCondition,
    V1TaskStatus,
)
from hatchlite.exceptions import PayloadTooLargeError
from hatchlite.store.workers import MAX_LOST
from tests.conftest import query
from tests.conftest import wait_until_sync as wait_until
from tests.procs.hardening_worker import define
from tests.test_processes import ROOT

# -- BaseExceptions raised by tasks ---------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError]
)
def test_a_base_exception_fails_the_attempt_and_counts_as_a_retry(
    hatchet: Hatchet, kind: str, exc: type[BaseException]
) -> None:
    attempts: list[int] = []

    if kind == "sync":

        @hatchet.task(name=f"raiser_{kind}_{exc.__name__}", retries=1)
        def raiser(input: EmptyModel, ctx: Context) -> dict[str, int]:
            attempts.append(ctx.attempt_number)
            raise exc()

    else:

        @hatchet.task(name=f"raiser_{kind}_{exc.__name__}", retries=1)
        async def raiser(input: EmptyModel, ctx: Context) -> dict[str, int]:
            attempts.append(ctx.attempt_number)
            raise exc()

    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        raiser.run()
    assert attempts == [1, 2]
    assert [e.exc_type for e in info.value.exceptions] == [exc.__name__]

    # The engine is still there for the next call.
    @hatchet.task(name=f"after_{kind}_{exc.__name__}")
    def after(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    assert after.run() == {"ok": 1}


def test_keyboard_interrupt_escaping_a_background_task_does_not_stop_the_engine(
    hatchet: Hatchet, caplog: pytest.LogCaptureFixture
) -> None:
    @hatchet.task()
    async def spawner(input: EmptyModel, ctx: Context) -> dict[str, int]:
        async def boom() -> None:
            raise KeyboardInterrupt

        background = asyncio.get_running_loop().create_task(boom())
        await asyncio.wait([background])
        assert isinstance(background.exception(), KeyboardInterrupt)
        return {"ok": 1}

    with caplog.at_level(logging.ERROR, logger="hatchlite"):
        assert spawner.run() == {"ok": 1}
        assert spawner.run() == {"ok": 1}
    assert "KeyboardInterrupt escaped a task on the hatchlite engine loop" in caplog.text


# -- in a worker process ----------------------------------------------------------------


class WorkerProcess:
    def __init__(self, db: str, tmp: Path) -> None:
        self.db, self.tmp = db, tmp
        self.count = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.count += 1
        log = open(self.tmp / f"worker-{self.count}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.procs.hardening_worker", self.db],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def registered() -> bool:
            try:
                return bool(query(self.db, "SELECT 1 FROM workers WHERE pid = ?", (proc.pid,)))
            except sqlite3.OperationalError:  # the schema is not there yet
                return False

        wait_until(lambda: proc.poll() is not None or registered(), what="worker registration")
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("worker-*.log")))


def _statuses(db: str, run_id: str) -> str:
    return str(query(db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))[0][0])


@pytest.mark.timeout(90)
def test_a_poison_task_fails_and_the_worker_process_keeps_serving(tmp_path: Path) -> None:
    db = str(tmp_path / "poison.db")
    client = Hatchet(db=db, auto_worker=False)
    interrupts, exits, _, healthy, *_ = define(client)
    workers = WorkerProcess(db, tmp_path)
    proc = workers.start()
    try:
        with pytest.raises(FailedTaskRunExceptionGroup, match="KeyboardInterrupt"):
            interrupts.run()  # type: ignore[attr-defined]
        with pytest.raises(FailedTaskRunExceptionGroup, match="SystemExit"):
            exits.run()  # type: ignore[attr-defined]
        assert proc.poll() is None, workers.logs()
        assert healthy.run() == {"pid": proc.pid}  # type: ignore[attr-defined]
        # Two attempts for the task with retries=1: no reassignment, no crash loop.
        assert query(
            db,
            "SELECT a.status FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id "
            "WHERE t.task_name = 'interrupts' ORDER BY a.id",
        ) == [("FAILED",), ("FAILED",)]
        # The worker in the other process serves them all: no run was marked unserved.
        assert query(db, "SELECT count(*) FROM task_events") == [(0,)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, workers.logs()
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()


@pytest.mark.timeout(120)
def test_a_task_that_kills_its_process_fails_after_a_bounded_number_of_restarts(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "deaths.db")
    client = Hatchet(db=db, auto_worker=False)
    _, _, kills, healthy, *_ = define(client)
    workers = WorkerProcess(db, tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ref = kills.run_no_wait()  # type: ignore[attr-defined]
        for _ in range(MAX_LOST):
            proc = workers.start()  # a service manager restarting the worker
            procs.append(proc)
            assert proc.wait(30) == -signal.SIGKILL, workers.logs()
        last = workers.start()  # its start-up recovery gives up on the task run
        procs.append(last)
        wait_until(lambda: _statuses(db, ref.workflow_run_id) == "FAILED", what="FAILED")
        details = client.runs.get_details(ref.workflow_run_id)
        error = details.task_runs["kills_its_process"].error or ""
        assert f"died {MAX_LOST} times" in error
        assert last.poll() is None
        assert healthy.run() == {"pid": last.pid}  # type: ignore[attr-defined]
        reassigned = query(db, "SELECT count(*) FROM task_attempts WHERE status = 'REASSIGNED'")
        assert reassigned == [(MAX_LOST - 1,)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        client.close()


@pytest.mark.timeout(120)
def test_tasks_running_beside_a_poison_task_are_not_failed_with_it(tmp_path: Path) -> None:
    db = str(tmp_path / "neighbours.db")
    client = Hatchet(db=db, auto_worker=False)
    *_, innocent, poison, _ = define(client)
    workers = WorkerProcess(db, tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        innocents = [innocent.run_no_wait() for _ in range(3)]  # type: ignore[attr-defined]
        bad = poison.run_no_wait()  # type: ignore[attr-defined]
        while _statuses(db, bad.workflow_run_id) != "FAILED":
            proc = workers.start()  # a service manager restarting the worker
            procs.append(proc)
            wait_until(
                lambda: proc.poll() is not None or _statuses(db, bad.workflow_run_id) == "FAILED",
                what="the poison task to kill the worker or fail",
            )
            assert len(procs) <= MAX_LOST + 2, workers.logs()
        # Suspects ran alone after the first death: the neighbours completed.
        for ref in innocents:
            assert ref.result()["pid"] in {p.pid for p in procs}
        error = client.runs.get_details(bad.workflow_run_id).task_runs["poison"].error or ""
        assert f"died {MAX_LOST} times while running it alone" in error
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        client.close()


@pytest.mark.timeout(120)
def test_a_batch_that_kills_its_worker_fails_its_members_in_the_end(tmp_path: Path) -> None:
    """The members of a batch whose worker died are suspects: each goes again alone, and
    fails after MAX_LOST deaths alone, instead of being batched anew forever."""
    db = str(tmp_path / "poison-batch.db")
    client = Hatchet(db=db, auto_worker=False)
    poison_batch = define(client)[-1]
    workers = WorkerProcess(db, tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        refs = [poison_batch.run_no_wait() for _ in range(2)]  # type: ignore[attr-defined]
        ids = [ref.workflow_run_id for ref in refs]
        while any(_statuses(db, run_id) != "FAILED" for run_id in ids):
            proc = workers.start()  # a service manager restarting the worker
            procs.append(proc)
            wait_until(
                lambda: (
                    proc.poll() is not None
                    or all(_statuses(db, run_id) == "FAILED" for run_id in ids)
                ),
                what="the batch to kill the worker or its members to fail",
            )
            # Once together, then each member alone MAX_LOST times (and a last start).
            assert len(procs) <= 2 * MAX_LOST + 2, workers.logs()
        for run_id in ids:
            error = client.runs.get_details(run_id).task_runs["poison_batch"].error or ""
            assert f"died {MAX_LOST} times while running it alone" in error
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        client.close()


@pytest.mark.timeout(60)
def test_a_task_only_another_version_has_is_not_claimed_and_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "versions.db")
    workers = WorkerProcess(db, tmp_path)
    proc = workers.start()
    client = Hatchet(db=db, auto_worker=False)
    # This process's `shared` has task `alpha`; the worker's has `beta`.
    shared = client.workflow(name="shared")

    @shared.task(schedule_timeout=1.0)
    def alpha(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"from": "this process"}

    try:
        with caplog.at_level(logging.WARNING, logger="hatchlite"):
            ref = shared.run_no_wait()
        assert "no running worker" in caplog.text
        # Not claimed (never RUNNING), and cancelled by its schedule timeout.
        with pytest.raises(ValueError, match="cancelled"):
            ref.result()
        assert query(db, "SELECT status, worker_id FROM task_runs WHERE task_name = 'alpha'") == [
            ("CANCELLED", None)
        ]
        events = query(db, "SELECT event_type FROM task_events")
        assert events == [("REQUEUED_NO_WORKER",)]
        assert proc.poll() is None
    finally:
        proc.kill()
        client.close()


# -- two definitions under one name ---------------------------------------------------


def test_two_standalone_tasks_with_one_name_are_refused(hatchet: Hatchet) -> None:
    @hatchet.task(name="process")
    def billing(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"from": "billing"}

    with pytest.raises(InvalidDefinitionError) as info:

        @hatchet.task(name="process")
        def shipping(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return {"from": "shipping"}

    message = str(info.value)
    assert "'process'" in message and "billing" in message and "shipping" in message
    assert message.count(__file__) == 2
    assert billing.run() == {"from": "billing"}  # the first one still runs its own code


def _orders_for_billing(client: Hatchet) -> Any:
    return client.workflow(name="Orders")


def _orders_for_shipping(client: Hatchet) -> Any:
    return client.workflow(name="Orders")


def _orders_in_lower_case(client: Hatchet) -> Any:
    return client.workflow(name="orders")


def test_two_workflows_named_alike_are_refused_even_in_another_case(
    db_path: str, hatchet: Hatchet
) -> None:
    _orders_for_billing(hatchet)
    with pytest.raises(InvalidDefinitionError, match="'Orders'") as info:
        _orders_for_shipping(hatchet)
    assert str(info.value).count(__file__) == 2
    with pytest.raises(InvalidDefinitionError, match="differ in case"):
        _orders_in_lower_case(hatchet)
    other_client = Hatchet(db=db_path)  # another client on the same database
    with pytest.raises(InvalidDefinitionError):
        _orders_for_shipping(other_client)
    # Namespaces keep names apart.
    staging = Hatchet(db=db_path, config=ClientConfig(namespace="staging"))
    assert _orders_for_shipping(staging).name == "staging_Orders"


def _logged(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(input: Any, ctx: Context) -> Any:
        return fn(input, ctx)

    return wrapper


def test_a_shared_decorator_does_not_hide_two_definitions(hatchet: Hatchet) -> None:
    @hatchet.task(name="charge")
    @_logged
    def billing_charge(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"from": "billing"}

    with pytest.raises(InvalidDefinitionError, match="billing_charge"):

        @hatchet.task(name="charge")
        @_logged
        def shipping_charge(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return {"from": "shipping"}


def test_the_same_code_defining_again_replaces_the_old_object(db_path: str) -> None:
    def define_on(client: Hatchet) -> Any:
        @client.task(name="again")
        def again(input: EmptyModel, ctx: Context) -> dict[str, int]:
            return {"n": 1}

        return again

    first = Hatchet(db=db_path)
    old = define_on(first)
    new = define_on(first)  # a helper called twice, a reload, a notebook cell re-run
    try:
        assert new.run() == {"n": 1}
        with pytest.raises(InvalidDefinitionError, match="replaced by a newer one"):
            old.run()
        with pytest.raises(InvalidDefinitionError, match="replaced by a newer one"):
            first.worker("stale", workflows=[old]).start()
    finally:
        first.close()


# -- a run nobody serves ------------------------------------------------------------------


async def test_a_run_no_worker_serves_is_logged_once_and_marked(
    db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task()
    def lonely(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    try:
        with caplog.at_level(logging.WARNING, logger="hatchlite"):
            first = await lonely.aio_run_no_wait()
            await lonely.aio_run_no_wait()
        warned = [r for r in caplog.records if "no running worker" in r.getMessage()]
        assert len(warned) == 1 and "lonely" in warned[0].getMessage()
        rows = query(db_path, "SELECT task_run_id, event_type, message FROM task_events")
        assert len(rows) == 2 and {r[1] for r in rows} == {"REQUEUED_NO_WORKER"}
        assert "no running worker on this database serves workflow 'lonely'" in str(rows[0][2])

        worker = client.worker("late", workflows=[lonely])
        serving = asyncio.create_task(worker.aio_start())
        assert await asyncio.wait_for(first.aio_result(), 5) == {"ok": 1}
        await lonely.aio_run()  # served now: no new event
        assert query(db_path, "SELECT count(*) FROM task_events") == [(2,)]
        worker.stop()
        await serving
    finally:
        await client.aio_close()


# -- parameters accepted but not enforced -------------------------------------------------


def test_enforced_features_do_not_warn(hatchet: Hatchet) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wf = hatchet.workflow(name="plain", default_priority=2, on_crons=["@daily"])

        @wf.task(retries=2, execution_timeout=5.0)
        def step(input: EmptyModel, ctx: Context) -> None:
            pass

        @wf.durable_task(eviction_policy=EvictionPolicy(ttl=timedelta(minutes=1), priority=2))
        async def waits(input: EmptyModel, ctx: Context) -> None:
            pass

        @hatchet.durable_task()
        async def waiter(input: EmptyModel, ctx: Context) -> None:
            await ctx.aio_wait_for("x", UserEventCondition(event_key="x"))


def test_soft_trigger_routing_never_strands_a_run(hatchet: Hatchet) -> None:
    """`desired_worker_id` naming no live worker, and `sticky=True` outside a task, are
    preferences: the run goes to a worker that serves it, without a warning."""

    @hatchet.task()
    def anywhere(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert anywhere.run(desired_worker_id="w-1") == {"ok": 1}
        assert anywhere.run_no_wait(sticky=True).result() == {"ok": 1}


# -- streams, sizes ----------------------------------------------------------------------


def test_stream_chunks_are_not_kept_in_memory(hatchet: Hatchet) -> None:
    chunk = "x" * 1_000_000

    @hatchet.task()
    def streamer(input: EmptyModel, ctx: Context) -> None:
        for i in range(50):
            ctx.put_stream(f"{i:03d}{chunk}")  # a new 1 MB string each time

    streamer.run()  # warm up: imports, threads, caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            streamer.run()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Kept in memory, the chunks would be 150 MB; other threads of the test process
    # may allocate a little meanwhile.
    assert grown < 30_000_000, f"{grown:,} bytes kept after streaming 150 MB"


def test_size_limits_name_what_is_too_large(db_path: str) -> None:
    client = Hatchet(db=db_path, config=ClientConfig(grpc_max_send_message_length=10_000))
    big = "x" * 20_000
    logged: list[str] = []

    @client.task(input_validator=dict, retries=2)
    def echo(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
        ctx.log("y" * 50_000)
        logged.append("once")
        return {"echo": input.get("blob", "") * 2}

    try:
        with pytest.raises(PayloadTooLargeError, match="input of workflow 'echo'"):
            echo.run({"blob": big})
        with pytest.raises(PayloadTooLargeError, match="additional_metadata"):
            echo.run({}, additional_metadata={"blob": big})
        with pytest.raises(PayloadTooLargeError, match="payload of event 'big'"):
            client.event.push("big", {"blob": big})

        with pytest.raises(FailedTaskRunExceptionGroup, match="output of task 'echo'") as info:
            echo.run({"blob": "z" * 6_000})
        assert "10,000" in str(info.value)
        assert logged == ["once"]  # too large is not retried: it would be again
        assert echo.run({"blob": "small"}) == {"echo": "smallsmall"}
        # Only the two runs whose input fit were stored.
        assert query(db_path, "SELECT count(*) FROM workflow_runs") == [(2,)]
        lines = query(db_path, "SELECT length(CAST(message AS BLOB)) FROM task_logs")
        assert lines and all(int(n) <= 10_000 for (n,) in lines)  # type: ignore[call-overload]
    finally:
        client.close()


# -- small ones --------------------------------------------------------------------------


def test_the_namespace_from_the_environment_follows_hatchets_rule(
    monkeypatch: pytest.MonkeyPatch, db_path: str
) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_NAMESPACE", "Staging")
    client = Hatchet(db=db_path)
    assert client.namespace == "staging_"
    assert client.workflow(name="Named").name == "staging_Named"


@pytest.mark.timeout(60)
def test_the_process_exits_without_waiting_for_a_timed_out_sync_task(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from datetime import timedelta
            from hatchlite import Context, EmptyModel, Hatchet

            hatchet = Hatchet(db={str(tmp_path / "stuck.db")!r})

            @hatchet.task(execution_timeout=timedelta(milliseconds=200))
            def stuck(input: EmptyModel, ctx: Context) -> None:
                time.sleep(120)

            try:
                stuck.run()
            except Exception as exc:
                print("failed:", type(exc).__name__, flush=True)
            """
        )
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert out.returncode == 0, out.stderr
    assert "failed: FailedTaskRunExceptionGroup" in out.stdout
    assert time.monotonic() - started < 40  # not the task's 120 s


def test_cancelling_a_finished_run_is_a_no_op_and_status_is_kept(hatchet: Hatchet) -> None:
    @hatchet.task()
    def done(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"v": 1}

    ref = done.run_no_wait()
    assert ref.result() == {"v": 1}
    hatchet.runs.cancel(ref.workflow_run_id)
    assert hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.COMPLETED


# -- found in review ----------------------------------------------------------------------


def test_a_workflow_defined_after_the_engine_started_runs(hatchet: Hatchet) -> None:
    @hatchet.task()
    def first(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 1}

    assert first.run() == {"n": 1}  # the engine and its implicit worker run now
    later = hatchet.workflow(name="later")  # defined empty; its task comes after
    first.run()  # the engine steps in between

    @later.task(schedule_timeout=timedelta(seconds=5))
    def step(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 2}

    assert later.run() == {"step": {"n": 2}}


async def test_task_runs_of_another_version_do_not_starve_a_worker(
    db_path: str,
) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    shared = client.workflow(name="shared")

    @shared.task()
    def mine(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"from": "mine"}

    worker = client.worker("one-slot", slots=1, workflows=[shared])
    serving = asyncio.create_task(worker.aio_start())
    try:
        await shared.aio_run()  # registered, served
        # Another process registered a version with task `theirs` and queued 60 runs of
        # it, ahead of ours; this worker has no code for them and leaves them.
        conn = sqlite3.connect(db_path)
        with conn:
            (text,) = conn.execute("SELECT shape FROM workflows WHERE name = 'shared'").fetchone()
            shape = json.loads(text)
            theirs = {**shape["tasks"][0], "name": "theirs"}
            shape["tasks"].append(theirs)
            conn.execute(
                "UPDATE workflows SET shape = ? WHERE name = 'shared'", (json.dumps(shape),)
            )
            for _ in range(60):
                run_id = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO workflow_runs (id, workflow_name, status, is_dag, input, "
                    "additional_metadata, priority, created_at) "
                    "VALUES (?, 'shared', 'QUEUED', 0, '{}', '{}', 1, 0)",
                    (run_id,),
                )
                conn.execute(
                    "INSERT INTO task_runs (id, workflow_run_id, workflow_name, task_name, "
                    "status, priority, available_at, created_at) "
                    "VALUES (?, ?, 'shared', 'theirs', 'QUEUED', 1, 0, 0)",
                    (str(uuid.uuid4()), run_id),
                )
        conn.close()
        result = await asyncio.wait_for(shared.aio_run(), 5)
        assert result == {"mine": {"from": "mine"}}
        assert query(db_path, "SELECT count(*) FROM task_runs WHERE status = 'QUEUED'") == [(60,)]
    finally:
        worker.stop()
        await serving
        await client.aio_close()


def test_a_task_stopping_the_engine_loop_does_not_stop_the_engine(hatchet: Hatchet) -> None:
    @hatchet.task()
    async def stopper(input: EmptyModel, ctx: Context) -> dict[str, int]:
        asyncio.get_running_loop().stop()
        return {"ok": 1}

    assert stopper.run() == {"ok": 1}
    assert stopper.run() == {"ok": 1}


async def test_a_suspect_durable_task_waiting_for_its_child_lets_the_child_run(
    db_path: str,
) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task()
    async def child(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"child": 1}

    @client.durable_task()
    async def parent(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        return {"got": await child.aio_run()}

    ref = await parent.aio_run_no_wait()
    # As if its worker had died while running it: it is a suspect, and runs alone.
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE task_runs SET lost_count = 1 WHERE task_name = 'parent'")
    conn.close()
    worker = client.worker("w", workflows=[parent, child])
    serving = asyncio.create_task(worker.aio_start())
    try:
        assert await asyncio.wait_for(ref.aio_result(), 5) == {"got": {"child": 1}}
    finally:
        worker.stop()
        await serving
        await client.aio_close()


# -- triggers written by the engine's step ---------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay", [0.0, 0.001, 0.005])
async def test_triggers_racing_a_close_are_told_what_was_stored(
    tmp_path: Path, delay: float
) -> None:
    """A caller is told its trigger failed only if nothing of it was stored: the step
    that writes triggers runs to its end even when the close cancels it."""
    db = str(tmp_path / f"race-{delay}.db")
    client = Hatchet(db=db)

    @client.task(name="short")
    async def short(input: EmptyModel, ctx: Context) -> None:
        await asyncio.sleep(0.01)

    await short.aio_run()

    async def trigger() -> str | None:
        try:
            return (await short.aio_run_no_wait()).workflow_run_id
        except Exception:
            return None

    callers = [asyncio.create_task(trigger()) for _ in range(50)]
    await asyncio.sleep(delay)
    await client.aio_close()
    told = await asyncio.wait_for(asyncio.gather(*callers), 10)
    stored = {row[0] for row in query(db, "SELECT id FROM workflow_runs")}
    created = [run_id for run_id in told if run_id is not None]
    assert set(created) <= stored
    assert len(stored) - 1 == len(created)  # the first run, then one per caller told so


@pytest.mark.timeout(60)
async def test_a_trigger_whose_caller_left_still_cancels_what_its_limit_cancels(
    tmp_path: Path,
) -> None:
    """CANCEL_IN_PROGRESS: the trigger of a caller cancelled while it waits for the step
    still stops the running task its limit cancelled, here, at once."""
    import threading

    from hatchlite import ConcurrencyExpression, ConcurrencyLimitStrategy

    client = Hatchet(db=str(tmp_path / "limit.db"))
    started = threading.Semaphore(0)
    stopped = threading.Semaphore(0)

    @client.task(
        name="newest_wins",
        concurrency=ConcurrencyExpression(
            expression="'one'",
            max_runs=1,
            limit_strategy=ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS,
        ),
    )
    async def newest_wins(input: EmptyModel, ctx: Context) -> None:
        started.release()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.release()
            raise

    try:
        for _ in range(5):
            await newest_wins.aio_run_no_wait()
            assert await asyncio.to_thread(started.acquire, True, 10)
            caller = asyncio.create_task(newest_wins.aio_run_no_wait())
            await asyncio.sleep(0)  # the trigger is on its way to the step
            caller.cancel()
            assert await asyncio.to_thread(stopped.acquire, True, 10), "kept running"
            assert await asyncio.to_thread(started.acquire, True, 10)  # the newest runs
            await client.runs.aio_bulk_cancel_by_filters_with_pagination()  # tidy
            assert await asyncio.to_thread(stopped.acquire, True, 10)
    finally:
        await client.aio_close()


@pytest.mark.timeout(60)
async def test_triggers_are_written_while_engine_steps_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A step that keeps failing (a bug) never keeps a caller's trigger waiting for it."""
    from hatchlite.scheduler.engine import Engine

    client = Hatchet(db=str(tmp_path / "failing.db"))

    @client.task(name="stored")
    async def stored(input: EmptyModel, ctx: Context) -> None:
        return None

    await stored.aio_run()  # started, registered, served

    def broken(self: Engine) -> frozenset[str]:
        raise RuntimeError("a bug in the step")

    monkeypatch.setattr(Engine, "_fire_for", broken)
    try:
        with caplog.at_level(logging.CRITICAL, logger="hatchlite"):
            refs = await asyncio.wait_for(
                asyncio.gather(*(stored.aio_run_no_wait() for _ in range(5))), 10
            )
        ids = {ref.workflow_run_id for ref in refs}
        rows = query(str(tmp_path / "failing.db"), "SELECT id FROM workflow_runs")
        assert ids <= {row[0] for row in rows}
    finally:
        monkeypatch.undo()
        await client.aio_close()
