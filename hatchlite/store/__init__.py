"""The store: every SQL statement hatchlite runs, grouped by aggregate.

`Store` is the only public face; its async methods each become one job on the
database thread (see `db.py`), so concurrent callers share transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Container

from hatchlite.store import durable as _durable
from hatchlite.store import runs as _runs
from hatchlite.store import tasks as _tasks
from hatchlite.store import workers as _workers
from hatchlite.store.db import Database, DatabaseLockedError
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
from hatchlite.store.workers import WorkerRow

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


class Store:
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.db = Database(path, synchronous=synchronous)
        self.shapes = ShapeCache()

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

        await self.db.run(job)

    # -- runs ------------------------------------------------------------------

    async def trigger(
        self,
        runs: list[NewRun],
        now: float,
        *,
        check_served: Collection[str] = (),
        wall: float = 0.0,
    ) -> tuple[list[TriggerResult], set[str]]:
        """Create runs. For the workflows of `check_served`, look for a live worker (on
        any process) that serves their first tasks; runs of workflows with none get a
        REQUEUED_NO_WORKER task event. Returns the results and those workflows."""

        def job(conn: sqlite3.Connection) -> tuple[list[TriggerResult], set[str]]:
            results = _runs.trigger_txn(conn, runs, self.shapes, now)
            if not check_served:
                return results, set()
            unserved = _runs.unserved_txn(conn, self.shapes, check_served, wall)
            if unserved:
                _runs.note_unserved_txn(conn, self.shapes, runs, results, unserved, now)
            return results, unserved

        return await self.db.run(job)

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

    # -- the scheduler's step ----------------------------------------------------

    async def tick(
        self,
        now: float,
        outcomes: list[Outcome],
        logs: list[LogLine],
        claims: list[ClaimRequest],
        watched: Container[str] = (),
        check_runs: list[str] | None = None,
        check_running: list[str] | None = None,
        check_durable: list[Node] | None = None,
        maintenance: bool = True,
    ) -> TickResult:
        """One scheduler step in one transaction: record finished attempts and logs,
        cancel tasks past their schedule timeout, claim ready tasks for each worker.

        Results are returned for runs that ended and are in `watched`, and for runs of
        `check_runs` that ended (by another process); `check_running` are task ids
        running here, of which those cancelled elsewhere are returned; `check_durable`
        are waits suspended here, of which those satisfied elsewhere are returned.
        `maintenance` (engines with workers): fire due timers and schedule timeouts.
        A step with nothing to write takes no write lock, so a process that only
        triggers and waits never blocks the workers.
        """
        write = bool(outcomes or logs or claims or maintenance)

        def job(conn: sqlite3.Connection) -> TickResult:
            durable = _durable.fire_timers_txn(conn, now) if maintenance else {}
            if check_durable:
                durable.update(_durable.satisfied_among_txn(conn, check_durable))
            settler = _tasks.Settler(conn, self.shapes, now)
            for outcome in outcomes:
                settler.finish(outcome)
            if maintenance:
                _tasks.expire_schedule_timeouts(settler)
            settler.close()
            _tasks.insert_logs(conn, logs)
            claimed: list[ClaimedTask] = []
            for request in claims:
                claimed.extend(_tasks.claim_txn(conn, request, self.shapes, now))
            finished = settler.finished_runs
            wanted = [run_id for run_id in finished if run_id in watched]
            if check_runs:
                wanted.extend(_runs.terminal_among(conn, check_runs))
            cancelled = _tasks.cancelled_among(conn, check_running) if check_running else []
            return TickResult(
                claimed=claimed,
                finished_runs=finished,
                cancelled_running=cancelled,
                next_deadline=_tasks.next_deadline(conn, now),
                results=_runs.results_txn(conn, wanted) if wanted else {},
                durable=durable,
            )

        return await self.db.run(job, write=write)

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
        self, events: list[EventIn], now: float
    ) -> tuple[list[StoredEvent], dict[Node, str]]:
        """Store events (one transaction) and the durable waits they satisfied."""

        def job(conn: sqlite3.Connection) -> tuple[list[StoredEvent], dict[Node, str]]:
            stored: list[StoredEvent] = []
            satisfied: dict[Node, str] = {}
            for event in events:
                one, met = _durable.push_event_txn(conn, *event, now)
                stored.append(one)
                satisfied.update(met)
            return stored, satisfied

        return await self.db.run(job)

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
    ) -> int:
        """Extend this process's leases (and update the action ids of `actions`), and
        release workers that are gone."""

        def job(conn: sqlite3.Connection) -> int:
            _workers.heartbeat_txn(conn, worker_ids, wall, lease, actions)
            return _workers.recover_txn(conn, self.shapes, now, wall)

        return await self.db.run(job)

    async def release_worker(self, worker_id: str, now: float) -> int:
        """A worker stopped: mark it so and re-queue the task runs it still held."""

        def job(conn: sqlite3.Connection) -> int:
            settler = _tasks.Settler(conn, self.shapes, now)
            count = _workers.release_txn(settler, worker_id, "REASSIGNED")
            settler.close()
            return count

        return await self.db.run(job)

    async def data_version(self) -> int:
        """Changes whenever another connection commits to the database."""

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        return await self.db.run(job, write=False)
