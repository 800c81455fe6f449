"""`hatchet.runs` against a database with a known history: list and its filters, pages,
get and its task-event timeline, replay, cancel and replay in bulk, create by name,
purge, bad input, and the query plans behind the lists."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hatchlite import (
    BulkCancelReplayOpts,
    Context,
    DurableContext,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    NonRetryableException,
    RunFilter,
    RunNotFoundError,
    V1TaskStatus,
    Workflow,
)
from hatchlite.models import V1TaskEventType
from hatchlite.store import views
from hatchlite.testing import TestClock
from tests.conftest import query
from tests.test_processes import ROOT

E = V1TaskEventType
START = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class History:
    hatchet: Hatchet
    clock: TestClock
    dag: Workflow[EmptyModel]
    ids: dict[str, str]
    executions: Counter[str]
    switches: dict[str, bool]


def _build(db: str) -> History:
    clock = TestClock(START)
    hatchet = Hatchet(db=db, clock=clock)
    executions: Counter[str] = Counter()
    switches = {"b_fails": True}

    dag = hatchet.workflow(name="pipeline")

    @dag.task()
    def extract(input: EmptyModel, ctx: Context) -> dict[str, int]:
        executions["extract"] += 1
        return {"rows": 3}

    @dag.task(parents=[extract], retries=1)
    def transform(input: EmptyModel, ctx: Context) -> dict[str, int]:
        executions["transform"] += 1
        if switches["b_fails"]:
            raise ValueError("bad rows")
        return {"rows": ctx.task_output(extract)["rows"] * 2}

    @dag.task(parents=[transform])
    def load(input: EmptyModel, ctx: Context) -> dict[str, int]:
        executions["load"] += 1
        return {"loaded": ctx.task_output(transform)["rows"]}

    @hatchet.task()
    def ping(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"pong": ctx.additional_metadata.get("customer", "")}

    @hatchet.task()
    def refuse(input: EmptyModel, ctx: Context) -> None:
        raise NonRetryableException("no retry for this")

    @hatchet.task()
    async def waits(input: EmptyModel, ctx: Context) -> None:
        await asyncio.sleep(30)

    @hatchet.task()
    async def parent(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        first = await ping.aio_run(additional_metadata={"customer": "child"})
        second = await ping.aio_run()
        return {"children": [first, second]}

    ids: dict[str, str] = {}
    ids["ping"] = ping.run_no_wait(additional_metadata={"customer": "acme", "n": 3}).workflow_run_id
    ping.get_run_ref(ids["ping"]).result()
    with pytest.raises(FailedTaskRunExceptionGroup):
        dag.run()
    ids["pipeline"] = dag.list_runs()[0].metadata.id
    with pytest.raises(FailedTaskRunExceptionGroup):
        refuse.run()
    ids["refuse"] = refuse.list_runs()[0].metadata.id
    ref = waits.run_no_wait()
    ids["waits"] = ref.workflow_run_id
    hatchet.runs.cancel(ids["waits"])
    ids["parent"] = parent.run_no_wait().workflow_run_id
    parent.get_run_ref(ids["parent"]).result()
    return History(hatchet, clock, dag, ids, executions, switches)


@pytest.fixture
def history(db_path: str) -> Any:
    built = _build(db_path)
    yield built
    built.hatchet.close()


# -- list -------------------------------------------------------------------------------


def test_list_has_one_row_per_run_newest_first(history: History) -> None:
    runs = history.hatchet.runs
    rows = runs.list().rows
    # parent and its 2 children, waits, refuse, pipeline, ping
    assert len(rows) == 7
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)
    by_id = {r.metadata.id: r for r in rows}
    pipeline = by_id[history.ids["pipeline"]]
    assert pipeline.status == V1TaskStatus.FAILED
    assert pipeline.type.value == "DAG"
    assert [c.display_name.split("-")[0] for c in pipeline.children or []] == [
        "extract",
        "transform",
        "load",
    ]
    assert [c.status for c in pipeline.children or []] == [
        V1TaskStatus.COMPLETED,
        V1TaskStatus.FAILED,
        V1TaskStatus.CANCELLED,  # a failed parent cancels its descendants
    ]
    assert "ValueError: bad rows" in (pipeline.error_message or "")
    ping = by_id[history.ids["ping"]]
    assert ping.type.value == "TASK" and ping.task_external_id == history.ids["ping"]
    assert ping.output == {"pong": "acme"} and ping.additional_metadata == {
        "customer": "acme",
        "n": 3,
    }
    assert ping.workflow_name == "ping" and ping.action_id == "ping:ping"
    assert by_id[history.ids["waits"]].status == V1TaskStatus.CANCELLED
    parent = by_id[history.ids["parent"]]
    assert parent.num_spawned_children == 2
    assert runs.list(include_payloads=False).rows[0].input == {}


def test_list_filters(history: History) -> None:
    runs = history.hatchet.runs
    ids = history.ids

    def listed(**filters: Any) -> set[str]:
        return {r.metadata.id for r in runs.list(**filters).rows}

    assert listed(statuses=[V1TaskStatus.FAILED]) == {ids["pipeline"], ids["refuse"]}
    assert listed(statuses=[V1TaskStatus.CANCELLED, V1TaskStatus.FAILED]) == {
        ids["pipeline"],
        ids["refuse"],
        ids["waits"],
    }
    assert listed(workflow_ids=[history.dag.id]) == {ids["pipeline"]}
    # Metadata values match as strings, any pair matches.
    assert listed(additional_metadata={"customer": "acme"}) == {ids["ping"]}
    assert listed(additional_metadata={"n": "3"}) == {ids["ping"]}
    assert listed(additional_metadata={"customer": "child", "n": "3"}) == {
        ids["ping"],
        *(r.metadata.id for r in runs.list(additional_metadata={"customer": "child"}).rows),
    }
    parent_task = runs.get(ids["parent"]).tasks[0].task_external_id
    children = listed(parent_task_external_id=parent_task)
    assert len(children) == 2 and all(
        runs.get(c).run.parent_task_external_id == parent_task for c in children
    )
    worker_id = (
        runs.get_task_run(ids["ping"]).metadata.id
        and runs.get(ids["ping"]).task_events[1].worker_id
    )
    assert worker_id and ids["ping"] in listed(worker_id=worker_id)
    assert listed(worker_id="no-such-worker") == set()
    assert listed(triggering_event_external_id="no-such-event") == set()
    tasks = runs.list(only_tasks=True).rows
    assert len(tasks) == 9  # 3 pipeline tasks + 6 single-task runs
    assert {t.workflow_name for t in tasks if t.workflow_run_external_id == ids["pipeline"]} == {
        "pipeline"
    }
    assert len(runs.list(only_tasks=True, statuses=[V1TaskStatus.CANCELLED]).rows) == 2


def test_list_time_window(history: History) -> None:
    runs, clock = history.hatchet.runs, history.clock
    clock.advance(timedelta(days=2))
    assert runs.list().rows == []  # the default window is the last day
    later = history.hatchet.runs.create("ping", {})
    assert [r.metadata.id for r in runs.list().rows] == [later.run.metadata.id]
    everything = runs.list(since=START - timedelta(hours=1))
    assert len(everything.rows) == 8
    assert (
        len(runs.list(since=START - timedelta(hours=1), until=START + timedelta(hours=1)).rows) == 7
    )
    naive = (START - timedelta(hours=1)).replace(tzinfo=None)  # naive times are UTC
    assert len(runs.list(since=naive).rows) == 8
    with pytest.warns(RuntimeWarning, match="7 days"):
        runs.list(since=START - timedelta(days=30))


def test_pages(db_path: str) -> None:
    hatchet = Hatchet(db=db_path)

    @hatchet.task()
    def one(input: EmptyModel, ctx: Context) -> None:
        pass

    try:
        one.run_many([one.create_bulk_run_item() for _ in range(60)])
        first = hatchet.runs.list()
        assert len(first.rows) == 50  # Hatchet's default page
        assert first.pagination.model_dump() == {
            "current_page": 1,
            "next_page": 2,
            "num_pages": 2,
        }
        second = hatchet.runs.list(offset=50)
        assert len(second.rows) == 10 and second.pagination.next_page is None
        assert {r.metadata.id for r in first.rows}.isdisjoint(r.metadata.id for r in second.rows)
        assert len(hatchet.runs.list(limit=7, offset=14).rows) == 7
        assert hatchet.runs.list(limit=7, offset=14).pagination.current_page == 3
        assert len(hatchet.runs.list_with_pagination()) == 60
        assert len(one.list_runs()) == 60
    finally:
        hatchet.close()


# -- get and its timeline ---------------------------------------------------------------


def _events(details: Any, task: str) -> list[E]:
    ids = {t.task_external_id for t in details.tasks if t.display_name.startswith(task + "-")}
    return [e.event_type for e in details.task_events if e.task_id in ids]


def test_get_details_and_the_task_event_timeline(history: History) -> None:
    runs = history.hatchet.runs
    details = runs.get(history.ids["pipeline"])
    assert details.run.status == V1TaskStatus.FAILED
    assert details.run.output == {"extract": {"rows": 3}}
    assert [item.task_name for item in details.shape] == ["extract", "transform", "load"]
    extract = details.shape[0]
    assert extract.children_external_ids == [details.shape[1].task_external_id]
    assert _events(details, "extract") == [E.QUEUED, E.STARTED, E.FINISHED]
    # One FAILED per failed attempt, one RETRYING per retry.
    assert _events(details, "transform") == [
        E.QUEUED,
        E.STARTED,
        E.FAILED,
        E.RETRYING,
        E.QUEUED,
        E.STARTED,
        E.FAILED,
    ]
    failed = [e for e in details.task_events if e.event_type == E.FAILED]
    assert [e.retry_count for e in failed] == [0, 1] and [e.attempt for e in failed] == [1, 2]
    assert all(e.error_message == "ValueError: bad rows" for e in failed)
    assert [e.id for e in details.task_events] == list(range(1, len(details.task_events) + 1))
    assert _events(details, "load") == [E.CANCELLED]  # cancelled before it was queued
    # A non-retryable failure: one FAILED, no RETRYING.
    refuse = runs.get(history.ids["refuse"])
    assert _events(refuse, "refuse") == [E.QUEUED, E.STARTED, E.FAILED]
    waits = runs.get(history.ids["waits"])
    assert _events(waits, "waits")[-1] == E.CANCELLED

    summary = runs.get_task_run(details.tasks[1].task_external_id)
    assert (
        summary.retry_count == 1 and summary.attempt == 2 and summary.status == V1TaskStatus.FAILED
    )
    assert runs.get_status(history.ids["pipeline"]) == V1TaskStatus.FAILED
    assert runs.get_result(history.ids["ping"]) == {"pong": "acme"}
    detail = runs.get_details(history.ids["pipeline"])
    assert set(detail.task_runs) == {"extract", "transform", "load"}
    assert "ValueError: bad rows" in (detail.task_runs["transform"].error or "")


def test_a_timed_out_attempt_shows_timed_out(db_path: str) -> None:
    hatchet = Hatchet(db=db_path)

    @hatchet.task(execution_timeout=timedelta(milliseconds=50))
    async def slow(input: EmptyModel, ctx: Context) -> None:
        await asyncio.sleep(10)

    try:
        ref = slow.run_no_wait()
        with pytest.raises(FailedTaskRunExceptionGroup, match="Task exceeded timeout"):
            ref.result()
        events = [e.event_type for e in hatchet.runs.get(ref.workflow_run_id).task_events]
        assert events == [E.QUEUED, E.STARTED, E.TIMED_OUT]
    finally:
        hatchet.close()


# -- replay -----------------------------------------------------------------------------


def test_replay_runs_failed_tasks_again_and_keeps_completed_outputs(history: History) -> None:
    runs, ids = history.hatchet.runs, history.ids
    before = dict(history.executions)
    history.switches["b_fails"] = False
    runs.replay(ids["pipeline"])
    assert runs.get_run_ref(ids["pipeline"]).result() == {
        "extract": {"rows": 3},
        "transform": {"rows": 6},
        "load": {"loaded": 6},
    }
    assert history.executions["extract"] == before["extract"]  # not run again
    assert history.dag.get_result(ids["pipeline"])["transform"] == {"rows": 6}
    assert history.executions["transform"] == before["transform"] + 1
    details = runs.get(ids["pipeline"])
    transform = details.tasks[1]
    assert transform.retry_count == 2 and transform.attempt == 3
    events = _events(details, "transform")
    assert events[-4:] == [E.RETRIED_BY_USER, E.QUEUED, E.STARTED, E.FINISHED]
    assert E.RETRYING not in events[7:]  # a replay is not a retry
    # A completed run replays whole; a running one cannot be replayed.
    runs.replay(ids["pipeline"])
    runs.get_run_ref(ids["pipeline"]).result()
    assert history.executions["extract"] == before["extract"] + 1
    with pytest.raises(ValueError, match="only finished runs"):
        runs.replay(history.hatchet.runs.create("pipeline", {}).run.metadata.id)


def test_replay_one_task_and_its_descendants(history: History) -> None:
    runs, ids = history.hatchet.runs, history.ids
    history.switches["b_fails"] = False
    runs.replay(ids["pipeline"])
    runs.get_run_ref(ids["pipeline"]).result()
    before = dict(history.executions)
    load = runs.get(ids["pipeline"]).tasks[2].task_external_id
    runs.replay(load)  # by task run id: that task (and its descendants) only
    runs.get_run_ref(ids["pipeline"]).result()
    assert history.executions["load"] == before["load"] + 1
    assert history.executions["transform"] == before["transform"]


def test_a_durable_task_replays_its_history(db_path: str) -> None:
    hatchet = Hatchet(db=db_path)
    calls: Counter[str] = Counter()
    fail = {"now": True}

    @hatchet.durable_task()
    async def journal(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
        stamp = await ctx.aio_now()
        await ctx.aio_sleep_for(timedelta(milliseconds=1))
        calls["body"] += 1
        if fail["now"]:
            raise NonRetryableException("not yet")
        return {"stamp": stamp.isoformat()}

    try:
        ref = journal.run_no_wait()
        with pytest.raises(FailedTaskRunExceptionGroup):
            ref.result()
        first_stamp = hatchet.runs.get(ref.workflow_run_id).tasks[0].created_at
        fail["now"] = False
        hatchet.runs.replay(ref.workflow_run_id)
        out = hatchet.runs.get_run_ref(ref.workflow_run_id).result()["journal"]
        # aio_now() returned its recorded value: the first run's instant.
        assert datetime.fromisoformat(out["stamp"]) >= first_stamp
        stamp_rows = query(
            db_path, "SELECT result FROM durable_events WHERE node_id = 1 AND kind = 'NOW'"
        )
        assert out["stamp"] in str(stamp_rows[0][0])
        assert calls["body"] == 2
    finally:
        hatchet.close()


# -- bulk cancel and replay ---------------------------------------------------------------


def test_bulk_operations_by_ids_and_by_filters(history: History) -> None:
    runs, ids = history.hatchet.runs, history.ids
    with pytest.raises(ValueError, match="ids or filters"):
        BulkCancelReplayOpts()
    with pytest.raises(ValueError, match="cannot both"):
        BulkCancelReplayOpts(ids=["x"], filters=RunFilter(since=START))
    history.switches["b_fails"] = False
    runs.bulk_replay(
        BulkCancelReplayOpts(
            filters=RunFilter(
                since=START - timedelta(hours=1),
                statuses=[V1TaskStatus.FAILED],
                workflow_ids=[history.dag.id],
            )
        )
    )
    assert runs.get_run_ref(ids["pipeline"]).result()["load"] == {"loaded": 6}
    assert runs.get_status(ids["refuse"]) == V1TaskStatus.FAILED  # another workflow
    runs.bulk_replay_by_filters_with_pagination(
        sleep_time=0, chunk_size=1, since=START - timedelta(hours=1)
    )  # FAILED and CANCELLED ones: refuse and waits
    with pytest.raises(FailedTaskRunExceptionGroup):
        runs.get_run_ref(ids["refuse"]).result()
    assert runs.get_status(ids["waits"]) == V1TaskStatus.RUNNING
    runs.bulk_cancel_by_filters_with_pagination(
        sleep_time=0, chunk_size=1, since=START - timedelta(hours=1)
    )  # RUNNING and QUEUED ones: waits
    assert runs.get_status(ids["waits"]) == V1TaskStatus.CANCELLED
    runs.bulk_cancel(BulkCancelReplayOpts(ids=[ids["ping"]]))  # finished: no change
    assert runs.get_status(ids["ping"]) == V1TaskStatus.COMPLETED


# -- create by name, from another process ---------------------------------------------------


@pytest.mark.timeout(60)
def test_runs_triggered_from_another_process_are_listed_and_created_by_name(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "shared.db")
    worker_side = Hatchet(db=db)

    @worker_side.task(input_validator=dict)
    def greet(input: dict[str, str], ctx: Context) -> dict[str, str]:
        return {"hello": input.get("name", "?")}

    try:
        greet.run({"name": "warm-up"})  # registered; this process's implicit worker serves it
        script = textwrap.dedent(
            f"""
            from hatchlite import Hatchet
            client = Hatchet(db={db!r}, auto_worker=False)
            details = client.runs.create("greet", {{"name": "from afar"}}, {{"origin": "cli"}})
            print(details.run.metadata.id)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        run_id = out.stdout.strip().splitlines()[-1]
        assert worker_side.runs.get_run_ref(run_id).result() == {"greet": {"hello": "from afar"}}
        listed = worker_side.runs.list(additional_metadata={"origin": "cli"}).rows
        assert [r.metadata.id for r in listed] == [run_id]
        created = worker_side.runs.create("greet", {"name": "here"})
        assert created.run.status in (
            V1TaskStatus.QUEUED,
            V1TaskStatus.RUNNING,
            V1TaskStatus.COMPLETED,
        )
        assert greet.get_run_ref(created.run.metadata.id).result() == {"hello": "here"}
        with pytest.raises(Exception, match="not registered"):
            worker_side.runs.create("no-such-workflow", {})
    finally:
        worker_side.close()


