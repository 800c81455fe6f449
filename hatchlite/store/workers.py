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
from typing import Any, NamedTuple

from hatchlite.store.settle import Settler
from hatchlite.store.shapes import ShapeCache


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
    prune_txn(conn)


# Stopped (INACTIVE) worker rows kept, newest first: each worker start adds a row, so a
# service restarted for months would otherwise grow the table forever. Task runs and
# attempts keep the id of a pruned worker; ACTIVE rows are never deleted.
KEEP_INACTIVE_WORKERS = 100


def prune_txn(conn: sqlite3.Connection) -> None:
    """Delete the INACTIVE worker rows beyond the newest `KEEP_INACTIVE_WORKERS`."""
    conn.execute(
        """DELETE FROM workers WHERE status = 'INACTIVE' AND id NOT IN (
               SELECT id FROM workers WHERE status = 'INACTIVE'
               ORDER BY heartbeat_at DESC, started_at DESC, rowid DESC LIMIT ?)""",
        (KEEP_INACTIVE_WORKERS,),
    )


def heartbeat_txn(
    conn: sqlite3.Connection,
    worker_ids: list[str],
    now: float,
    lease: float,
    actions: dict[str, list[str]] | None = None,
    free: dict[str, tuple[int, int]] | None = None,
) -> None:
    """Renew leases; `free`: the (slots, durable slots) each worker has free now."""
    free = free or {}
    conn.executemany(
        "UPDATE workers SET heartbeat_at = ?, expires_at = ?, free_slots = ?, "
        "free_durable_slots = ? WHERE id = ? AND status IN ('ACTIVE', 'PAUSED')",
        [
            (now, now + lease, *free.get(worker_id, (None, None)), worker_id)
            for worker_id in worker_ids
        ],
    )
    if actions:
        conn.executemany(
            "UPDATE workers SET actions = ? WHERE id = ?",
            [(json.dumps(ids), worker_id) for worker_id, ids in actions.items()],
        )


def release_txn(settler: Settler, worker_id: str, reason: str, *, died: bool = False) -> int:
    """Mark a worker stopped and put the task runs it still held back in the queue.
    `died`: the worker's process ended without releasing them (see `MAX_LOST`)."""
    conn = settler.conn
    conn.execute("UPDATE workers SET status = 'INACTIVE' WHERE id = ?", (worker_id,))
    prune_txn(conn)  # keeps the bound also after a process stops its last worker
    return requeue_worker_tasks(settler, worker_id, reason, died=died)


# A task run whose worker process died while running it (not while it slept in a
# durable wait) becomes a suspect (`lost_count`): it is claimed only by a worker that
# runs nothing else, so a death while it runs is surely its own doing (`lost_alone`).
# After MAX_LOST such deaths it fails instead of going back to the queue: code that
# kills its process (os._exit, a segfault, the OOM killer) would otherwise crash-loop a
# service restarted by systemd forever, and take the tasks beside it down each time.
MAX_LOST = 3


class _Held(NamedTuple):
    """A task run a released worker still held."""

    task_id: str
    run_id: str
    retry_count: int
    started_at: float | None
    queued_at: float | None
    workflow_name: str
    task_name: str
    lost: int
    lost_alone: int
    waiting: bool


