"""The store: every SQL statement hatchlite runs, grouped by aggregate.

`Store` is the only public face; its async methods each become one job on the
database thread (see `db.py`), so concurrent callers share transactions.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hatchlite.limits import LimitKeyError
from hatchlite.store import concurrency as _concurrency
from hatchlite.store import durable as _durable
from hatchlite.store import events as _events
from hatchlite.store import eviction as _eviction
from hatchlite.store import gates as _gates
from hatchlite.store import rate_limits as _rate_limits
from hatchlite.store import retention as _retention
from hatchlite.store import runs as _runs
from hatchlite.store import schedules as _schedules
from hatchlite.store import settle as _settle
from hatchlite.store import streams as _streams
from hatchlite.store import tasks as _tasks
from hatchlite.store import triggers as _triggers
from hatchlite.store import views as _views
from hatchlite.store import workers as _workers
from hatchlite.store import workflows as _workflows
from hatchlite.store.db import Database, DatabaseLockedError, is_busy, translate_error
from hatchlite.store.durable import ConditionSpec, EventIn, HistoryEntry, Node, StoredEvent
from hatchlite.store.records import (
    ClaimedTask,
    ClaimRequest,
    LogLine,
    NewRun,
    Outcome,
    RunResult,
    TaskShape,
    TickResult,
    TriggerResult,
    WorkflowShape,
)
from hatchlite.store.shapes import ShapeCache, UnknownWorkflowError
from hatchlite.store.streams import Chunk, ChunkIn
from hatchlite.store.workers import WorkerRow

T = TypeVar("T")

__all__ = [
    "ClaimRequest",
    "ClaimedTask",
    "ConditionSpec",
    "DatabaseLockedError",
    "EventIn",
    "HistoryEntry",
    "LogLine",
    "NewRun",
    "Node",
    "Outcome",
    "PushResult",
    "RunResult",
    "Store",
    "StoredEvent",
    "TaskShape",
    "TickResult",
    "TriggerResult",
    "UnknownWorkflowError",
    "WorkerRow",
    "WorkflowShape",
]


logger = logging.getLogger("hatchlite")


@dataclass(slots=True)
class PushResult:
    events: list[StoredEvent] = field(default_factory=list)
    satisfied: dict[Node, str] = field(default_factory=dict)  # durable waits
    triggered: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    finished_runs: dict[str, str] = field(default_factory=dict)
    unserved: set[str] = field(default_factory=set)  # workflows no live worker serves
    cancelled_running: list[str] = field(default_factory=list)  # by a concurrency limit


@dataclass(slots=True)
class TriggerOutcome:
    results: list[TriggerResult]
    unserved: set[str]  # workflows no live worker serves
    finished_runs: dict[str, str]  # runs that ended at once
    cancelled_running: list[str]  # running task runs a concurrency limit cancelled


# Runs a caller triggers, and the workflows to look for a live worker of.
TriggerRequest = tuple[list[NewRun], Collection[str]]


class Store:
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.db = Database(path, synchronous=synchronous)
        self.shapes = ShapeCache()
        self.listeners = _triggers.Listeners()  # used on the database thread only
        self.db.on_batch = self.shapes.sync_txn

    def open(self) -> None:
        self.db.open()

    def close(self) -> None:
        self.db.close()

    # -- workflows -------------------------------------------------------------

    async def register_workflows(
        self, items: list[tuple[WorkflowShape, str | None, str | None]], now: float
    ) -> None:
        """Record (shape, description, version) of workflows this process defines."""
        pending = [
            (shape, text, desc, version)
            for shape, desc, version in items
            if (text := self.shapes.needs_register(shape)) is not None
        ]
        if not pending:
            return

        def job(conn: sqlite3.Connection) -> None:
            for shape, text, desc, version in pending:
                self.shapes.register_txn(conn, shape, text, desc, version, now)
                _triggers.register_txn(conn, shape, now)
                _schedules.register_txn(conn, shape, now)

        await self.db.run(job)

    # -- runs ------------------------------------------------------------------

    async def trigger(
        self,
        runs: list[NewRun],
        now: float,
        *,
        check_served: Collection[str] = (),
        wall: float = 0.0,
    ) -> TriggerOutcome:
        """Create runs. For the workflows of `check_served`, look for a live worker (on
        any process) that serves their first tasks; runs of workflows with none get a
        REQUEUED_NO_WORKER task event. Returns the results, those workflows, the runs
        that ended at once (a zero sleep decided their first tasks; a concurrency limit
        cancelled them or others) and the running task runs a limit cancelled."""

        return await self.db.run(
            lambda conn: self._trigger_txn(conn, runs, now, check_served, wall)
        )

    def _trigger_txn(
        self,
        conn: sqlite3.Connection,
        runs: list[NewRun],
        now: float,
        check_served: Collection[str],
        wall: float,
    ) -> TriggerOutcome:
        settler = _settle.Settler(conn, self.shapes, now)
        results = _runs.trigger_txn(conn, runs, self.shapes, now, settler)
        settler.close()
        unserved: set[str] = set()
        made = {
            run.workflow_name
            for run, r in zip(runs, results, strict=True)
            if r.run_id == run.run_id
        }
        check = made.intersection(check_served)  # a run not created needs no worker
        if check:
            unserved = _runs.unserved_txn(conn, self.shapes, check, wall)
        if unserved:
            _runs.note_unserved_txn(conn, self.shapes, runs, results, unserved, now)
        return TriggerOutcome(results, unserved, settler.finished_runs, settler.cancelled_running)

    def _triggers_txn(
        self,
        conn: sqlite3.Connection,
        triggers: Sequence[TriggerRequest],
        now: float,
        wall: float,
    ) -> list[TriggerOutcome | Exception]:
        """Callers' triggers taken into a step, each in a savepoint of its own: one that
        fails (a key that fails, an idempotency collision) fails its caller alone."""
        out: list[TriggerOutcome | Exception] = []
        for runs, check_served in triggers:
            conn.execute("SAVEPOINT trigger")
            try:
                out.append(self._trigger_txn(conn, runs, now, check_served, wall))
            except sqlite3.Error as exc:
                busy = isinstance(exc, sqlite3.OperationalError) and is_busy(exc)
                if busy or not conn.in_transaction:
                    raise  # the whole step waits and retries, or fails as one
                conn.execute("ROLLBACK TO trigger")
                out.append(translate_error(exc, self.path))
            except Exception as exc:
                conn.execute("ROLLBACK TO trigger")
                out.append(exc)
            conn.execute("RELEASE trigger")
        return out

    async def cancel(self, ids: list[str], now: float) -> tuple[dict[str, str], list[str]]:
        return await self.db.run(lambda conn: _runs.cancel_txn(conn, ids, self.shapes, now))

    async def results(self, run_ids: list[str]) -> dict[str, RunResult]:
        return await self.db.run(lambda conn: _runs.results_txn(conn, run_ids), write=False)

    async def run_data(self, run_id: str) -> tuple[str, str] | None:
        """(input JSON, additional_metadata JSON) of a run."""

        def job(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT input, additional_metadata FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self.db.run(job, write=False)

    async def terminal_among(self, run_ids: list[str]) -> dict[str, str]:
        return await self.db.run(lambda conn: _runs.terminal_among(conn, run_ids), write=False)

    async def stream_chunks(self, run_id: str, after: int) -> tuple[list[Chunk], str | None]:
        return await self.db.run(
            lambda conn: _streams.chunks_after_txn(conn, run_id, after), write=False
        )

    async def shape(self, workflow_name: str) -> WorkflowShape:
        """The registered shape of a workflow; `UnknownWorkflowError` if none."""
        return await self._read(self.shapes.get, workflow_name)

    async def replay(
        self, ids: list[str], now: float
    ) -> tuple[list[str], dict[str, str], list[str]]:
        """Replay runs; returns those replayed, those that ended at once, and running
        task runs a concurrency limit cancelled meanwhile."""
        return await self.db.run(lambda conn: _runs.replay_txn(conn, ids, self.shapes, now))

    async def reset_durable_task(
        self, task_id: str, node_id: int, branch_id: int, now: float
    ) -> tuple[int, tuple[list[str], dict[str, str], list[str]]]:
        """A new branch of a durable task's history from `node_id`, and the task (with
        its descendants) queued again from there, in one transaction: the new branch,
        and what `replay` returns."""

        def job(
            conn: sqlite3.Connection,
        ) -> tuple[int, tuple[list[str], dict[str, str], list[str]]]:
            row = conn.execute(
                "SELECT workflow_run_id, workflow_name, task_name FROM task_runs WHERE id = ?",
                (task_id,),
            ).fetchone()
            durable = False
            if row is not None:
                shape = self.shapes.for_run(conn, str(row[0]), str(row[1]))
                durable = shape.task(str(row[2])).is_durable
            _, branch = _durable.reset_txn(conn, task_id, node_id, branch_id, durable)
            # Finished runs only (an evicted one too is unfinished: restore it instead).
            replayed = _runs.replay_txn(conn, [task_id], self.shapes, now, restore_evicted=False)
            return branch, replayed

        return await self.db.run(job)

    async def evict_many(
        self, items: list[tuple[str, str, list[int], list[list[str]], str]], now: float
    ) -> list[bool]:
        """Evict durable task runs waiting in a worker's memory, each given as (task
        run id, worker id, entries and child-run groups it waits for, reason); for each,
        whether it was evicted (not if its wait is over already; see store/eviction.py)."""
        return await self.db.run(
            lambda conn: [_eviction.evict_txn(conn, *item[:4], now, item[4]) for item in items]
        )

    async def restore_task(self, task_id: str, now: float) -> None:
        """Queue an evicted task run again now; `RestoreError` if it is not evicted."""
        await self.db.run(lambda conn: _eviction.restore_by_request_txn(conn, task_id, now))

    # -- reading runs back -------------------------------------------------------------

    async def registered_shape(self, name: str) -> WorkflowShape | None:
        """Workflow `name`'s registered definition (None if it has none)."""

        def job(conn: sqlite3.Connection) -> WorkflowShape | None:
            try:
                return self.shapes.get(conn, name)
            except LookupError:
                return None

        return await self._read(job)

    async def durable_history(self, task_id: str) -> tuple[int, list[_durable.HistoryRow]] | None:
        """A durable task run's history, every branch (None: no such task run)."""
        return await self._read(lambda conn: _durable.history_txn(conn, task_id))

    async def run_bundle(self, run_id: str) -> _views.RunBundle | None:
        """A run with its tasks, attempts, task events and shape (None if unknown)."""
        return await self._read(_views.run_bundle_txn, self.shapes, run_id)

    async def run_page(self, query: _views.RunQuery) -> _views.PageBundle:
        """One page of runs (or task runs) matching `query`, with what hangs off them."""
        return await self._read(_views.page_bundle_txn, self.shapes, query)

    async def task_bundle(
        self, task_id: str
    ) -> tuple[_views.TaskRecord, _views.RunRecord, WorkflowShape | None, int] | None:
        return await self._read(_views.task_bundle_txn, self.shapes, task_id)

    async def logs(
        self, task_id: str, limit: int, since: float | None, until: float | None
    ) -> list[_views.LogRecord]:
        return await self._read(_views.logs_txn, task_id, limit, since, until)

    async def task_counts(self, query: _views.RunQuery) -> dict[str, int]:
        return await self._read(_views.task_counts_txn, query)

    async def active_counts(self) -> dict[tuple[str, str, str], int]:
        return await self._read(_views.active_counts_txn)

    async def concurrency_waiting(self) -> list[tuple[str, str, str, str, int]]:
        """What concurrency limits hold back (see concurrency.waiting_txn)."""

        def shape_of(conn: sqlite3.Connection) -> Callable[[str], WorkflowShape | None]:
            def get(name: str) -> WorkflowShape | None:
                try:
                    return self.shapes.get(conn, name)
                except LookupError:
                    return None

            return get

        return await self._read(lambda conn: _concurrency.waiting_txn(conn, shape_of(conn)))

    async def workflows(
        self, name: str | None, limit: int | None, offset: int
    ) -> tuple[list[_workflows.WorkflowRecord], int]:
        return await self._read(_workflows.list_txn, name, limit, offset)

    async def workflow(self, workflow_id: str) -> _workflows.WorkflowRecord | None:
        return await self._read(_workflows.get_txn, workflow_id)

    async def workflow_by_name(self, name: str) -> _workflows.WorkflowRecord | None:
        return await self._read(_workflows.by_name_txn, name)

    async def workers(self, wall: float) -> list[_workers.WorkerRecord]:
        return await self._read(_workers.list_workers_txn, wall)

    async def worker(self, worker_id: str, wall: float) -> _workers.WorkerRecord | None:
        return await self._read(_workers.get_worker_txn, worker_id, wall)

    async def events(self, query: _events.EventQuery) -> _events.EventPage:
        return await self._read(_events.list_events_txn, query)

    async def event(self, event_id: str) -> _events.EventPage:
        return await self._read(_events.get_event_txn, event_id)

    async def filters(
        self,
        workflow_ids: list[str] | None,
        scopes: list[str] | None,
        limit: int | None,
        offset: int,
    ) -> tuple[list[_triggers.FilterRecord], int]:
        return await self._read(_triggers.list_filters_txn, workflow_ids, scopes, limit, offset)

    async def filter(self, filter_id: str) -> _triggers.FilterRecord | None:
        return await self._read(_triggers.get_filter_txn, filter_id)

    async def create_filter(
        self, workflow_id: str, expression: str, scope: str, payload_json: str, now: float
    ) -> _triggers.FilterRecord | None:
        return await self.db.run(
            lambda conn: _triggers.create_filter_txn(
                conn, workflow_id, expression, scope, payload_json, now
            )
        )

    async def update_filter(
        self,
        filter_id: str,
        expression: str | None,
        scope: str | None,
        payload_json: str | None,
        now: float,
    ) -> _triggers.FilterRecord | None:
        return await self.db.run(
            lambda conn: _triggers.update_filter_txn(
                conn, filter_id, expression, scope, payload_json, now
            )
        )

    async def delete_filter(self, filter_id: str) -> _triggers.FilterRecord | None:
        return await self.db.run(lambda conn: _triggers.delete_filter_txn(conn, filter_id))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.db.run(lambda conn: fn(conn, *args), write=False)

    async def purge(self, cutoff: float, statuses: list[str], batch: int) -> int:
        """Delete one batch of finished runs (and pushed events) older than `cutoff`."""

        def job(conn: sqlite3.Connection) -> int:
            deleted = _retention.purge_runs_txn(conn, cutoff, statuses, batch)
            return deleted + _retention.purge_events_txn(conn, cutoff, batch)

        return await self.db.run(job)

    async def incremental_vacuum(self, pages: int) -> int:
        return await self.db.run(lambda conn: _retention.incremental_vacuum_txn(conn, pages))

    # -- workflows and workers as rows ---------------------------------------------------

    async def delete_workflow(self, workflow_id: str, now: float) -> str | None:
        def job(conn: sqlite3.Connection) -> str | None:
            name = _workflows.delete_txn(conn, workflow_id, now)
            if name is not None:
                _schedules.forget_workflow_txn(conn, name)
            return name

        name = await self.db.run(job)
        if name is not None:
            self.shapes.forget_registration(name)  # registering it again undeletes it
        return name

    async def pause_workflow(
        self,
        workflow_id: str,
        paused: bool,
        now: float,
        queue_ttl: float | None = None,
        cron_behavior: str | None = None,
        scheduled_behavior: str | None = None,
    ) -> bool:
        return await self.db.run(
            lambda conn: _workflows.set_paused_txn(
                conn, workflow_id, paused, now, queue_ttl, cron_behavior, scheduled_behavior
            )
        )

    async def other_versions(self, hashes: dict[str, str]) -> dict[str, tuple[int, list[str]]]:
        return await self._read(_workflows.other_versions_txn, hashes)

    async def pause_worker(self, worker_id: str, paused: bool) -> bool:
        return await self.db.run(lambda conn: _workers.set_paused_txn(conn, worker_id, paused))

    async def mark_draining(self, worker_id: str) -> None:
        await self.db.run(lambda conn: _workers.mark_draining_txn(conn, worker_id))

    # -- the scheduler's step ----------------------------------------------------

    def tick(
        self,
        when: float,
        outcomes: list[Outcome],
        logs: list[LogLine],
        chunks: list[ChunkIn],
        claims: list[ClaimRequest],
        watched: Container[str] = (),
        check_runs: list[str] | None = None,
        check_running: list[str] | None = None,
        check_durable: list[Node] | None = None,
        maintenance: bool = True,
        wall: float = 0.0,
        clock: Callable[[], float] | None = None,
        fire: Collection[str] = (),
        fired_at: float | None = None,
        triggers: Sequence[TriggerRequest] = (),
    ) -> asyncio.Future[TickResult]:
        """Submit one scheduler step, one transaction (await the future for its result;
        the job runs to its end whatever happens to the awaiting task): write the
        callers' `triggers`, record finished attempts and logs, cancel tasks past their
        schedule timeout, claim ready tasks for each worker.
        With `clock`, the step's time is read once the transaction holds the write lock
        (so a claim never starts before the end, committed by another process, that
        admitted it).

        Results are returned for runs that ended and are in `watched`, and for runs of
        `check_runs` that ended (by another process); `check_running` are task ids
        running here, of which those cancelled elsewhere are returned; `check_durable`
        are waits suspended here, of which those satisfied elsewhere are returned.
        `maintenance` (engines with workers): fire due timers and schedule timeouts, and
        the due crons and one-time schedules of the workflows in `fire` (`fired_at`: the
        time of this process's previous firing step).
        A step with nothing to write takes no write lock, so a process that only
        triggers and waits never blocks the workers.
        """
        write = bool(outcomes or logs or chunks or claims or maintenance or triggers)

        def job(conn: sqlite3.Connection) -> TickResult:
            now = when if clock is None else max(when, clock())
            # First, so that this step's claims can take the runs they create.
            triggered = self._triggers_txn(conn, triggers, now, wall) if triggers else []
            paused = _workflows.paused_txn(conn) if claims or maintenance else {}
            settler = _settle.Settler(conn, self.shapes, now)
            durable: dict[Node, str] = {}
            if maintenance:
                durable = self._meet(settler, _durable.meet_timers_txn(conn, now))
            if check_durable:
                durable.update(_durable.satisfied_among_txn(conn, check_durable))
            if outcomes:
                settler.finish_all(outcomes)
            if maintenance:
                _tasks.expire_schedule_timeouts(settler)
                if paused:
                    _workflows.expire_paused_txn(settler, paused)
                dropping = _workflows.dropping_txn(conn) if paused else {}
                _schedules.fire_due_txn(settler, self.shapes, fire, dropping, fired_at)
            settler.close()
            _tasks.insert_logs(conn, logs)
            _streams.insert_chunks(conn, chunks)
            claimed: list[ClaimedTask] = []
            if claims or maintenance:
                _rate_limits.unpark_txn(conn, now)  # waits for a rate limit that are over
            failed = _settle.Settler(conn, self.shapes, now)  # task runs a claim fails
            for request in claims:
                claimed.extend(
                    _tasks.claim_txn(conn, request, self.shapes, now, paused, wall, failed)
                )
            finished = {**settler.finished_runs, **failed.finished_runs}
            known = settler.results
            results = {r: known[r] for r in finished if r in known and r in watched}
            wanted = [r for r in finished if r in watched and r not in results]
            if check_runs:
                wanted.extend(r for r in _runs.terminal_among(conn, check_runs) if r not in results)
            cancelled = _tasks.cancelled_among(conn, check_running) if check_running else []
            cancelled.extend(settler.cancelled_running)  # by a concurrency limit
            cancelled.extend(failed.cancelled_running)
            return TickResult(
                claimed=claimed,
                finished_runs=finished,
                cancelled_running=cancelled,
                next_deadline=_earliest(
                    _tasks.next_deadline(conn, now, self.shapes),
                    _workflows.next_pause_expiry(conn, paused) if paused else None,
                    _schedules.next_due(conn, fire) if maintenance else None,
                ),
                results={**results, **_runs.results_txn(conn, wanted)} if wanted else results,
                durable=durable,
                triggered=triggered,
            )

        return self.db.submit(job, write=write)

    # -- durable history and events -------------------------------------------------

    async def durable_record(
        self,
        task_id: str,
        node_id: int,
        kind: str,
        key: str,
        result_json: str,
        now: float,
        worker_id: str | None = None,
    ) -> None:
        await self.db.run(
            lambda conn: _durable.record_txn(
                conn, task_id, node_id, kind, key, result_json, now, worker_id
            )
        )

    async def durable_open_wait(
        self,
        task_id: str,
        node_id: int,
        key: str,
        fingerprint: str,
        conditions: list[ConditionSpec],
        now: float,
        worker_id: str | None = None,
    ) -> str | None:
        return await self.db.run(
            lambda conn: _durable.open_wait_txn(
                conn, task_id, node_id, key, conditions, now, fingerprint, worker_id
            )
        )

    async def durable_satisfied(self, nodes: list[Node]) -> dict[Node, str]:
        return await self.db.run(
            lambda conn: _durable.satisfied_among_txn(conn, nodes), write=False
        )

    async def push_events(
        self,
        events: list[EventIn],
        now: float,
        *,
        served_here: Collection[str] = (),
        wall: float = 0.0,
    ) -> PushResult:
        """Store events and, in the same transaction, the runs they start and the
        conditions they meet (of durable waits and of gated tasks). Timers already due
        are met first: a deadline that passed while no worker was up comes before the
        event. Runs started for workflows that no live worker serves (`served_here` are
        served by this process) get a REQUEUED_NO_WORKER event, and are named in the
        result's `unserved`."""

        def job(conn: sqlite3.Connection) -> PushResult:
            result = PushResult()
            settler = _settle.Settler(conn, self.shapes, now)
            result.satisfied.update(self._meet(settler, _durable.meet_timers_txn(conn, now)))
            started: list[NewRun] = []
            results: list[TriggerResult] = []
            for event in events:
                stored = _durable.store_event_txn(conn, *event, now)
                result.events.append(stored)
                # The waits open before the event first: the runs it starts are created
                # after it, and their conditions must not see it.
                met = _durable.meet_event_txn(conn, stored)
                result.satisfied.update(self._meet(settler, met))
                runs = _triggers.runs_for_event_txn(conn, self.shapes, stored, self.listeners)
                if runs:
                    made = _runs.start_runs_txn(
                        settler, self.shapes, runs, functools.partial(_not_started, stored.id)
                    )
                    # A run whose idempotency key is held is skipped, silently.
                    kept = [(r, t) for r, t in made if not t.collided]
                    results.extend(t for _, t in kept)
                    started.extend(r for r, _ in kept)
                    result.triggered[stored.id] = [(r.run_id, r.filter_id) for r, _ in kept]
            settler.close()
            result.finished_runs = settler.finished_runs
            result.cancelled_running = settler.cancelled_running
            check = {run.workflow_name for run in started} - set(served_here)
            if check:
                result.unserved = _runs.unserved_txn(conn, self.shapes, check, wall)
                if result.unserved:
                    _runs.note_unserved_txn(
                        conn, self.shapes, started, results, result.unserved, now
                    )
            return result

        return await self.db.run(job)

    def _meet(self, settler: _settle.Settler, nodes: set[Node]) -> dict[Node, str]:
        """Settle the waits with a newly met condition: gated tasks (node 0) are queued,
        skipped or cancelled; durable waits satisfied are returned."""
        gated = sorted(task_id for task_id, node_id in nodes if node_id == 0)
        if gated:
            _gates.settle_gates_txn(settler, gated)
        return _durable.settle_waits_txn(settler.conn, nodes, settler.now)

    async def set_worker_labels(self, worker_id: str, labels: dict[str, str | int]) -> None:
        await self.db.run(
            lambda conn: conn.execute(
                "UPDATE workers SET labels = ? WHERE id = ?", (json.dumps(labels), worker_id)
            )
        )

    # -- crons and one-time schedules ----------------------------------------------

    async def create_cron(
        self,
        workflow_name: str,
        name: str,
        expression: str,
        input_json: str,
        metadata_json: str,
        priority: int | None,
        now: float,
    ) -> _schedules.CronRecord:
        return await self.db.run(
            lambda conn: _schedules.create_cron_txn(
                conn, workflow_name, name, expression, input_json, metadata_json, priority, now
            )
        )

    async def cron(self, cron_id: str) -> _schedules.CronRecord | None:
        return await self._read(_schedules.get_cron_txn, cron_id)

    async def crons(self, *args: Any) -> tuple[list[_schedules.CronRecord], int]:
        """See `schedules.list_crons_txn` for the arguments."""
        return await self._read(_schedules.list_crons_txn, *args)

    async def delete_cron(self, cron_id: str) -> bool:
        return await self.db.run(lambda conn: _schedules.delete_cron_txn(conn, cron_id))

    async def create_schedules(
        self, schedules: list[_schedules.NewSchedule], now: float
    ) -> list[str]:
        return await self.db.run(lambda conn: _schedules.create_schedules_txn(conn, schedules, now))

    async def schedule(self, schedule_id: str) -> _schedules.ScheduleRecord | None:
        return await self._read(_schedules.get_schedule_txn, schedule_id)

    async def schedules(self, *args: Any) -> tuple[list[_schedules.ScheduleRecord], int]:
        """See `schedules.list_schedules_txn` for the arguments."""
        return await self._read(_schedules.list_schedules_txn, *args)

    async def reschedule(
        self, moves: list[tuple[str, float]], now: float
    ) -> list[tuple[str, str | None]]:
        """Move schedules that have not fired: (id, None) for each moved, else (id, why)."""
        return await self.db.run(
            lambda conn: [
                (schedule_id, _schedules.reschedule_txn(conn, schedule_id, at, now))
                for schedule_id, at in moves
            ]
        )

    async def delete_schedules(self, schedule_ids: list[str]) -> list[str]:
        return await self.db.run(lambda conn: _schedules.delete_schedules_txn(conn, schedule_ids))

    async def matching_schedules(self, *args: Any) -> list[str]:
        """See `schedules.matching_schedules_txn` for the arguments."""
        return await self._read(_schedules.matching_schedules_txn, *args)

    # -- rate limits -------------------------------------------------------------

    async def rate_limit_put(self, key: str, limit: int, window: float, now: float) -> None:
        await self.db.run(lambda conn: _rate_limits.put_txn(conn, key, limit, window, now))

    async def rate_limit_pause(self, key: str, until: float) -> float | None:
        return await self.db.run(lambda conn: _rate_limits.pause_txn(conn, key, until))

    async def rate_limits(
        self,
        search: str | None,
        order_by: str,
        descending: bool,
        offset: int,
        limit: int | None,
        now: float,
    ) -> tuple[list[_rate_limits.RateLimitRecord], int]:
        return await self._read(
            _rate_limits.list_txn, search, order_by, descending, offset, limit, now
        )

    # -- workers -------------------------------------------------------------------

    async def register_worker(
        self, worker: WorkerRow, now: float, wall: float, lease: float
    ) -> int:
        """Add a worker row; first release workers that are gone. Returns the number of
        task runs that went back to the queue."""

        def job(conn: sqlite3.Connection) -> int:
            requeued = _workers.recover_txn(conn, self.shapes, now, wall)
            _workers.register_txn(conn, worker, wall, lease)
            return requeued

        return await self.db.run(job)

    async def heartbeat(
        self,
        worker_ids: list[str],
        now: float,
        wall: float,
        lease: float,
        actions: dict[str, list[str]] | None = None,
        free: dict[str, tuple[int, int]] | None = None,
    ) -> tuple[int, set[str]]:
        """Extend this process's leases (and update the action ids of `actions`, the
        free slots of `free`), and release workers that are gone. Returns how many task
        runs went back to the queue, and which of `worker_ids` are paused."""

        def job(conn: sqlite3.Connection) -> tuple[int, set[str]]:
            _workers.heartbeat_txn(conn, worker_ids, wall, lease, actions, free)
            requeued = _workers.recover_txn(conn, self.shapes, now, wall)
            return requeued, _workers.paused_among_txn(conn, worker_ids)

        return await self.db.run(job)

    async def cancelled_among(self, task_ids: list[str]) -> list[str]:
        """The task runs of `task_ids` that are no longer RUNNING here (cancelled)."""
        return await self._read(_tasks.cancelled_among, task_ids)

    async def release_worker(self, worker_id: str, now: float) -> int:
        """A worker stopped: mark it so and re-queue the task runs it still held."""

        def job(conn: sqlite3.Connection) -> int:
            settler = _settle.Settler(conn, self.shapes, now)
            count = _workers.release_txn(settler, worker_id, "REASSIGNED")
            settler.close()
            return count

        return await self.db.run(job)

    async def data_version(self) -> int:
        """Changes whenever another connection commits to the database."""

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        return await self.db.run(job, write=False)


def _earliest(*instants: float | None) -> float | None:
    known = [t for t in instants if t is not None]
    return min(known) if known else None


def _not_started(event_id: str, run: NewRun, exc: LimitKeyError) -> None:
    logger.warning("event %s starts no run of workflow %r: %s", event_id, run.workflow_name, exc)
