"""Operating hatchlite from Python: task-run logs, workers, workflows, metrics and
streams (`hatchet.logs`, `hatchet.workers`, `hatchet.workflows`, `hatchet.metrics`,
`hatchet.runs.subscribe_to_stream`), on real files and real worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    ClientConfig,
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    EmptyModel,
    Hatchet,
    RunNotFoundError,
    StickyStrategy,
    V1TaskStatus,
)
from hatchlite.exceptions import HatchliteError
from hatchlite.features.workers import WorkerNotFoundError
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import ConcurrencyStat, UpdateWorkerRequest, V1LogLine
from hatchlite.testing import TestClock
from tests.conftest import outcome, query, wait_until, wait_until_sync
from tests.procs.ops_stream_worker import GATE_ENV, GateInput, StreamInput, define
from tests.test_processes import ROOT

START = datetime(2030, 1, 1, tzinfo=UTC)


@contextmanager
def serving(client: Hatchet, name: str, workflows: list[Any], **kwargs: Any) -> Iterator[str]:
    """Serve `workflows` on an explicit worker in a thread; yields the worker's id."""
    worker = client.worker(name, workflows=workflows, **kwargs)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        wait_until_sync(lambda: worker.id is not None, 10, f"worker {name} to start")
        assert worker.id is not None
        wait_until_sync(lambda: _known(client, worker.id), 10, f"worker {name} to register")
        yield worker.id
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def _known(client: Hatchet, worker_id: str | None) -> bool:
    return any(w.metadata.id == worker_id for w in client.workers.list().rows or [])


def lines(rows: list[V1LogLine] | None) -> list[tuple[int | None, str | None, str]]:
    return [(r.attempt, r.level.value if r.level else None, r.message) for r in rows or []]


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """The `app` logger, letting DEBUG records through while the test runs."""
    logger = logging.getLogger("app")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(level)


# -- hatchet.logs ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_task_logs_hold_ctx_log_and_logging_records_with_levels_and_attempts(
    hatchet: Hatchet, app_logger: logging.Logger, kind: str
) -> None:
    def body(ctx: Context) -> None:
        ctx.log(f"ctx line, attempt {ctx.attempt_number}")
        ctx.log({"attempt": ctx.attempt_number})
        app_logger.debug("debug %s", kind)
        app_logger.info("info %s", kind)
        app_logger.warning("warning %s", kind)
        app_logger.error("error %s", kind)
        app_logger.critical("critical %s", kind)
        app_logger.log(35, "level 35")  # custom levels count as the level below them
        logging.getLogger("hatchlite.anything").warning("hatchlite's own record")
        if ctx.retry_count == 0:
            raise RuntimeError("first attempt fails")

    if kind == "sync":

        @hatchet.task(name=f"logs_{kind}", retries=1)
        def logged(input: EmptyModel, ctx: Context) -> None:
            body(ctx)

    else:

        @hatchet.task(name=f"logs_{kind}", retries=1)
        async def logged(input: EmptyModel, ctx: Context) -> None:
            body(ctx)
            await asyncio.sleep(0)

    ref = logged.run_no_wait()
    ref.result()
    page = hatchet.logs.list(ref.workflow_run_id)
    expected = [
        [
            (attempt, "INFO", f"ctx line, attempt {attempt}"),
            (attempt, "INFO", f'{{"attempt": {attempt}}}'),
            (attempt, "DEBUG", f"debug {kind}"),
            (attempt, "INFO", f"info {kind}"),
            (attempt, "WARN", f"warning {kind}"),
            (attempt, "ERROR", f"error {kind}"),
            (attempt, "ERROR", f"critical {kind}"),
            (attempt, "WARN", "level 35"),
        ]
        for attempt in (1, 2)
    ]
    # In order, both attempts; neither hatchlite's records (its own logger, nor the
    # engine's "attempt failed" warning) are among them.
    assert lines(page.rows) == expected[0] + expected[1]
    rows = page.rows or []
    assert {r.task_external_id for r in rows} == {ref.workflow_run_id}
    assert [r.retry_count for r in rows] == [0] * 8 + [1] * 8
    times = [r.created_at for r in rows]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)