def requeue_worker_tasks(
    settler: Settler, worker_id: str, reason: str, *, died: bool = False
) -> int:
    conn, now = settler.conn, settler.now
    rows = [
        _Held(*row)
        for row in conn.execute(
            """SELECT t.id, t.workflow_run_id, t.retry_count, t.started_at, t.queued_at,
                      t.workflow_name, t.task_name, t.lost_count, t.lost_alone,
                      EXISTS (SELECT 1 FROM durable_events e
                              WHERE e.task_run_id = t.id AND e.status = 'PENDING')
               FROM task_runs t
               WHERE t.worker_id = ? AND t.status IN ('RUNNING', 'WAITING')""",
            (worker_id,),
        )
    ]
    running = [held for held in rows if not held.waiting]
    for held in rows:
        lost, lost_alone = held.lost, held.lost_alone
        if died and not held.waiting:
            lost += 1
            lost_alone += len(running) == 1
        if lost_alone >= MAX_LOST:
            _fail_lost(settler, worker_id, held, lost_alone)
            continue
        # No schedule deadline: the task already started once (a durable task may have
        # been asleep for days) and must not be cancelled for waiting on a restart.
        cur = conn.execute(
            """UPDATE task_runs SET status = 'QUEUED', worker_id = NULL, timeout_at = NULL,
                   available_at = ?, queued_at = ?, schedule_deadline = NULL, lost_count = ?,
                   lost_alone = ?
               WHERE id = ? AND status IN ('RUNNING', 'WAITING') AND worker_id = ?""",
            (now, now, lost, lost_alone, held.task_id, worker_id),
        )
        if cur.rowcount:
            settler.record_attempt(
                held.task_id,
                held.retry_count,
                reason,
                worker_id,
                None,
                held.started_at,
                held.queued_at,
            )
    return len(rows)


def _fail_lost(settler: Settler, worker_id: str, held: _Held, lost: int) -> None:
    error = json.dumps(
        {
            "exc_type": "HatchetError",
            "message": f"the worker process running task {held.task_name!r} of workflow "
            f"{held.workflow_name!r} died {lost} times while running it alone (a crash, "
            f"os._exit, a kill or the OOM killer); hatchlite stops re-queueing a task run "
            f"after {MAX_LOST}",
            "trace": "",
        }
    )
    cur = settler.conn.execute(
        """UPDATE task_runs SET status = 'FAILED', error = ?, finished_at = ?, worker_id = NULL,
               timeout_at = NULL, lost_alone = ?
           WHERE id = ? AND status IN ('RUNNING', 'WAITING') AND worker_id = ?""",
        (error, settler.now, lost, held.task_id, worker_id),
    )
    if cur.rowcount:
        settler.record_attempt(
            held.task_id,
            held.retry_count,
            "FAILED",
            worker_id,
            error,
            held.started_at,
            held.queued_at,
        )
        settler.after_terminal(
            held.run_id, held.workflow_name, held.task_name, "FAILED", held.task_id
        )


def live_actions_txn(conn: sqlite3.Connection, wall: float) -> set[str]:
    """The action ids (`workflow:task`, lower-cased workflow) of workers that run now."""
    actions: set[str] = set()
    for pid, hostname, expires_at, pid_start, text in conn.execute(
        "SELECT pid, hostname, expires_at, pid_start, actions FROM workers "
        "WHERE status = 'ACTIVE' AND is_paused = 0"
    ):
        if _gone(pid, hostname, expires_at, pid_start, wall):
            continue
        actions.update(json.loads(text))
    return actions


def live_workers_txn(
    conn: sqlite3.Connection, wall: float
) -> list[tuple[str, dict[str, str | int], set[str], int, int]]:
    """(id, labels, action ids, free slots and free durable slots at the last
    heartbeat) of workers that run now and take tasks."""
    out = []
    for row in conn.execute(
        """SELECT id, pid, hostname, expires_at, pid_start, actions, labels, free_slots,
                  slots, free_durable_slots, durable_slots
           FROM workers WHERE status = 'ACTIVE' AND is_paused = 0"""
    ):
        worker_id, pid, hostname, expires_at, pid_start, actions, labels, *room = row
        if _gone(pid, hostname, expires_at, pid_start, wall):
            continue
        free, slots, free_durable, durable_slots = room
        out.append(
            (
                worker_id,
                json.loads(labels),
                set(json.loads(actions)),
                slots if free is None else free,
                durable_slots if free_durable is None else free_durable,
            )
        )
    return out


