"""Batch tasks: each trigger's task run is a member, buffered in the store until its
batch flushes, then run with the other members of its batch in one call.

A queued member of a batch task is taken in by a claim of a worker that serves it: its
group key is evaluated (CEL over the run's input and metadata) and stored, and it is
`held` (BUFFERED), out of the claim's index, with a WAITING_FOR_BATCH event. A group
(task and key) flushes when it has `batch_max_size` members, or when its oldest member
has waited `batch_max_interval`, and fewer than `batch_group_max_runs` of its batches
run: up to `batch_max_size` members become RUNNING together on the claiming worker,
sharing a `batch_id` (a BATCH_FLUSHED event each), for one slot. Buffered members are
rows like any task run: a crash loses none, a cancel takes one out, a schedule timeout
still applies; the members of a batch whose worker died are queued again one by one
and batched anew.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from hatchlite.cel import evaluate_value
from hatchlite.ids import new_id
from hatchlite.store.records import (
    BatchSpec,
    ClaimedTask,
    ClaimRequest,
    TaskEvent,
    WorkflowShape,
    marks,
)
from hatchlite.store.settle import insert_task_events
from hatchlite.store.shapes import ShapeCache, UnknownWorkflowError

BUFFERED = 3  # task_runs.held of a batch member waiting for its batch

# Fails one queued member (task run id, run id, workflow, retry count, message).
FailMember = Callable[[str, str, str, int, str], None]


def batch_tasks(
    conn: sqlite3.Connection, shapes: ShapeCache, req: ClaimRequest
) -> list[tuple[str, str, BatchSpec]]:
    """(workflow, task, spec) of the batch tasks `req`'s worker serves."""
    out = []
    for name in req.workflows:
        try:
            shape = shapes.get(conn, name)
        except (UnknownWorkflowError, LookupError):
            continue
        for task in shape.tasks.values():
            if task.batch is not None and (
                req.runnable is None or (name, task.name) in req.runnable
            ):
                out.append((name, task.name, task.batch))
    return out


def intake_txn(
    conn: sqlite3.Connection,
    workflow: str,
    task: str,
    spec: BatchSpec,
    now: float,
    fail: FailMember,
) -> None:
    """Buffer the queued members of one batch task that are not yet: each with its
    group key, or failed alone if the key does not evaluate."""
    rows = conn.execute(
        """SELECT t.seq, t.id, t.workflow_run_id, t.retry_count, r.input, r.additional_metadata
           FROM task_runs t JOIN workflow_runs r ON r.id = t.workflow_run_id
           WHERE t.status = 'QUEUED' AND t.held = 0 AND t.workflow_name = ?
             AND t.task_name = ? AND t.available_at <= ?""",
        (workflow, task, now),
    ).fetchall()
    events: list[TaskEvent] = []
    for seq, task_id, run_id, retry_count, input_json, metadata_json in rows:
        key: str | None = None
        if spec.group_key is not None:
            key, error = _group_key(spec.group_key, input_json, metadata_json)
            if error is not None:
                fail(
                    task_id,
                    run_id,
                    workflow,
                    retry_count,
                    f"batch_group_key {spec.group_key!r} of task {task!r} failed on this "
                    f"run's input: {error}",
                )
                continue
        conn.execute(
            "UPDATE task_runs SET held = ?, batch_key = ? WHERE seq = ? AND status = 'QUEUED'",
            (BUFFERED, key, seq),
        )
        where = f" (group key {key!r})" if key is not None else ""
        events.append(
            (
                task_id,
                run_id,
                retry_count,
                "WAITING_FOR_BATCH",
                f"waiting for a batch{where}",
                None,
                now,
            )
        )
    insert_task_events(conn, events)


def _group_key(
    expression: str, input_json: str, metadata_json: str
) -> tuple[str | None, str | None]:
    variables = {"input": json.loads(input_json), "additional_metadata": json.loads(metadata_json)}
    value, error = evaluate_value(expression, variables)
    if error is not None:
        return None, error
    if isinstance(value, str):
        return value, None
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value), None
    return None, f"it gave {json.dumps(value)[:80]}, not a string or a number"