def test_task_logs_limit_since_until_and_bad_arguments(tmp_path: Path) -> None:
    clock = TestClock(START)
    client = Hatchet(db=str(tmp_path / "logs.db"), clock=clock)

    @client.task()
    async def ticking(input: EmptyModel, ctx: Context) -> None:
        for index in range(4):
            ctx.log(f"line {index}")
            clock.advance(10)

    try:
        ref = ticking.run_no_wait()
        ref.result()
        run_id = ref.workflow_run_id
        at = [START + timedelta(seconds=10 * i) for i in range(4)]
        every = client.logs.list(run_id)
        assert [r.message for r in every.rows or []] == [f"line {i}" for i in range(4)]
        assert [r.created_at for r in every.rows or []] == at

        def messages(**kwargs: Any) -> list[str]:
            return [r.message for r in client.logs.list(run_id, **kwargs).rows or []]

        assert messages(limit=2) == ["line 0", "line 1"]
        assert messages(limit=0) == []
        assert messages(since=at[1]) == ["line 1", "line 2", "line 3"]
        assert messages(until=at[2]) == ["line 0", "line 1", "line 2"]
        assert messages(since=at[1], until=at[2]) == ["line 1", "line 2"]
        assert messages(since=at[1], limit=1) == ["line 1"]
        assert messages(since=at[3] + timedelta(seconds=1)) == []
        # A naive datetime is read as UTC.
        assert messages(since=at[3].replace(tzinfo=None)) == ["line 3"]
        assert asyncio.run(client.logs.aio_list(run_id, limit=1)).rows == (every.rows or [])[:1]

        with pytest.raises(ValueError, match="limit"):
            client.logs.list(run_id, limit=-1)
        with pytest.raises(ValueError, match="since is after until"):
            client.logs.list(run_id, since=at[2], until=at[1])
        with pytest.raises(RunNotFoundError, match="no-such-task"):
            client.logs.list("no-such-task")
    finally:
        client.close()


def test_disable_log_capture_stores_ctx_log_lines_only(
    tmp_path: Path, app_logger: logging.Logger
) -> None:
    client = Hatchet(db=str(tmp_path / "quiet.db"), config=ClientConfig(disable_log_capture=True))

    @client.task()
    def quiet(input: EmptyModel, ctx: Context) -> None:
        ctx.log("kept")
        app_logger.warning("not captured")

    try:
        ref = quiet.run_no_wait()
        ref.result()
        assert lines(client.logs.list(ref.workflow_run_id).rows) == [(1, "INFO", "kept")]
    finally:
        client.close()


# -- hatchet.workers (in this process) -----------------------------------------------------