def _gone(pid: int, hostname: str, expires_at: float, pid_start: str | None, wall: float) -> bool:
    if hostname == HOSTNAME:
        return not _alive(pid, pid_start, expires_at, wall)
    return expires_at < wall


def recover_txn(conn: sqlite3.Connection, shapes: ShapeCache, now: float, wall: float) -> int:
    """Release every worker that is gone; returns how many task runs went back to the queue."""
    settler = Settler(conn, shapes, now)
    requeued = 0
    for worker_id, pid, hostname, expires_at, pid_start in conn.execute(
        "SELECT id, pid, hostname, expires_at, pid_start FROM workers "
        "WHERE status IN ('ACTIVE', 'PAUSED')"
    ).fetchall():
        if _gone(pid, hostname, expires_at, pid_start, wall):
            requeued += release_txn(settler, worker_id, "REASSIGNED", died=True)
    settler.close()
    return requeued


# -- reading and pausing workers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    name: str
    status: str  # ACTIVE, PAUSED (paused, or draining after a stop signal), INACTIVE
    is_paused: bool
    pid: int
    hostname: str
    slots: int
    durable_slots: int
    actions: list[str]
    labels: dict[str, str | int]
    started_at: float
    heartbeat_at: float
    free_slots: int | None = None  # at its last heartbeat (None before the first)


_WORKER_COLUMNS = """id, name, status, is_paused, pid, hostname, slots, durable_slots, actions,
    labels, started_at, heartbeat_at, expires_at, pid_start, free_slots"""


def _worker_record(row: tuple[Any, ...], wall: float) -> WorkerRecord:
    (
        wid,
        name,
        status,
        paused,
        pid,
        hostname,
        slots,
        durable,
        actions,
        labels,
        started,
        beat,
        expires_at,
        pid_start,
        free,
    ) = row
    if status != "INACTIVE" and _gone(pid, hostname, expires_at, pid_start, wall):
        status = "INACTIVE"  # gone, not yet released by a worker's recovery
    elif status == "ACTIVE" and paused:
        status = "PAUSED"
    return WorkerRecord(
        wid,
        name,
        status,
        bool(paused),
        pid,
        hostname.split("|")[0],
        slots,
        durable,
        json.loads(actions),
        json.loads(labels),
        started,
        beat,
        free if status != "INACTIVE" else None,
    )


def list_workers_txn(conn: sqlite3.Connection, wall: float) -> list[WorkerRecord]:
    """Every worker row, running ones first, newest first."""
    rows = conn.execute(
        f"""SELECT {_WORKER_COLUMNS} FROM workers
            ORDER BY status = 'INACTIVE', started_at DESC"""
    ).fetchall()
    return [_worker_record(row, wall) for row in rows]


def get_worker_txn(conn: sqlite3.Connection, worker_id: str, wall: float) -> WorkerRecord | None:
    row = conn.execute(f"SELECT {_WORKER_COLUMNS} FROM workers WHERE id = ?", (worker_id,))
    found = row.fetchone()
    return None if found is None else _worker_record(found, wall)


def set_paused_txn(conn: sqlite3.Connection, worker_id: str, paused: bool) -> bool:
    cur = conn.execute("UPDATE workers SET is_paused = ? WHERE id = ?", (int(paused), worker_id))
    return bool(cur.rowcount)


def mark_draining_txn(conn: sqlite3.Connection, worker_id: str) -> None:
    """A stopping worker takes no new tasks while its running ones finish."""
    conn.execute(
        "UPDATE workers SET status = 'PAUSED' WHERE id = ? AND status = 'ACTIVE'", (worker_id,)
    )


def paused_among_txn(conn: sqlite3.Connection, worker_ids: list[str]) -> set[str]:
    return {
        str(row[0])
        for row in conn.execute(
            f"SELECT id FROM workers WHERE is_paused = 1 AND id IN ({','.join('?' * len(worker_ids))})",
            worker_ids,
        )
    }