def flush_txn(
    conn: sqlite3.Connection,
    workflow: str,
    task: str,
    spec: BatchSpec,
    req: ClaimRequest,
    now: float,
    slots: int,
    execution_timeout: float,
    busy: bool,
) -> list[list[ClaimedTask]]:
    """Flush the groups of one batch task that are due, at most `slots` batches: their
    members, RUNNING on `req`'s worker. `execution_timeout`: of the whole batch; `busy`:
    the worker runs or takes other work (a suspect member waits for it to be idle)."""
    out: list[list[ClaimedTask]] = []
    groups = conn.execute(
        f"""SELECT batch_key, count(*), min(available_at), max(lost_count) FROM task_runs
            WHERE status = 'QUEUED' AND held = {BUFFERED} AND workflow_name = ?
              AND task_name = ?
            GROUP BY batch_key ORDER BY min(available_at)""",
        (workflow, task),
    ).fetchall()
    for key, count, oldest, lost in groups:
        # A suspect (its worker died running it) goes alone at once: see _flush_one.
        while len(out) < slots and (lost or _due(spec, count, oldest, now)):
            if spec.group_max_runs is not None and (
                _running_batches(conn, workflow, task, key) >= spec.group_max_runs
            ):
                break
            members = _flush_one(
                conn, workflow, task, key, spec, req, now, execution_timeout, busy or bool(out)
            )
            if not members:
                break
            out.append(members)
            if members[0].suspect:
                return out  # it runs alone
            count -= len(members)
            oldest = now  # what is left waits for the next size or interval
    return out


def _due(spec: BatchSpec, count: int, oldest: float, now: float) -> bool:
    if count <= 0:
        return False
    if count >= spec.max_size:
        return True
    return spec.interval is not None and oldest + spec.interval <= now


def _running_batches(conn: sqlite3.Connection, workflow: str, task: str, key: str | None) -> int:
    row = conn.execute(
        """SELECT count(DISTINCT batch_id) FROM task_runs
           WHERE workflow_name = ? AND task_name = ? AND batch_key IS ? AND status = 'RUNNING'
             AND batch_id IS NOT NULL""",
        (workflow, task, key),
    ).fetchone()
    return int(row[0])


def _flush_one(
    conn: sqlite3.Connection,
    workflow: str,
    task: str,
    key: str | None,
    spec: BatchSpec,
    req: ClaimRequest,
    now: float,
    execution_timeout: float,
    busy: bool,
) -> list[ClaimedTask]:
    rows = conn.execute(
        f"""SELECT seq, id, workflow_run_id, retry_count, priority, queued_at, lost_count
            FROM task_runs
            WHERE status = 'QUEUED' AND held = {BUFFERED} AND workflow_name = ?
              AND task_name = ? AND batch_key IS ?
            ORDER BY available_at, seq LIMIT ?""",
        (workflow, task, key, spec.max_size),
    ).fetchall()
    suspects = [r for r in rows if r[6]]
    if suspects:
        # A member whose worker died while its batch ran goes alone, on an idle worker
        # (as any suspect task run: store/workers.py), so that a batch that kills its
        # worker every time fails in the end instead of being batched anew forever.
        if busy:
            return []
        rows = suspects[:1]
    if not rows:
        return []
    batch_id = new_id()
    timeout_at = now + execution_timeout if execution_timeout else None
    conn.execute(
        f"""UPDATE task_runs SET status = 'RUNNING', held = 0, worker_id = ?, started_at = ?,
                timeout_at = ?, batch_id = ?
            WHERE seq IN ({marks(len(rows))})""",
        (req.worker_id, now, timeout_at, batch_id, *(r[0] for r in rows)),
    )
    size = len(rows)
    insert_task_events(
        conn,
        [
            (
                task_id,
                run_id,
                retry_count,
                "BATCH_FLUSHED",
                f"flushed in a batch of {size}",
                req.worker_id,
                now,
            )
            for _, task_id, run_id, retry_count, _, _, _ in rows
        ],
    )
    return [
        ClaimedTask(
            task_id=task_id,
            run_id=run_id,
            workflow_name=workflow,
            task_name=task,
            retry_count=retry_count,
            priority=priority,
            input_json="",
            metadata_json="",
            timeout_at=timeout_at,
            worker_id=req.worker_id,
            started_at=now,
            queued_at=queued_at,
            batch_id=batch_id,
            suspect=bool(lost),
        )
        for _, task_id, run_id, retry_count, priority, queued_at, lost in rows
    ]


def next_flush(conn: sqlite3.Connection, shapes: ShapeCache, now: float) -> float | None:
    """When the next batch is due by its interval, after `now` (None: none waits for
    one; a group overdue but not flushed waits for a slot or a running batch to end)."""
    earliest: float | None = None
    for workflow, task, oldest in conn.execute(
        f"""SELECT workflow_name, task_name, min(available_at) FROM task_runs
            WHERE status = 'QUEUED' AND held = {BUFFERED}
            GROUP BY workflow_name, task_name, batch_key"""
    ).fetchall():
        spec = _spec(conn, shapes, workflow, task)
        if spec is not None and spec.interval is not None:
            due = float(oldest) + spec.interval
            if due > now:
                earliest = due if earliest is None else min(earliest, due)
    return earliest


def _spec(
    conn: sqlite3.Connection, shapes: ShapeCache, workflow: str, task: str
) -> BatchSpec | None:
    try:
        shape: WorkflowShape = shapes.get(conn, workflow)
        return shape.task(task).batch
    except (UnknownWorkflowError, LookupError):
        return None