def test_worker_rows_show_name_status_actions_slots_and_labels(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    pipeline = client.workflow(name="OpsPipeline")

    @pipeline.task()
    def first(input: EmptyModel, ctx: Context) -> None:
        return None

    @pipeline.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> None:
        return None

    @client.task(name="ops_single")
    def single(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        labels: dict[str, str | int] = {"region": "eu", "gpu": 1}
        with serving(client, "ops-labelled", [pipeline, single], slots=3, labels=labels) as wid:
            worker = client.workers.get(wid)
            assert worker.name == "ops-labelled"
            assert worker.status == "ACTIVE"
            assert sorted(worker.actions or []) == [
                "ops_single:ops_single",
                "opspipeline:first",
                "opspipeline:second",
            ]
            registered = {(w.id, w.name) for w in worker.registered_workflows or []}
            assert registered == {(pipeline.id, "OpsPipeline"), (single.id, "ops_single")}
            assert worker.slot_config is not None
            assert worker.slot_config["default"].limit == 3
            assert worker.max_runs == 3
            assert {(label.key, label.value) for label in worker.labels or []} == {
                ("region", "eu"),
                ("gpu", "1"),
            }
            assert worker.last_heartbeat_at is not None
            assert worker.last_heartbeat_at.tzinfo is not None
            assert [w.metadata.id for w in client.workers.list().rows or []] == [wid]
            assert asyncio.run(client.workers.aio_get(wid)) == worker
        assert client.workers.get(wid).status == "INACTIVE"

        calls: list[Callable[[], object]] = [
            lambda: client.workers.get("no-such-worker"),
            lambda: client.workers.pause("no-such-worker"),
            lambda: client.workers.unpause("no-such-worker"),
            lambda: client.workers.update("no-such-worker", UpdateWorkerRequest(is_paused=True)),
        ]
        for call in calls:
            with pytest.raises(WorkerNotFoundError, match="no-such-worker") as info:
                call()
            assert isinstance(info.value, HatchliteError)
    finally:
        client.close()


def test_paused_worker_takes_no_new_tasks_until_unpaused(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task(name="ops_paused_job")
    def job(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": ctx.worker_id}

    @client.task(name="ops_probe")
    def probe(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        with (
            serving(client, "ops-pausable", [job]) as wid,
            serving(client, "ops-prober", [probe]),
        ):
            assert client.workers.pause(wid).status == "PAUSED"
            ref = job.run_no_wait()
            # The engine claimed work after the job was queued (the probe ran), and the
            # paused worker took nothing.
            probe.run()
            assert client.runs.get_status(ref.workflow_run_id) is V1TaskStatus.QUEUED
            assert client.workers.get(wid).status == "PAUSED"

            resumed = client.workers.update(wid, UpdateWorkerRequest(is_paused=False))
            assert resumed.status == "ACTIVE"
            assert ref.result() == {"worker": wid}

            assert client.workers.update(wid, UpdateWorkerRequest(is_paused=True)).status == (
                "PAUSED"
            )
            assert client.workers.unpause(wid).status == "ACTIVE"
            assert job.run() == {"worker": wid}
    finally:
        client.close()


# -- hatchet.workers (worker processes) ----------------------------------------------------


def start_worker(db: str, gates: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `tests.procs.ops_stream_worker`; returns it and its worker id once registered."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.procs.ops_stream_worker", db],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), GATE_ENV: str(gates)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )

    def registered() -> list[tuple[object, ...]]:
        try:
            return query(db, "SELECT id FROM workers WHERE pid = ?", (proc.pid,))
        except sqlite3.OperationalError:  # the schema is not there yet
            return []

    wait_until_sync(lambda: proc.poll() is not None or bool(registered()), 30, "registration")
    assert proc.poll() is None, log.read_text()
    return proc, str(registered()[0][0])


@pytest.mark.timeout(60)
def test_worker_process_is_active_then_paused_while_draining_then_inactive(
    tmp_path: Path,
) -> None:
    db, gates = str(tmp_path / "drain.db"), tmp_path
    client = Hatchet(db=db, auto_worker=False)
    _, gated = define(client)
    proc, wid = start_worker(db, gates, tmp_path / "worker.log")
    try:
        assert client.workers.get(wid).status == "ACTIVE"
        ref = gated.run_no_wait(GateInput(name="slow"))
        wait_until_sync((gates / "slow.started").exists, 30, "the task to start")
        assert client.workers.get(wid).status == "ACTIVE"  # serving

        proc.send_signal(signal.SIGTERM)
        wait_until_sync(lambda: client.workers.get(wid).status != "ACTIVE", 30, "draining")
        assert client.workers.get(wid).status == "PAUSED"
        assert proc.poll() is None  # still waiting for its task
        assert client.runs.get_status(ref.workflow_run_id) is V1TaskStatus.RUNNING

        (gates / "slow.release").touch()
        assert proc.wait(30) == 0, (tmp_path / "worker.log").read_text()
        assert ref.result() == {"pid": proc.pid}
        assert client.workers.get(wid).status == "INACTIVE"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()


@pytest.mark.timeout(60)
def test_sigkilled_worker_process_shows_inactive_before_any_recovery(tmp_path: Path) -> None:
    db, gates = str(tmp_path / "killed.db"), tmp_path
    client = Hatchet(db=db, auto_worker=False)
    _, gated = define(client)
    proc, wid = start_worker(db, gates, tmp_path / "worker.log")
    try:
        ref = gated.run_no_wait(GateInput(name="held"))
        wait_until_sync((gates / "held.started").exists, 30, "the task to start")
        proc.kill()
        proc.wait(30)
        # No process released it: its row and its task run are as it left them ...
        assert query(db, "SELECT status FROM workers WHERE id = ?", (wid,)) == [("ACTIVE",)]
        assert client.runs.get_status(ref.workflow_run_id) is V1TaskStatus.RUNNING
        # ... but the workers API sees the process is gone.
        assert client.workers.get(wid).status == "INACTIVE"
        assert [w.status for w in client.workers.list().rows or []] == ["INACTIVE"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()


# -- hatchet.workflows ---------------------------------------------------------------------


def test_workflows_list_by_name_with_pagination_and_get(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    for name in ("ops_c", "ops_a", "ops_b"):
        wf = client.workflow(name=name, description=f"about {name}")

        @wf.task(name="only")
        def only(input: EmptyModel, ctx: Context) -> None:
            return None

    try:
        every = client.workflows.list()
        assert [w.name for w in every.rows or []] == ["ops_a", "ops_b", "ops_c"]
        first = client.workflows.list(limit=2)
        assert [w.name for w in first.rows or []] == ["ops_a", "ops_b"]
        assert first.pagination is not None
        assert (first.pagination.current_page, first.pagination.num_pages) == (1, 2)
        assert first.pagination.next_page == 2
        rest = client.workflows.list(limit=2, offset=2)
        assert [w.name for w in rest.rows or []] == ["ops_c"]
        assert rest.pagination is not None and rest.pagination.next_page is None

        named = client.workflows.list(workflow_name="ops_b").rows or []
        assert [(w.name, w.description, w.is_paused) for w in named] == [
            ("ops_b", "about ops_b", False)
        ]
        assert client.workflows.list(workflow_name="ops_nothing").rows == []
        got = client.workflows.get(named[0].metadata.id)
        assert got == named[0]
        assert got.metadata.created_at.tzinfo is not None

        with pytest.raises(WorkflowNotFoundError, match="no-such-workflow"):
            client.workflows.get("no-such-workflow")
        with pytest.raises(ValueError, match="limit"):
            client.workflows.list(limit=-1)
        with pytest.raises(ValueError, match="offset"):
            client.workflows.list(offset=-1)
    finally:
        client.close()


def test_workflows_list_applies_the_namespace(db_path: str) -> None:
    client = Hatchet(db=db_path, config=ClientConfig(namespace="Ops"), auto_worker=False)

    @client.task(name="spaced")
    def spaced(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        rows = client.workflows.list(workflow_name="spaced").rows or []
        assert [w.name for w in rows] == ["ops_spaced"]
        assert rows[0].metadata.id == spaced.id
    finally:
        client.close()


def test_workflow_id_is_stable_and_selects_its_runs(hatchet: Hatchet) -> None:
    @hatchet.task(name="ops_counted")
    def counted(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.task(name="ops_other")
    def other(input: EmptyModel, ctx: Context) -> None:
        return None

    ids = {counted.run_no_wait().workflow_run_id for _ in range(3)}
    other.run()
    for run_id in ids:
        hatchet.runs.get_run_ref(run_id).result()

    wid = counted.id
    assert wid == counted.id
    listed = hatchet.workflows.list(workflow_name="ops_counted").rows or []
    assert [w.metadata.id for w in listed] == [wid]
    assert other.id != wid

    page = hatchet.runs.list(workflow_ids=[wid])
    assert {r.metadata.id for r in page.rows} == ids
    assert {r.workflow_id for r in page.rows} == {wid}
    assert {r.metadata.id for r in counted.list_runs()} == ids
    assert {r.metadata.id for r in asyncio.run(counted.aio_list_runs())} == ids
    assert [r.metadata.id for r in counted.list_runs(limit=2)] == [
        r.metadata.id for r in page.rows[:2]
    ]


@pytest.mark.parametrize("api", ["client", "workflow", "aio"])
def test_paused_workflow_runs_stay_queued_then_resume(hatchet: Hatchet, api: str) -> None:
    @hatchet.task(name=f"ops_pausable_{api}")
    def pausable(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"attempt": ctx.attempt_number}

    @hatchet.task(name=f"ops_free_{api}")
    def free(input: EmptyModel, ctx: Context) -> None:
        return None

    ttl = timedelta(hours=1)
    if api == "client":
        assert hatchet.workflows.pause(pausable.id, ttl).is_paused is True
    elif api == "workflow":
        pausable.pause(ttl, "DROP", "QUEUE")
    else:
        asyncio.run(pausable.aio_pause(ttl))
    assert hatchet.workflows.get(pausable.id).is_paused is True

    refs = [pausable.run_no_wait() for _ in range(2)]
    free.run()  # a claim came after they were queued, and took the free workflow only
    for ref in refs:
        assert hatchet.runs.get_status(ref.workflow_run_id) is V1TaskStatus.QUEUED

    if api == "client":
        assert hatchet.workflows.unpause(pausable.id).is_paused is False
    elif api == "workflow":
        pausable.unpause()
    else:
        asyncio.run(pausable.aio_unpause())
    assert hatchet.workflows.get(pausable.id).is_paused is False
    assert [ref.result() for ref in refs] == [{"attempt": 1}] * 2


def test_pause_stores_the_cron_and_schedule_behaviours(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task(name="ops_behaviours")
    def behaviours(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        behaviours.pause(timedelta(minutes=5), "DROP", "QUEUE")
        sql = (
            "SELECT pause_queue_ttl, paused_cron_behavior, paused_scheduled_behavior "
            "FROM workflows WHERE name = 'ops_behaviours'"
        )
        assert query(db_path, sql) == [(300.0, "DROP", "QUEUE")]
        behaviours.unpause()
        assert query(db_path, sql) == [(None, None, None)]
    finally:
        client.close()


def test_pause_arguments_are_checked(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)

    @client.task(name="ops_checked")
    def checked(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        wid = checked.id
        with pytest.raises(TypeError, match="queue_ttl must be a timedelta"):
            client.workflows.pause(wid, 60)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            client.workflows.pause(wid, timedelta(seconds=-1))
        with pytest.raises(ValueError, match="cron_run_queue_behavior"):
            client.workflows.pause(wid, timedelta(1), "SKIP")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="scheduled_run_queue_behavior"):
            checked.pause(timedelta(1), "QUEUE", "drop")  # type: ignore[arg-type]
        assert client.workflows.get(wid).is_paused is False  # nothing was changed
        for call in (
            lambda: client.workflows.pause("no-such-workflow", timedelta(1)),
            lambda: client.workflows.unpause("no-such-workflow"),
            lambda: client.workflows.delete("no-such-workflow"),
        ):
            with pytest.raises(WorkflowNotFoundError, match="no-such-workflow"):
                call()
    finally:
        client.close()


def test_runs_queued_past_the_queue_ttl_of_a_pause_are_cancelled(tmp_path: Path) -> None:
    clock = TestClock(START)
    client = Hatchet(db=str(tmp_path / "ttl.db"), clock=clock)

    # A day-long schedule timeout: only the pause's queue_ttl can cancel these.
    @client.task(name="ops_ttl", schedule_timeout=timedelta(days=1))
    def held(input: EmptyModel, ctx: Context) -> None:
        return None

    @client.task(name="ops_ttl_probe")
    def probe(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        held.pause(timedelta(hours=1))
        early = held.run_no_wait()
        clock.advance(timedelta(minutes=30))
        late = held.run_no_wait()
        clock.advance(timedelta(minutes=29))
        probe.run()
        assert client.runs.get_status(early.workflow_run_id) is V1TaskStatus.QUEUED

        clock.advance(timedelta(minutes=2))  # early: 61 minutes queued; late: 31
        wait_until_sync(
            lambda: client.runs.get_status(early.workflow_run_id) is V1TaskStatus.CANCELLED,
            5,
            "the run past the queue ttl to be cancelled",
        )
        probe.run()
        assert client.runs.get_status(late.workflow_run_id) is V1TaskStatus.QUEUED
        events = client.runs.get(early.workflow_run_id).task_events
        assert [e.event_type.value for e in events] == ["QUEUED", "CANCELLED"]
        assert "queue_ttl" in (events[-1].error_message or "")
        with pytest.raises(ValueError, match="was cancelled"):
            early.result()

        held.unpause()
        late.result()
        assert client.runs.get_status(late.workflow_run_id) is V1TaskStatus.COMPLETED
    finally:
        client.close()


def test_deleted_workflow_leaves_the_list_keeps_its_runs_and_registers_anew(
    db_path: str,
) -> None:
    def define_counted(client: Hatchet) -> Any:
        @client.task(name="ops_deleted")
        def counted(input: EmptyModel, ctx: Context) -> dict[str, int]:
            return {"n": 1}

        return counted

    client = Hatchet(db=db_path)
    try:
        counted = define_counted(client)
        ref = counted.run_no_wait()
        ref.result()
        old_id = counted.id
        counted.delete()
        assert "ops_deleted" not in [w.name for w in client.workflows.list().rows or []]
        with pytest.raises(WorkflowNotFoundError):
            client.workflows.get(old_id)
        with pytest.raises(WorkflowNotFoundError):
            client.workflows.delete(old_id)
        details = client.runs.get_details(ref.workflow_run_id)
        assert details.status.value == "COMPLETED"
        assert details.task_runs["ops_deleted"].output == {"n": 1}

        # Triggering it again registers it again, under a new id.
        assert counted.run() == {"n": 1}
        new_id = counted.id
        assert new_id != old_id
        assert [w.metadata.id for w in client.workflows.list().rows or []] == [new_id]

        # Deleted through the client, then defined again by the same code.
        client.workflows.delete(new_id)
        assert client.workflows.list().rows == []
        again = define_counted(client)
        assert again.id not in (old_id, new_id)
        assert [w.name for w in client.workflows.list().rows or []] == ["ops_deleted"]
        assert client.runs.get_details(ref.workflow_run_id).done
    finally:
        client.close()


def test_workflow_id_follows_a_delete_through_the_client(hatchet: Hatchet) -> None:
    @hatchet.task(name="ops_cached")
    def cached(input: EmptyModel, ctx: Context) -> None:
        return None

    hatchet.workflows.delete(cached.id)
    ref = cached.run_no_wait()  # registers it again, under a new id
    ref.result()
    assert [r.metadata.id for r in cached.list_runs()] == [ref.workflow_run_id]


async def test_deleting_a_workflow_with_queued_runs_keeps_the_engine_running(
    hatchet: Hatchet,
) -> None:
    @hatchet.task(name="ops_doomed")
    def doomed(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.task(name="ops_bystander")
    def bystander(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    await doomed.aio_pause(timedelta(hours=1))
    await doomed.aio_run_no_wait()
    await hatchet.workflows.aio_delete(await asyncio.to_thread(lambda: doomed.id))
    ref = await bystander.aio_run_no_wait()
    assert await outcome(ref, timeout=2) == {"ok": 1}


async def test_deleting_a_workflow_while_its_dag_runs_lets_the_run_end(
    hatchet: Hatchet,
) -> None:
    started, release = threading.Event(), threading.Event()
    dag = hatchet.workflow(name="ops_doomed_dag")

    @dag.task()
    def head(input: EmptyModel, ctx: Context) -> None:
        started.set()
        release.wait(5)

    @dag.task(parents=[head])
    def tail(input: EmptyModel, ctx: Context) -> None:
        return None

    ref = await dag.aio_run_no_wait()
    await wait_until(started.is_set)
    await hatchet.workflows.aio_delete(await asyncio.to_thread(lambda: dag.id))
    release.set()
    run_id = ref.workflow_run_id

    def ended() -> bool:
        return hatchet.runs.get_status(run_id) is not V1TaskStatus.RUNNING

    await asyncio.to_thread(wait_until_sync, ended, 2, "the run to end")


# -- hatchet.metrics -----------------------------------------------------------------------


def test_task_metrics_count_statuses_with_since_and_workflow_filters(tmp_path: Path) -> None:
    clock = TestClock(START)
    client = Hatchet(db=str(tmp_path / "metrics.db"), clock=clock)
    running, release = threading.Event(), threading.Event()

    @client.task(name="ops_ok")
    def ok(input: EmptyModel, ctx: Context) -> None:
        return None

    @client.task(name="ops_bad")
    def bad(input: EmptyModel, ctx: Context) -> None:
        raise RuntimeError("fails")

    @client.task(name="ops_slow")
    def slow(input: EmptyModel, ctx: Context) -> None:
        running.set()
        release.wait(10)

    @client.task(name="ops_held", schedule_timeout=timedelta(days=1))
    def held(input: EmptyModel, ctx: Context) -> None:
        return None

    try:
        ok.run()
        old = START
        clock.advance(timedelta(hours=1))
        since = clock.now()
        ok.run()
        ok.run()
        bad.run_no_wait()
        held.pause(timedelta(days=1))
        queued = [held.run_no_wait() for _ in range(3)]
        client.runs.cancel(queued[0].workflow_run_id)
        slow_ref = slow.run_no_wait()
        running.wait(5)
        wait_until_sync(
            lambda: (
                client.metrics.get_task_metrics(since=since).failed == 1
                and client.runs.get_status(queued[0].workflow_run_id) is V1TaskStatus.CANCELLED
            ),
            5,
            "the failure and the cancel to be recorded",
        )

        m = client.metrics.get_task_metrics(since=since)
        assert (m.completed, m.failed, m.cancelled, m.queued, m.running) == (2, 1, 1, 2, 1)
        whole_day = client.metrics.get_task_metrics()  # since a day ago: all of them
        assert whole_day.completed == 3
        assert client.metrics.get_task_metrics(since=old, until=old).completed == 1
        only_held = client.metrics.get_task_metrics(since=old, workflow_ids=[held.id])
        assert only_held.model_dump() == {
            "cancelled": 1,
            "completed": 0,
            "failed": 0,
            "queued": 2,
            "running": 0,
        }
        assert client.metrics.get_task_metrics(workflow_ids=[ok.id, bad.id]).model_dump() == {
            "cancelled": 0,
            "completed": 3,
            "failed": 1,
            "queued": 0,
            "running": 0,
        }
        with pytest.raises(ValueError, match="since is after until"):
            client.metrics.get_task_metrics(since=since, until=old)

        # The queued task runs of the paused workflow, and the running one.
        assert client.metrics.get_queue_metrics() == {"ops_held:ops_held": 2}
        stats = client.metrics.get_task_stats()
        assert stats["ops_held"].queued is not None and stats["ops_held"].queued.total == 2
        assert stats["ops_slow"].running is not None and stats["ops_slow"].running.total == 1
        assert asyncio.run(client.metrics.aio_get_queue_metrics()) == {"ops_held:ops_held": 2}

        release.set()
        slow_ref.result()
        held.unpause()
        for ref in queued[1:]:
            ref.result()
        assert client.metrics.get_queue_metrics() == {}
        assert client.metrics.get_task_metrics(since=since).completed == 5
    finally:
        release.set()
        client.close()


# -- streams -------------------------------------------------------------------------------


async def test_stream_chunks_reach_early_late_and_after_the_end_subscribers(
    hatchet: Hatchet,
) -> None:
    written, gate = threading.Event(), threading.Event()

    @hatchet.task(name="ops_streaming")
    def streaming(input: EmptyModel, ctx: Context) -> None:
        for index in range(3):
            ctx.put_stream(f"chunk-{index}")
        written.set()
        gate.wait(10)
        ctx.put_stream(b"chunk-3")
        ctx.put_stream("chunk-4")

    everything = [f"chunk-{i}" for i in range(5)]
    ref = await streaming.aio_run_no_wait()
    run_id = ref.workflow_run_id
    early = asyncio.create_task(_collect(hatchet.runs.subscribe_to_stream(run_id)))
    await wait_until(written.is_set)

    late = hatchet.runs.subscribe_to_stream(run_id)
    # The chunks written so far arrive while the task still runs.
    first = [await asyncio.wait_for(anext(late), 3) for _ in range(3)]
    assert first == everything[:3]
    assert hatchet.runs.get_status(run_id) is V1TaskStatus.RUNNING

    gate.set()
    rest = await asyncio.wait_for(_collect(late), 3)
    assert first + rest == everything
    assert await asyncio.wait_for(early, 3) == everything
    assert hatchet.runs.get_status(run_id) is V1TaskStatus.COMPLETED
    after_end = await asyncio.wait_for(_collect(hatchet.runs.subscribe_to_stream(run_id)), 3)
    assert after_end == everything


async def test_stream_of_a_failed_run_ends_with_its_chunks(hatchet: Hatchet) -> None:
    @hatchet.task(name="ops_streams_then_fails")
    async def fails(input: EmptyModel, ctx: Context) -> None:
        await ctx.aio_put_stream("before the failure")
        raise RuntimeError("boom")

    ref = await fails.aio_run_no_wait()
    chunks = await asyncio.wait_for(
        _collect(hatchet.runs.subscribe_to_stream(ref.workflow_run_id)), 3
    )
    assert chunks == ["before the failure"]
    assert hatchet.runs.get_status(ref.workflow_run_id) is V1TaskStatus.FAILED


async def test_subscribing_to_an_unknown_run_raises(hatchet: Hatchet) -> None:
    with pytest.raises(RunNotFoundError, match="no-such-run"):
        await _collect(hatchet.runs.subscribe_to_stream("no-such-run"))


@pytest.mark.timeout(60)
def test_stream_written_in_a_worker_process_is_read_in_order_in_another(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "stream.db")
    client = Hatchet(db=db, auto_worker=False)
    streamer, _ = define(client)
    proc, _ = start_worker(db, tmp_path, tmp_path / "worker.log")
    chunks = 40
    try:

        async def subscribe() -> tuple[str, list[str]]:
            ref = await streamer.aio_run_no_wait(StreamInput(chunks=chunks, gap=0.002))
            got = await asyncio.wait_for(
                _collect(client.runs.subscribe_to_stream(ref.workflow_run_id)), 30
            )
            return ref.workflow_run_id, got

        run_id, got = asyncio.run(subscribe())
        assert got == [f"chunk-{i}" for i in range(chunks)]
        assert client.runs.get_run_ref(run_id).result() == {"ops_streamer": {"pid": proc.pid}}
        replayed = asyncio.run(_collect(client.runs.subscribe_to_stream(run_id)))
        assert replayed == got
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()


async def _collect(stream: AsyncIterator[str]) -> list[str]:
    return [chunk async for chunk in stream]


def test_get_version_describes_tasks_triggers_and_limits(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(
        name="described",
        on_events=["order:*"],
        on_crons=["0 3 * * *"],
        sticky=StickyStrategy.SOFT,
        default_priority=2,
        concurrency=ConcurrencyExpression(expression="input.user", max_runs=2),
    )

    @wf.task()
    def first(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.durable_task(
        parents=[first], concurrency=ConcurrencyExpression(expression="'all'", max_runs=1)
    )
    async def second(input: EmptyModel, ctx: Context) -> None:
        return None

    version = hatchet.workflows.get_version(wf.id)
    assert version.workflow_id == wf.id and version.default_priority == 2
    assert version.sticky == "SOFT"
    assert version.triggers is not None
    assert [e.event_key for e in version.triggers.events or []] == ["order:*"]
    assert [c.cron for c in version.triggers.crons or []] == ["0 3 * * *"]
    assert [
        (c.expression, c.max_runs, c.step_readable_id) for c in version.v1_concurrency or []
    ] == [("input.user", 2, None), ("'all'", 1, "second")]
    assert version.concurrency is not None and version.concurrency.max_runs == 2
    steps = (version.jobs or [])[0].steps
    assert [(s.readable_id, s.parents, s.is_durable) for s in steps] == [
        ("first", [], False),
        ("second", ["first"], True),
    ]
    listed = hatchet.workflows.list(workflow_name="described").rows or []
    assert [s.readable_id for s in (listed[0].jobs or [])[0].steps] == ["first", "second"]
    with pytest.raises(WorkflowNotFoundError):
        hatchet.workflows.get_version("no-such-id")


async def test_task_stats_say_what_concurrency_holds_back(hatchet: Hatchet) -> None:
    release = asyncio.Event()

    class User(BaseModel):
        user: str

    @hatchet.task(
        name="per_user",
        input_validator=User,
        concurrency=ConcurrencyExpression(
            expression="input.user",
            max_runs=1,
            limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
        ),
    )
    async def per_user(input: User, ctx: Context) -> dict[str, str]:
        await release.wait()
        return {}

    refs = [await per_user.aio_run_no_wait(User(user=u)) for u in ("a", "a", "a", "b", "b")]

    async def held() -> dict[str, int]:
        stats = await hatchet.metrics.aio_get_task_stats()
        limits = stats["per_user"].queued.concurrency if "per_user" in stats else None
        return (limits or [ConcurrencyStat(keys={})])[0].keys or {}

    deadline = asyncio.get_running_loop().time() + 5
    while await held() != {"a": 2, "b": 1}:
        assert asyncio.get_running_loop().time() < deadline, await held()
        await asyncio.sleep(0.01)
    stats = await hatchet.metrics.aio_get_task_stats()
    [limit] = stats["per_user"].queued.concurrency or []
    assert (limit.expression, limit.type) == ("input.user", "GROUP_ROUND_ROBIN")
    release.set()
    await asyncio.gather(*(ref.aio_result() for ref in refs))
    stats = await hatchet.metrics.aio_get_task_stats()
    assert "per_user" not in stats or not stats["per_user"].queued.concurrency