# -- retention ---------------------------------------------------------------------------


def test_purge_deletes_exactly_the_old_finished_runs(history: History, db_path: str) -> None:
    runs, clock = history.hatchet.runs, history.clock
    history.hatchet.event.push("old:event", {"n": 1})
    old_ids = {r.metadata.id for r in runs.list().rows}
    old_tasks = [t.metadata.id for t in runs.list(only_tasks=True).rows]
    clock.advance(timedelta(days=10))
    recent = runs.create("ping", {}).run.metadata.id
    runs.get_run_ref(recent).result()
    unfinished = history.hatchet.runs.create("waits", {}).run.metadata.id
    with pytest.raises(ValueError, match="only finished runs"):
        runs.purge(timedelta(days=1), statuses=[V1TaskStatus.RUNNING])
    deleted = runs.purge(timedelta(days=7), batch_size=2)
    assert deleted == len(old_ids) + 1  # the runs and the old event
    for run_id in old_ids:
        with pytest.raises(RunNotFoundError):
            runs.get(run_id)
    assert runs.get_status(recent) == V1TaskStatus.COMPLETED
    assert runs.get_status(unfinished) in (V1TaskStatus.QUEUED, V1TaskStatus.RUNNING)
    marks = ",".join("?" * len(old_tasks))
    for table in ("task_attempts", "task_logs", "durable_events", "stream_chunks"):
        column = "workflow_run_id" if table == "stream_chunks" else "task_run_id"
        assert query(
            db_path, f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})", tuple(old_tasks)
        ) == [(0,)]
    assert query(db_path, "SELECT count(*) FROM events") == [(0,)]
    assert query(db_path, "PRAGMA auto_vacuum") == [(2,)]  # incremental: pages go back
    runs.cancel(unfinished)


