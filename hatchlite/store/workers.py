"""Worker rows (leases) and the recovery of task runs left by workers that are gone.

A worker is gone when its process is gone (same host: the pid no longer runs, or runs
a different program started later) or, for workers on other hosts, when its lease
expired. A live worker on this host is never declared gone by a late heartbeat, so
its tasks are never taken from it while it still runs them.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from dataclasses import dataclass

from hatchlite.store.shapes import ShapeCache
from hatchlite.store.tasks import Settler

HOSTNAME = socket.gethostname()


def process_start_time(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if started is not None:
        return process_start_time(pid) == started
    return True


@dataclass(slots=True)
class WorkerRow:
    id: str
    name: str
    slots: int
    durable_slots: int
    actions: list[str]
    labels: dict[str, str | int]


def register_txn(conn: sqlite3.Connection, worker: WorkerRow, now: float, lease: float) -> None:
    pid = os.getpid()
    conn.execute(
        """INSERT INTO workers (id, name, pid, hostname, status, slots, durable_slots, actions,
               labels, started_at, heartbeat_at, expires_at, pid_start)
           VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            worker.id,
            worker.name,
            pid,
            HOSTNAME,
            worker.slots,
            worker.durable_slots,
            json.dumps(worker.actions),
            json.dumps(worker.labels),
            now,
            now,
            now + lease,
            process_start_time(pid),
        ),
    )


def heartbeat_txn(
    conn: sqlite3.Connection, worker_ids: list[str], now: float, lease: float
) -> None:
    conn.executemany(
        "UPDATE workers SET heartbeat_at = ?, expires_at = ? WHERE id = ? AND status = 'ACTIVE'",
        [(now, now + lease, worker_id) for worker_id in worker_ids],
    )


def release_txn(settler: Settler, worker_id: str, reason: str) -> int:
    """Mark a worker stopped and put the task runs it still held back in the queue."""
    conn = settler.conn
    conn.execute("UPDATE workers SET status = 'INACTIVE' WHERE id = ?", (worker_id,))
    return requeue_worker_tasks(settler, worker_id, reason)


def requeue_worker_tasks(settler: Settler, worker_id: str, reason: str) -> int:
    conn, now = settler.conn, settler.now
    rows = conn.execute(
        """SELECT t.id, t.retry_count, t.started_at, t.workflow_name, t.task_name
           FROM task_runs t WHERE t.worker_id = ? AND t.status IN ('RUNNING', 'WAITING')""",
        (worker_id,),
    ).fetchall()
    for task_id, retry_count, started_at, wf_name, task_name in rows:
        shape = settler.shapes.get(conn, wf_name).task(task_name)
        cur = conn.execute(
            """UPDATE task_runs SET status = 'QUEUED', worker_id = NULL, timeout_at = NULL,
                   available_at = ?, queued_at = ?, schedule_deadline = ?
               WHERE id = ? AND status IN ('RUNNING', 'WAITING') AND worker_id = ?""",
            (now, now, now + shape.schedule_timeout, task_id, worker_id),
        )
        if cur.rowcount:
            settler.record_attempt(task_id, retry_count, reason, worker_id, None, started_at)
    return len(rows)


def recover_txn(conn: sqlite3.Connection, shapes: ShapeCache, now: float, wall: float) -> int:
    """Release every worker that is gone; returns how many task runs went back to the queue."""
    settler = Settler(conn, shapes, now)
    requeued = 0
    for worker_id, pid, hostname, expires_at, pid_start in conn.execute(
        "SELECT id, pid, hostname, expires_at, pid_start FROM workers WHERE status = 'ACTIVE'"
    ).fetchall():
        same_host = hostname == HOSTNAME
        if (not _alive(pid, pid_start)) if same_host else expires_at < wall:
            requeued += release_txn(settler, worker_id, "REASSIGNED")
    settler.close()
    return requeued
