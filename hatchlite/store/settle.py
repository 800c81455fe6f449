"""Settling task runs: terminal transitions and their consequences (children released
or skipped, descendants cancelled, on-failure queued), task conditions (`wait_for`,
`skip_if`, `cancel_if`), and runs finalized once all their tasks ended. Each helper runs
inside the caller's transaction on the database thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from hatchlite.ids import new_id
from hatchlite.limits import RateLimitError, rate_limit_uses, run_variables
from hatchlite.store import rate_limits as _rate_limits
from hatchlite.store.concurrency import Limits
from hatchlite.store.eviction import run_ended_txn
from hatchlite.store.records import (
    ACTIVE,
    Outcome,
    RunResult,
    TaskEvent,
    TaskRow,
    WorkflowShape,
    marks,
)
from hatchlite.store.shapes import ShapeCache

logger = logging.getLogger("hatchlite")
T = TypeVar("T")


SKIPPED_OUTPUT = '{"skipped":true}'


def insert_task_events(conn: sqlite3.Connection, events: list[TaskEvent]) -> None:
    """Record task events other than an attempt's start and end."""
    if events:
        conn.executemany(
            """INSERT INTO task_events (task_run_id, workflow_run_id, retry_count, event_type,
                   message, worker_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            events,
        )


class Settler:
    """Applies terminal transitions and their consequences (children released,
    descendants cancelled, on-failure queued) and finalizes runs at the end."""

    def __init__(self, conn: sqlite3.Connection, shapes: ShapeCache, now: float) -> None:
        self.conn = conn
        self.shapes = shapes
        self.now = now
        self.touched_dags: dict[str, str] = {}  # run id -> workflow name
        self.finished_runs: dict[str, str] = {}
        self.attempts: list[tuple[object, ...]] = []
        self.events: list[TaskEvent] = []
        self.cancelled_running: list[str] = []  # running task runs cancelled here
        # Results of single-task runs this settler ended with an attempt's outcome: the
        # step hands them to waiting callers without reading them back.
        self.results: dict[str, RunResult] = {}
        self._limits: Limits | None = None
        self._child_waits: bool | None = None  # whether evicted parents wait for runs

    @property
    def limits(self) -> Limits:
        """Concurrency admission in this transaction (created when first needed)."""
        if self._limits is None:
            self._limits = Limits(self)
        return self._limits

    def record_attempt(
        self,
        task_id: str,
        retry_count: int,
        status: str,
        worker_id: str | None,
        error_json: str | None,
        started_at: float | None,
        queued_at: float | None = None,
    ) -> None:
        self.attempts.append(
            (task_id, retry_count, status, worker_id, error_json, queued_at, started_at, self.now)
        )

    def record_evicted_end(self, task_id: str, status: str) -> None:
        """The attempt of an evicted task run ended (no worker holds it to say so)."""
        row = self.conn.execute(
            "SELECT retry_count, started_at, queued_at FROM task_runs WHERE id = ?", (task_id,)
        ).fetchone()
        if row is not None:
            self.record_attempt(task_id, row[0], status, None, None, row[1], row[2])

    def finish(self, outcome: Outcome) -> None:
        """Record one attempt's end; one that cannot be recorded (a definition that
        changed under it) fails its task instead of blocking every later step."""

        def recover(exc: LookupError) -> None:
            logger.error("could not record the end of task run %s: %s", outcome.task_id, exc)
            self.fail_orphan(
                outcome.task_id,
                outcome.run_id,
                outcome.workflow_name,
                outcome.retry_count,
                str(exc),
                was="RUNNING",
                worker_id=outcome.worker_id,
            )

        self.guarded(lambda: self._finish(outcome), recover)

    def finish_all(self, outcomes: list[Outcome]) -> None:
        """`finish` each outcome: all in one savepoint, or, if one meets a definition
        that changed under it, again one by one, each in its own."""

        def settle_all() -> None:
            for outcome in outcomes:
                self._finish(outcome)

        try:
            self.attempt(settle_all)
        except LookupError:
            for outcome in outcomes:
                self.finish(outcome)

    def guarded(self, work: Callable[[], None], recover: Callable[[LookupError], None]) -> None:
        """Do `work` in a savepoint (`attempt`). If it meets a definition that changed
        under it (a task or workflow no longer registered: a lookup fails), it is undone
        and `recover` runs, so one such run cannot fail every step of the engine."""
        try:
            self.attempt(work)
        except LookupError as exc:
            recover(exc)

    def attempt(self, work: Callable[[], T]) -> T:
        """Do `work` in a savepoint: if it raises, its writes are undone (and what it
        added to this settler dropped) before the exception goes on."""
        conn = self.conn
        kept_events, kept_attempts = len(self.events), len(self.attempts)
        kept_running, kept_dags = len(self.cancelled_running), dict(self.touched_dags)
        kept_finished, kept_results = dict(self.finished_runs), dict(self.results)
        conn.execute("SAVEPOINT attempt")
        try:
            result = work()
        except BaseException:
            conn.execute("ROLLBACK TO attempt")
            conn.execute("RELEASE attempt")
            del self.events[kept_events:]
            del self.attempts[kept_attempts:]
            del self.cancelled_running[kept_running:]
            self.touched_dags = kept_dags
            self.finished_runs = kept_finished
            self.results = kept_results
            self._limits = None  # its caches may hold what was undone
            raise
        conn.execute("RELEASE attempt")
        return result

    def fail_orphan(
        self,
        task_id: str,
        run_id: str,
        workflow_name: str,
        retry_count: int,
        message: str,
        *,
        was: str,
        worker_id: str | None = None,
    ) -> None:
        """Fail a task run (still in status `was`) that its workflow's definition cannot
        settle any more (it was removed or renamed while runs were in flight), and end
        its run: its other waiting tasks are cancelled, not left for nobody."""
        conn, now = self.conn, self.now
        error = json.dumps({"exc_type": "HatchetError", "message": message, "trace": ""})
        cur = conn.execute(
            "UPDATE task_runs SET status = 'FAILED', error = ?, finished_at = ?, timeout_at = NULL "
            "WHERE id = ? AND status = ? AND (? IS NULL OR worker_id = ?)",
            (error, now, task_id, was, worker_id, worker_id),
        )
        if not cur.rowcount:
            return
        waiting = """SELECT id FROM task_runs WHERE workflow_run_id = ?
                     AND status IN ('PENDING', 'QUEUED')"""
        conn.execute(
            f"UPDATE durable_conditions SET status = 'CLOSED' "
            f"WHERE status = 'OPEN' AND (task_run_id = ? OR task_run_id IN ({waiting}))",
            (task_id, run_id),
        )
        conn.execute(
            f"UPDATE task_runs SET status = 'CANCELLED', finished_at = ? WHERE id IN ({waiting})",
            (now, run_id),
        )
        self.record_attempt(task_id, retry_count, "FAILED", worker_id, error, None)
        self.touched_dags[run_id] = workflow_name

    def _finish(self, outcome: Outcome) -> None:
        conn, now = self.conn, self.now
        attempt_status = outcome.attempt_status or outcome.status
        if outcome.status == "CANCELLED":
            # The cancel already wrote the task's status; only the attempt is recorded.
            self.record_attempt(
                outcome.task_id,
                outcome.retry_count,
                attempt_status,
                outcome.worker_id,
                None,
                outcome.started_at,
                outcome.queued_at,
            )
            return
        if outcome.retry_at is not None:
            shape = self.shapes.for_run(conn, outcome.run_id, outcome.workflow_name).task(
                outcome.task_name
            )
            cur = conn.execute(
                """UPDATE task_runs SET status = 'QUEUED', retry_count = retry_count + 1,
                       available_at = ?, queued_at = ?, schedule_deadline = ?, worker_id = NULL,
                       timeout_at = NULL, error = ?
                   WHERE id = ? AND status = 'RUNNING' AND worker_id = ? AND retry_count = ?""",
                (
                    outcome.retry_at,
                    now,
                    outcome.retry_at + shape.schedule_timeout,
                    outcome.error_json,
                    outcome.task_id,
                    outcome.worker_id,
                    outcome.retry_count,
                ),
            )
            if cur.rowcount:
                self.record_attempt(
                    outcome.task_id,
                    outcome.retry_count,
                    attempt_status,
                    outcome.worker_id,
                    outcome.error_json,
                    outcome.started_at,
                    outcome.queued_at,
                )
            return
        cur = conn.execute(
            """UPDATE task_runs SET status = ?, output = ?, error = ?, finished_at = ?,
                   timeout_at = NULL
               WHERE id = ? AND status = 'RUNNING' AND worker_id = ? AND retry_count = ?""",
            (
                outcome.status,
                outcome.output_json,
                outcome.error_json,
                now,
                outcome.task_id,
                outcome.worker_id,
                outcome.retry_count,
            ),
        )
        self.record_attempt(
            outcome.task_id,
            outcome.retry_count,
            attempt_status if cur.rowcount else "CANCELLED",
            outcome.worker_id,
            outcome.error_json,
            outcome.started_at,
            outcome.queued_at,
        )
        if cur.rowcount:
            self.after_terminal(
                outcome.run_id,
                outcome.workflow_name,
                outcome.task_name,
                outcome.status,
                outcome.task_id,
            )
            if outcome.run_id in self.finished_runs and outcome.run_id not in self.touched_dags:
                # The run was its one task: its result is what was just written.
                row = TaskRow(
                    outcome.task_id,
                    outcome.task_name,
                    outcome.status,
                    outcome.output_json,
                    outcome.error_json,
                    outcome.retry_count,
                )
                self.results[outcome.run_id] = RunResult(
                    outcome.run_id, outcome.workflow_name, outcome.status, False, [row]
                )

    def after_terminal(
        self,
        run_id: str,
        workflow_name: str,
        task_name: str,
        status: str,
        task_id: str,
        skipped: bool = False,
    ) -> None:
        """Consequences of one task reaching `status` (already written)."""
        shape = self.shapes.for_run(self.conn, run_id, workflow_name)
        task = shape.task(task_name)
        if task.is_durable or task.conditions:
            # Its open waits end with it: no timer fires and no event matches for it later.
            self.conn.execute(
                "UPDATE durable_conditions SET status = 'CLOSED' "
                "WHERE task_run_id = ? AND status = 'OPEN'",
                (task_id,),
            )
        if task.concurrency:
            self.limits.release("TASK", [task_id])
        if not shape.is_dag:
            self._finalize(run_id, status)
            return
        self.touched_dags[run_id] = workflow_name
        if status == "COMPLETED":
            self._release_children(run_id, shape, task.children, skipped)
            return
        if task.descendants:
            names = marks(len(task.descendants))
            if any(shape.tasks[d].conditions for d in task.descendants if d in shape.tasks):
                self.conn.execute(
                    f"""UPDATE durable_conditions SET status = 'CLOSED'
                        WHERE status = 'OPEN' AND node_id = 0 AND task_run_id IN (
                            SELECT id FROM task_runs WHERE workflow_run_id = ?
                              AND status = 'PENDING' AND task_name IN ({names}))""",
                    (run_id, *task.descendants),
                )
            self.conn.execute(
                f"""UPDATE task_runs SET status = 'CANCELLED', finished_at = ?
                    WHERE workflow_run_id = ? AND status IN ('PENDING', 'QUEUED')
                      AND task_name IN ({names})""",
                (self.now, run_id, *task.descendants),
            )
            if any(shape.tasks[d].concurrency for d in task.descendants if d in shape.tasks):
                self.limits.release_ended_tasks(run_id)
        on_failure = shape.on_failure
        if status == "FAILED" and on_failure is not None and task_name != on_failure.name:
            on_failure_id = new_id()
            cur = self.conn.execute(
                """INSERT OR IGNORE INTO task_runs (id, workflow_run_id, workflow_name, task_name,
                       status, priority, available_at, schedule_deadline, created_at, queued_at,
                       routing)
                   SELECT ?, ?, ?, ?, 'QUEUED', priority, ?, ?, ?, ?, routing
                   FROM workflow_runs WHERE id = ?""",
                (
                    on_failure_id,
                    run_id,
                    workflow_name,
                    on_failure.name,
                    self.now,
                    self.now + on_failure.schedule_timeout,
                    self.now,
                    self.now,
                    run_id,
                ),
            )
            if cur.rowcount:
                self.admit(run_id, shape, on_failure.name, on_failure_id)

    def _release_children(
        self, run_id: str, shape: WorkflowShape, children: tuple[str, ...], skipped: bool
    ) -> None:
        """One parent of `children` completed (or was skipped): each child whose parents
        are now all done is queued, skipped, or gated by its conditions."""
        if not children:
            return
        # The common case in one statement: a parent that ran releases children that
        # have no conditions (a completed parent means not all parents were skipped).
        plain = (
            ()
            if skipped
            else tuple(
                c for c in children if not shape.tasks[c].conditions and not shape.tasks[c].admits
            )
        )
        if plain:
            self._queue_released(run_id, shape, plain)
        for child in children:
            if child in plain:
                continue
            self.conn.execute(
                """UPDATE task_runs SET parents_left = parents_left - 1,
                       parents_skipped = parents_skipped + ?
                   WHERE workflow_run_id = ? AND task_name = ? AND status = 'PENDING'""",
                (int(skipped), run_id, child),
            )
            row = self.conn.execute(
                """SELECT id, parents_left, parents_skipped FROM task_runs
                   WHERE workflow_run_id = ? AND task_name = ? AND status = 'PENDING'""",
                (run_id, child),
            ).fetchone()
            if row is not None and row[1] == 0:
                self.parents_done(run_id, shape, child, row[0], row[2])

    def parents_done(
        self, run_id: str, shape: WorkflowShape, name: str, task_id: str, skipped_parents: int
    ) -> None:
        """A PENDING task's parents are all done (or it is a root with conditions): skip it
        if every parent was skipped, else gate it on its conditions, else queue it."""
        task = shape.tasks[name]
        if task.parents and skipped_parents == len(task.parents):
            self.skip(run_id, shape.name, name, task_id, "every parent was skipped")
        elif task.conditions:
            from hatchlite.store.gates import open_gate_txn

            open_gate_txn(self, run_id, shape, name, task_id)
        else:
            self.queue(run_id, shape, name, task_id)

    def queue(
        self,
        run_id: str,
        shape: WorkflowShape,
        name: str,
        task_id: str,
        trigger_data: str | None = None,
    ) -> None:
        now = self.now
        cur = self.conn.execute(
            """UPDATE task_runs SET status = 'QUEUED', queued_at = ?, available_at = ?,
                   schedule_deadline = ?, trigger_data = ?, held = 0
               WHERE id = ? AND status = 'PENDING'""",
            (now, now, now + shape.task(name).schedule_timeout, trigger_data, task_id),
        )
        if cur.rowcount:
            self.admit(run_id, shape, name, task_id)

    def admit(self, run_id: str, shape: WorkflowShape, name: str, task_id: str) -> None:
        """A task run was just queued (not at its run's creation): render its rate limits
        (one that cannot be rendered fails it) and hold it for its concurrency limits."""
        if shape.task(name).rate_limits:
            try:
                self.render_rate_limits(run_id, shape, name, task_id)
            except RateLimitError as exc:
                self.fail_orphan(task_id, run_id, shape.name, 0, str(exc), was="QUEUED")
                return
        if shape.limited:
            self.limits.ready(run_id, shape, name, task_id)

    def render_rate_limits(
        self,
        run_id: str,
        shape: WorkflowShape,
        name: str,
        task_id: str,
        run_data: tuple[str, str] | None = None,
    ) -> None:
        """Store the rate limits task run `task_id` takes when claimed (its keys and
        units for this run; `run_data`: the run's input and metadata JSON, else read).
        Raises RateLimitError: an unknown static key, units over the limit, a CEL
        expression that fails."""
        task = shape.task(name)
        conn = self.conn
        if run_data is None:
            row = conn.execute(
                "SELECT input, additional_metadata FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            run_data = (str(row[0]), str(row[1]))
        parents: dict[str, Any] = {}
        if task.parents:
            for parent, output in conn.execute(
                f"""SELECT task_name, output FROM task_runs WHERE workflow_run_id = ?
                    AND task_name IN ({marks(len(task.parents))})""",
                (run_id, *task.parents),
            ):
                parents[parent] = json.loads(output) if output else {}
        what = f"workflow {shape.name!r}, task {name!r}"
        uses = rate_limit_uses(
            task.rate_limits, run_variables(run_data[0], run_data[1], run_id, parents), what
        )
        for use in uses:
            if use.limit is None:
                limit = _rate_limits.limit_of(conn, use.key)
                if limit is None:
                    raise RateLimitError(
                        f"{what}: static rate limit {use.key!r} does not exist; create it with "
                        f"hatchet.rate_limits.put({use.key!r}, limit, duration)"
                    )
                if use.units > limit:
                    raise RateLimitError(
                        f"{what}: rate limit {use.key!r} takes {use.units} units but its "
                        f"limit is {limit}: the task could never run"
                    )
            else:
                _rate_limits.upsert_dynamic_txn(conn, use.key, use.limit, use.window, self.now)
        conn.execute(
            "UPDATE task_runs SET rate_limits = ? WHERE id = ?",
            (json.dumps([[use.key, use.units] for use in uses]), task_id),
        )

    def skip(self, run_id: str, workflow_name: str, name: str, task_id: str, why: str) -> None:
        """Complete a PENDING task as skipped (output `{"skipped": true}`): its children
        still run, and see it as skipped."""
        cur = self.conn.execute(
            """UPDATE task_runs SET status = 'COMPLETED', output = ?, finished_at = ?
               WHERE id = ? AND status = 'PENDING'""",
            (SKIPPED_OUTPUT, self.now, task_id),
        )
        if cur.rowcount:
            self.events.append((task_id, run_id, 0, "SKIPPED", f"skipped: {why}", None, self.now))
            self.after_terminal(run_id, workflow_name, name, "COMPLETED", task_id, skipped=True)

    def cancel_run(self, run_id: str, reason: str) -> None:
        """Cancel every unfinished task run of a run (running ones too: their workers stop
        them), each with a CANCELLED task event giving `reason`."""
        rows = self.conn.execute(
            f"""SELECT id FROM task_runs WHERE workflow_run_id = ?
                AND status IN ({marks(len(ACTIVE))})""",
            (run_id, *ACTIVE),
        ).fetchall()
        for (task_id,) in rows:
            self.cancel_task_run(task_id, reason)

    def cancel_task_run(self, task_id: str, reason: str) -> None:
        """Cancel one unfinished task run (and its descendants), saying why."""
        row = self.conn.execute(
            f"""SELECT workflow_run_id, workflow_name, task_name, status, retry_count
                FROM task_runs WHERE id = ? AND status IN ({marks(len(ACTIVE))})""",
            (task_id, *ACTIVE),
        ).fetchone()
        if row is None:
            return
        run_id, workflow_name, name, status, retry_count = row
        self.conn.execute(
            "UPDATE task_runs SET status = 'CANCELLED', finished_at = ?, timeout_at = NULL "
            "WHERE id = ?",
            (self.now, task_id),
        )
        if status == "WAITING":
            self.record_evicted_end(task_id, "CANCELLED")
        elif status == "RUNNING":
            self.cancelled_running.append(task_id)  # its worker records the attempt
        self.events.append((task_id, run_id, retry_count, "CANCELLED", reason, None, self.now))
        self.after_terminal(run_id, workflow_name, name, "CANCELLED", task_id)

    def cancel(self, run_id: str, workflow_name: str, name: str, task_id: str) -> None:
        """Cancel a PENDING task and its descendants (a `cancel_if` was met)."""
        cur = self.conn.execute(
            "UPDATE task_runs SET status = 'CANCELLED', finished_at = ? "
            "WHERE id = ? AND status = 'PENDING'",
            (self.now, task_id),
        )
        if cur.rowcount:
            self.after_terminal(run_id, workflow_name, name, "CANCELLED", task_id)

    def _queue_released(self, run_id: str, shape: WorkflowShape, children: tuple[str, ...]) -> None:
        now = self.now
        self.conn.executemany(
            """UPDATE task_runs SET parents_left = parents_left - 1,
                   status = CASE WHEN parents_left = 1 THEN 'QUEUED' ELSE status END,
                   queued_at = CASE WHEN parents_left = 1 THEN ? ELSE queued_at END,
                   available_at = CASE WHEN parents_left = 1 THEN ? ELSE available_at END,
                   schedule_deadline = CASE WHEN parents_left = 1 THEN ?
                                            ELSE schedule_deadline END
               WHERE workflow_run_id = ? AND task_name = ? AND status = 'PENDING'""",
            [
                (now, now, now + shape.tasks[child].schedule_timeout, run_id, child)
                for child in children
            ],
        )

    def _finalize(self, run_id: str, status: str) -> None:
        cur = self.conn.execute(
            "UPDATE workflow_runs SET status = ?, finished_at = ? "
            "WHERE id = ? AND status IN ('QUEUED', 'RUNNING')",
            (status, self.now, run_id),
        )
        if cur.rowcount:
            self.finished_runs[run_id] = status
            if self._child_waits is None:  # written only by evictions, in jobs of their own
                self._child_waits = bool(
                    self.conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM durable_child_waits)"
                    ).fetchone()[0]
                )
            if self._child_waits:
                run_ended_txn(self.conn, run_id, self.now)  # an evicted parent may wait
            # Whatever its definition says now (a limit may have been added or removed
            # since it was triggered), the rows it holds are released.
            self.limits.release_run(run_id)

    def close(self) -> None:
        """Write the attempt rows and events, and finalize every DAG run whose tasks all
        ended. Ending a run can admit a waiter whose limit cancels tasks of other runs:
        those are settled too, until nothing is left."""
        while self.events or self.attempts or self.touched_dags:
            self._write_rows()
            touched, self.touched_dags = self.touched_dags, {}
            for run_id in touched:
                self._finalize_if_ended(run_id)

    def _write_rows(self) -> None:
        if self.events:
            insert_task_events(self.conn, self.events)
            self.events = []
        if self.attempts:
            self.conn.executemany(
                """INSERT INTO task_attempts (task_run_id, retry_count, status, worker_id, error,
                       queued_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                self.attempts,
            )
            self.attempts = []

    def _finalize_if_ended(self, run_id: str) -> None:
        statuses = {
            row[0]
            for row in self.conn.execute(
                "SELECT status FROM task_runs WHERE workflow_run_id = ?", (run_id,)
            )
        }
        if statuses & set(ACTIVE):
            return
        ended = (
            "FAILED"
            if "FAILED" in statuses
            else "CANCELLED"
            if "CANCELLED" in statuses
            else "COMPLETED"
        )
        self._finalize(run_id, ended)