# -- bad input --------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_and_changes_nothing(history: History, db_path: str) -> None:
    runs = history.hatchet.runs
    before = query(db_path, "SELECT id, status FROM workflow_runs ORDER BY id")
    unknown = "00000000-0000-0000-0000-00000000beef"
    for call in (
        runs.get,
        runs.get_details,
        runs.get_status,
        runs.get_task_run,
        runs.replay,
        runs.cancel,
        runs.get_result,
    ):
        with pytest.raises(RunNotFoundError, match=unknown):
            call(unknown)
    with pytest.raises(ValueError, match="after until"):
        runs.list(since=START, until=START - timedelta(days=1))
    with pytest.raises(ValueError, match="limit"):
        runs.list(limit=-1)
    with pytest.raises(ValueError, match="offset"):
        runs.list(offset=-5)
    with pytest.raises(RunNotFoundError):
        runs.bulk_replay(BulkCancelReplayOpts(ids=[history.ids["pipeline"], unknown]))
    assert query(db_path, "SELECT id, status FROM workflow_runs ORDER BY id") == before


# -- query plans --------------------------------------------------------------------------


def test_every_list_query_is_served_by_an_index(history: History, db_path: str) -> None:
    statements: list[str] = []
    conn = sqlite3.connect(db_path)
    conn.set_trace_callback(statements.append)
    shapes = history.hatchet._engine.store.shapes
    since = (START - timedelta(days=1)).timestamp()
    queries = [
        views.RunQuery(since=since),
        views.RunQuery(since=since, statuses=["FAILED"]),
        views.RunQuery(since=since, workflow_ids=[history.dag.id]),
        views.RunQuery(since=since, additional_metadata={"customer": "acme"}),
        views.RunQuery(since=since, parent_task_external_id="x"),
        views.RunQuery(since=since, triggering_event_external_id="x"),
        views.RunQuery(since=since, worker_id="x"),
        views.RunQuery(since=since, only_tasks=True),
        views.RunQuery(since=since, only_tasks=True, statuses=["RUNNING"], worker_id="x"),
    ]
    try:
        for q in queries:
            views.page_bundle_txn(conn, shapes, q)
        views.run_bundle_txn(conn, shapes, history.ids["pipeline"])
        views.task_counts_txn(conn, views.RunQuery(since=since))
        views.logs_txn(conn, history.ids["ping"], 10, None, None)
        conn.set_trace_callback(None)
        scans = []
        for sql in {s for s in statements if s.lstrip().upper().startswith("SELECT")}:
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
                detail = str(row[3])
                if (
                    re.match(r"SCAN (r|t|workflow_runs|task_runs)\b", detail)
                    and "INDEX" not in detail
                ):
                    scans.append((detail, sql))
        assert scans == []
    finally:
        conn.close()


def test_warnings_are_not_raised_by_default_list(history: History) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history.hatchet.runs.list()


def test_a_task_that_waited_past_its_schedule_timeout_shows_it(db_path: str) -> None:
    clock = TestClock(START)
    hatchet = Hatchet(db=db_path, clock=clock)

    @hatchet.task(schedule_timeout=timedelta(minutes=1))
    def never(input: EmptyModel, ctx: Context) -> None:
        pass

    try:
        hatchet.workflows.pause(never.id, queue_ttl=timedelta(days=1))
        ref = never.run_no_wait()
        clock.advance(timedelta(minutes=2))
        with pytest.raises(ValueError, match="cancelled"):
            ref.result()
        events = [e.event_type for e in hatchet.runs.get(ref.workflow_run_id).task_events]
        assert events == [E.QUEUED, E.SCHEDULING_TIMED_OUT]
    finally:
        hatchet.close()
