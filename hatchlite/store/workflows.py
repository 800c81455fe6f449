"""Registered workflows as rows: listing, deleting, and pausing (a paused workflow's
task runs stay queued; those queued longer than the pause's queue TTL are cancelled)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from hatchlite.store.settle import Settler
from hatchlite.store.shapes import bump_definitions_txn

PAUSE_CANCEL_MESSAGE = (
    "workflow {name!r} was paused, and this task run stayed queued past the pause's queue_ttl"
)


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: str
    name: str
    description: str | None
    version: str | None
    is_paused: bool
    pause_queue_ttl: float | None
    paused_cron_behavior: str | None
    paused_scheduled_behavior: str | None
    created_at: float
    updated_at: float


_COLUMNS = """id, name, description, version, is_paused, pause_queue_ttl, paused_cron_behavior,
    paused_scheduled_behavior, created_at, updated_at"""


def _record(row: tuple[object, ...]) -> WorkflowRecord:
    values = list(row)
    values[4] = bool(values[4])
    return WorkflowRecord(*values)  # type: ignore[arg-type]


def list_txn(
    conn: sqlite3.Connection, name: str | None, limit: int | None, offset: int
) -> tuple[list[WorkflowRecord], int]:
    where, params = "WHERE deleted_at IS NULL", []
    if name is not None:
        where, params = "WHERE deleted_at IS NULL AND name = ?", [name]
    total = int(conn.execute(f"SELECT count(*) FROM workflows {where}", params).fetchone()[0])
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM workflows {where} ORDER BY name LIMIT ? OFFSET ?",
        [*params, -1 if limit is None else limit, offset],
    ).fetchall()
    return [_record(row) for row in rows], total


def get_txn(conn: sqlite3.Connection, workflow_id: str) -> WorkflowRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM workflows WHERE id = ? AND deleted_at IS NULL", (workflow_id,)
    ).fetchone()
    return None if row is None else _record(row)


def by_name_txn(conn: sqlite3.Connection, name: str) -> WorkflowRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM workflows WHERE name = ? AND deleted_at IS NULL", (name,)
    ).fetchone()
    return None if row is None else _record(row)


def delete_txn(conn: sqlite3.Connection, workflow_id: str, now: float) -> str | None:
    """Mark a workflow deleted (its row, with its shape, stays for the runs that still
    settle with it). Returns its name, None if unknown."""
    row = conn.execute(
        "SELECT name FROM workflows WHERE id = ? AND deleted_at IS NULL", (workflow_id,)
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE workflows SET deleted_at = ?, is_paused = 0 WHERE id = ?", (now, workflow_id)
    )
    bump_definitions_txn(conn)  # a deleted workflow's events start nothing
    return str(row[0])


def set_paused_txn(
    conn: sqlite3.Connection,
    workflow_id: str,
    paused: bool,
    now: float,
    queue_ttl: float | None = None,
    cron_behavior: str | None = None,
    scheduled_behavior: str | None = None,
) -> bool:
    cur = conn.execute(
        """UPDATE workflows SET is_paused = ?, paused_at = ?, pause_queue_ttl = ?,
               paused_cron_behavior = ?, paused_scheduled_behavior = ?, updated_at = ?
           WHERE id = ? AND deleted_at IS NULL""",
        (
            int(paused),
            now if paused else None,
            queue_ttl if paused else None,
            cron_behavior if paused else None,
            scheduled_behavior if paused else None,
            now,
            workflow_id,
        ),
    )
    return bool(cur.rowcount)


def paused_txn(conn: sqlite3.Connection) -> dict[str, float | None]:
    """Paused workflows by name, with their queue TTL (seconds)."""
    return {
        str(name): ttl
        for name, ttl in conn.execute(
            "SELECT name, pause_queue_ttl FROM workflows WHERE is_paused = 1"
        )
    }


def dropping_txn(conn: sqlite3.Connection) -> dict[str, tuple[bool, bool]]:
    """Paused workflows that drop (DROP) their cron runs, their scheduled runs."""
    return {
        str(name): (cron == "DROP", scheduled == "DROP")
        for name, cron, scheduled in conn.execute(
            """SELECT name, paused_cron_behavior, paused_scheduled_behavior FROM workflows
               WHERE is_paused = 1"""
        )
    }


def expire_paused_txn(settler: Settler, paused: dict[str, float | None]) -> None:
    """Cancel task runs of paused workflows queued for longer than the queue TTL."""
    conn, now = settler.conn, settler.now
    for name, ttl in paused.items():
        if ttl is None:
            continue
        rows = conn.execute(
            """SELECT id, workflow_run_id, task_name, retry_count, queued_at FROM task_runs
               WHERE status = 'QUEUED' AND workflow_name = ? AND queued_at <= ?""",
            (name, now - ttl),
        ).fetchall()
        error = json.dumps(
            {"exc_type": "HatchetError", "message": PAUSE_CANCEL_MESSAGE.format(name=name)}
        )
        for task_id, run_id, task_name, retry_count, queued_at in rows:
            cur = conn.execute(
                "UPDATE task_runs SET status = 'CANCELLED', finished_at = ? "
                "WHERE id = ? AND status = 'QUEUED'",
                (now, task_id),
            )
            if cur.rowcount:
                settler.record_attempt(
                    task_id, retry_count, "CANCELLED", None, error, None, queued_at
                )
                settler.after_terminal(run_id, name, task_name, "CANCELLED", task_id)


def next_pause_expiry(conn: sqlite3.Connection, paused: dict[str, float | None]) -> float | None:
    """When the next queued task run of a paused workflow passes its queue TTL."""
    soonest: float | None = None
    for name, ttl in paused.items():
        if ttl is None:
            continue
        row = conn.execute(
            "SELECT min(queued_at) FROM task_runs WHERE status = 'QUEUED' AND workflow_name = ?",
            (name,),
        ).fetchone()
        if row[0] is not None and (soonest is None or row[0] + ttl < soonest):
            soonest = float(row[0]) + ttl
    return soonest


def other_versions_txn(
    conn: sqlite3.Connection, hashes: dict[str, str]
) -> dict[str, tuple[int, list[str]]]:
    """In-flight runs of each workflow created with another shape than `hashes[name]`
    (the one the asking worker serves): how many, and the oldest few ids."""
    found: dict[str, tuple[int, list[str]]] = {}
    where = """FROM workflow_runs INDEXED BY workflow_runs_active
               WHERE status IN ('QUEUED', 'RUNNING') AND workflow_name = ?
               AND shape_hash IS NOT NULL AND shape_hash != ?"""
    for name, hash_ in hashes.items():
        count = int(conn.execute(f"SELECT count(*) {where}", (name, hash_)).fetchone()[0])
        if count:
            ids = conn.execute(f"SELECT id {where} ORDER BY seq LIMIT 5", (name, hash_))
            found[name] = (count, [str(row[0]) for row in ids])
    return found
