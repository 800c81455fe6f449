"""Retention: deleting finished runs (with everything stored under them) and old pushed
events, a bounded batch per transaction so the engine's own commits interleave."""

from __future__ import annotations

import sqlite3

from hatchlite.store.records import marks

# Tables keyed by task run id, and by workflow run id, that hold a run's history.
_BY_TASK = ("task_attempts", "task_logs", "durable_conditions", "durable_events")
_BY_RUN = ("task_events", "stream_chunks")


def purge_runs_txn(conn: sqlite3.Connection, cutoff: float, statuses: list[str], limit: int) -> int:
    """Delete up to `limit` runs with one of `statuses` (finished ones) that finished
    before `cutoff`, with their task runs, attempts, task events, logs, stream chunks and
    durable history. Returns how many runs were deleted."""
    run_ids = [
        str(row[0])
        for row in conn.execute(
            f"""SELECT id FROM workflow_runs
                WHERE finished_at IS NOT NULL AND finished_at < ?
                  AND status IN ({marks(len(statuses))})
                ORDER BY finished_at LIMIT ?""",
            (cutoff, *statuses, limit),
        )
    ]
    if not run_ids:
        return 0
    runs = marks(len(run_ids))
    task_ids = [
        str(row[0])
        for row in conn.execute(
            f"SELECT id FROM task_runs WHERE workflow_run_id IN ({runs})", run_ids
        )
    ]
    for start in range(0, len(task_ids), 500):
        part = task_ids[start : start + 500]
        for table in _BY_TASK:
            conn.execute(f"DELETE FROM {table} WHERE task_run_id IN ({marks(len(part))})", part)
    for table in _BY_RUN:
        conn.execute(f"DELETE FROM {table} WHERE workflow_run_id IN ({runs})", run_ids)
    conn.execute(f"DELETE FROM task_runs WHERE workflow_run_id IN ({runs})", run_ids)
    conn.execute(f"DELETE FROM workflow_runs WHERE id IN ({runs})", run_ids)
    return len(run_ids)


def purge_events_txn(conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
    """Delete up to `limit` pushed events stored before `cutoff`, and idempotency keys
    that expired before it (they no longer hold anything)."""
    cur = conn.execute(
        """DELETE FROM events WHERE seq IN (
               SELECT seq FROM events WHERE created_at < ? ORDER BY seq LIMIT ?)""",
        (cutoff, limit),
    )
    deleted = cur.rowcount
    cur = conn.execute(
        """DELETE FROM idempotency_keys WHERE (workflow_name, key) IN (
               SELECT workflow_name, key FROM idempotency_keys WHERE expires_at < ? LIMIT ?)""",
        (cutoff, limit),
    )
    return deleted + cur.rowcount


def incremental_vacuum_txn(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to `pages` free pages back to the file system (databases created with
    `auto_vacuum = INCREMENTAL`; a no-op otherwise). Returns the free pages left."""
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
        conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])
