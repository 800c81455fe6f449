"""Durable eviction: a durable task run waiting in a worker's memory is taken out of it
(status WAITING, no worker) and queued again, to be replayed from its history, when
what it waits for happens or when someone restores it.

An evicted task run waits for its PENDING `durable_events` entries (sleeps, events) or
for child runs (`durable_child_waits`, by group: one group per wait, done when all its
children ended). Each restore is found in the transaction that makes it due: the one
that satisfies the entry, or the one that ends the last child of a group.
"""

from __future__ import annotations

import sqlite3

from hatchlite.exceptions import RestoreError
from hatchlite.store.records import marks


def evict_txn(
    conn: sqlite3.Connection,
    task_id: str,
    worker_id: str,
    nodes: list[int],
    children: list[list[str]],
    now: float,
    reason: str,
) -> bool:
    """Evict task run `task_id`, held by `worker_id` and waiting for its entries `nodes`
    and for the child runs of each group of `children`. Refused (False, nothing
    written) if the worker no longer holds it, or if one of its waits is already over:
    the task is then resuming in memory."""
    row = conn.execute(
        "SELECT workflow_run_id, retry_count FROM task_runs "
        "WHERE id = ? AND status = 'RUNNING' AND worker_id = ?",
        (task_id, worker_id),
    ).fetchone()
    if row is None or not (nodes or children):
        return False
    if nodes:
        pending = conn.execute(
            f"""SELECT count(*) FROM durable_events WHERE task_run_id = ?
                AND node_id IN ({marks(len(nodes))}) AND status = 'PENDING'""",
            (task_id, *nodes),
        ).fetchone()[0]
        if pending != len(set(nodes)):
            return False
        due = conn.execute(
            f"""SELECT 1 FROM durable_conditions WHERE task_run_id = ?
                AND node_id IN ({marks(len(nodes))}) AND status = 'OPEN' AND kind = 'SLEEP'
                AND wake_at <= ? LIMIT 1""",
            (task_id, *nodes, now),
        ).fetchone()
        if due is not None:
            return False  # its sleep is over: the next step resumes it
    waits: list[tuple[str, int, str]] = []
    for grp, run_ids in enumerate(children):
        active = [
            r[0]
            for r in conn.execute(
                f"""SELECT id FROM workflow_runs WHERE id IN ({marks(len(run_ids))})
                    AND status IN ('QUEUED', 'RUNNING')""",
                run_ids,
            )
        ]
        if not active:
            return False
        waits.extend((task_id, grp, run_id) for run_id in active)
    conn.execute(
        "UPDATE task_runs SET status = 'WAITING', worker_id = NULL, timeout_at = NULL WHERE id = ?",
        (task_id,),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO durable_child_waits (task_run_id, grp, child_run_id) "
        "VALUES (?, ?, ?)",
        waits,
    )
    conn.execute(
        """INSERT INTO task_events (task_run_id, workflow_run_id, retry_count, event_type,
               message, worker_id, created_at) VALUES (?, ?, ?, 'DURABLE_EVICTED', ?, ?, ?)""",
        (task_id, row[0], row[1], reason, worker_id, now),
    )
    return True


def restore_txn(conn: sqlite3.Connection, task_id: str, now: float, reason: str) -> bool:
    """Queue an evicted task run again (it replays its history); False if it is not
    evicted. No schedule timeout: it started long ago and must not be cancelled for
    waiting on a worker."""
    cur = conn.execute(
        """UPDATE task_runs SET status = 'QUEUED', available_at = ?, schedule_deadline = NULL
           WHERE id = ? AND status = 'WAITING'""",
        (now, task_id),
    )
    if not cur.rowcount:
        return False
    conn.execute("DELETE FROM durable_child_waits WHERE task_run_id = ?", (task_id,))
    conn.execute(
        """INSERT INTO task_events (task_run_id, workflow_run_id, retry_count, event_type,
               message, worker_id, created_at)
           SELECT id, workflow_run_id, retry_count, 'DURABLE_RESTORING', ?, NULL, ?
           FROM task_runs WHERE id = ?""",
        (reason, now, task_id),
    )
    return True


def restore_by_request_txn(conn: sqlite3.Connection, task_id: str, now: float) -> None:
    """`runs.restore_task`: queue an evicted task run again now, whether or not its wait
    is over (a replay that meets a wait still open waits again)."""
    row = conn.execute("SELECT status FROM task_runs WHERE id = ?", (task_id,)).fetchone()
    if row is None:
        raise RestoreError(f"no task run with id {task_id!r}")
    if row[0] != "WAITING":
        public = "QUEUED" if row[0] == "PENDING" else row[0]
        raise RestoreError(
            f"task run {task_id} is not evicted (it is {public}); only an evicted durable "
            f"task can be restored"
        )
    restore_txn(conn, task_id, now, "restored by request")


def run_ended_txn(conn: sqlite3.Connection, run_id: str, now: float) -> None:
    """A workflow run ended: an evicted parent that waited for it (and for nothing else
    of its group) is queued again."""
    waits = conn.execute(
        "SELECT task_run_id, grp FROM durable_child_waits WHERE child_run_id = ?", (run_id,)
    ).fetchall()
    if not waits:
        return
    conn.execute("DELETE FROM durable_child_waits WHERE child_run_id = ?", (run_id,))
    for task_id, grp in waits:
        left = conn.execute(
            "SELECT 1 FROM durable_child_waits WHERE task_run_id = ? AND grp = ? LIMIT 1",
            (task_id, grp),
        ).fetchone()
        if left is None:
            restore_txn(conn, task_id, now, "the child runs it waited for ended")
