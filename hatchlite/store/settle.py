"""Settling task runs: terminal transitions and their consequences (children released
or skipped, descendants cancelled, on-failure queued), task conditions (`wait_for`,
`skip_if`, `cancel_if`), and runs finalized once all their tasks ended. Each helper runs
inside the caller's transaction on the database thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid

from hatchlite.store.records import ACTIVE, Outcome, WorkflowShape
from hatchlite.store.shapes import ShapeCache

logger = logging.getLogger("hatchlite")


def marks(n: int) -> str:
    return ",".join("?" * n)


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

    def finish(self, outcome: Outcome) -> None:
        """Record one attempt's end; one that cannot be recorded (a definition that
        changed under it) fails its task instead of blocking every later step."""
        self.conn.execute("SAVEPOINT outcome")
        try:
            self._finish(outcome)
        except (KeyError, LookupError) as exc:
            self.conn.execute("ROLLBACK TO outcome")
            logger.error("could not record the end of task run %s: %s", outcome.task_id, exc)
            self.conn.execute(
                "UPDATE task_runs SET status = 'FAILED', error = ?, finished_at = ? "
                "WHERE id = ? AND status = 'RUNNING' AND worker_id = ?",
                (
                    json.dumps({"exc_type": "HatchetError", "message": str(exc), "trace": ""}),
                    self.now,
                    outcome.task_id,
                    outcome.worker_id,
                ),
            )
            self.touched_dags[outcome.run_id] = outcome.workflow_name
        finally:
            self.conn.execute("RELEASE outcome")

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
            shape = self.shapes.get(conn, outcome.workflow_name).task(outcome.task_name)
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

    def after_terminal(
        self, run_id: str, workflow_name: str, task_name: str, status: str, task_id: str
    ) -> None:
        """Consequences of one task reaching `status` (already written)."""
        shape = self.shapes.get(self.conn, workflow_name)
        if shape.task(task_name).is_durable:
            # Its open waits end with it: no timer fires and no event matches for it later.
            self.conn.execute(
                "UPDATE durable_conditions SET status = 'CLOSED' "
                "WHERE task_run_id = ? AND status = 'OPEN'",
                (task_id,),
            )
        if not shape.is_dag:
            self._finalize(run_id, status)
            return
        self.touched_dags[run_id] = workflow_name
        task = shape.task(task_name)
        if status == "COMPLETED":
            self._release_children(run_id, shape, task.children)
            return
        if task.descendants:
            self.conn.execute(
                f"""UPDATE task_runs SET status = 'CANCELLED', finished_at = ?
                    WHERE workflow_run_id = ? AND status IN ('PENDING', 'QUEUED')
                      AND task_name IN ({marks(len(task.descendants))})""",
                (self.now, run_id, *task.descendants),
            )
        on_failure = shape.on_failure
        if status == "FAILED" and on_failure is not None and task_name != on_failure.name:
            self.conn.execute(
                """INSERT OR IGNORE INTO task_runs (id, workflow_run_id, workflow_name, task_name,
                       status, priority, available_at, schedule_deadline, created_at, queued_at)
                   VALUES (?, ?, ?, ?, 'QUEUED',
                           (SELECT priority FROM workflow_runs WHERE id = ?), ?, ?, ?, ?)""",
                (
                    str(uuid.uuid4()),
                    run_id,
                    workflow_name,
                    on_failure.name,
                    run_id,
                    self.now,
                    self.now + on_failure.schedule_timeout,
                    self.now,
                    self.now,
                ),
            )

    def _release_children(
        self, run_id: str, shape: WorkflowShape, children: tuple[str, ...]
    ) -> None:
        if not children:
            return
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

    def close(self) -> None:
        """Write the attempt rows and finalize every DAG run whose tasks all ended."""
        if self.attempts:
            self.conn.executemany(
                """INSERT INTO task_attempts (task_run_id, retry_count, status, worker_id, error,
                       queued_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                self.attempts,
            )
            self.attempts = []
        for run_id in self.touched_dags:
            statuses = {
                row[0]
                for row in self.conn.execute(
                    "SELECT status FROM task_runs WHERE workflow_run_id = ?", (run_id,)
                )
            }
            if statuses & set(ACTIVE):
                continue
            if "FAILED" in statuses:
                self._finalize(run_id, "FAILED")
            elif "CANCELLED" in statuses:
                self._finalize(run_id, "CANCELLED")
            else:
                self._finalize(run_id, "COMPLETED")
        self.touched_dags = {}
