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


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


# Where a pid means the same process: this host and pid namespace (containers that
# share a hostname still differ here), and this boot (pids restart after a reboot).
HOSTNAME = f"{socket.gethostname()}|{_pid_namespace()}"
BOOT_ID = _read("/proc/sys/kernel/random/boot_id")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process, from /proc (Linux); None elsewhere."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_start_time(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid."""
    stat = _proc_stat(pid)
    if stat is None or BOOT_ID is None:
        return None
    return f"{BOOT_ID}:{stat[1]}"


def _alive(pid: int, token: str | None, expires_at: float, wall: float) -> bool:
    """Whether the worker process that registered with (pid, token) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user: identify it below
    stat = _proc_stat(pid)
    if stat is None or token is None:
        return expires_at >= wall  # cannot tell who runs that pid: the lease decides
    state, _ = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped
    return token == process_start_time(pid)


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
    for task_id, retry_count, started_at, _wf_name, _task_name in rows:
        # No schedule deadline: the task already started once (a durable task may have
        # been asleep for days) and must not be cancelled for waiting on a restart.
        cur = conn.execute(
            """UPDATE task_runs SET status = 'QUEUED', worker_id = NULL, timeout_at = NULL,
                   available_at = ?, queued_at = ?, schedule_deadline = NULL
               WHERE id = ? AND status IN ('RUNNING', 'WAITING') AND worker_id = ?""",
            (now, now, task_id, worker_id),
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
        if (not _alive(pid, pid_start, expires_at, wall)) if same_host else expires_at < wall:
            requeued += release_txn(settler, worker_id, "REASSIGNED")
    settler.close()
    return requeued
