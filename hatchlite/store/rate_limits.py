"""Rate limits in SQL: fixed windows shared by every process on the database.

A limit `key` has `limit_value` units a window; `value` units are left until
`last_refill + window_seconds`, when it refills to `limit_value` (Hatchet's engine
semantics). A task run that uses limits carries them, rendered when it was queued, as
JSON `[[key, units], ...]` in `task_runs.rate_limits`; the claim takes the units of all
of them or of none. A task run that cannot have them now is parked (`held = 2`) until
the earliest moment it could, with a REQUEUED_RATE_LIMIT task event (one per attempt),
and holds no slot meanwhile. A paused limit gives no units until its pause ends.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

PARKED = 2  # task_runs.held of a task run waiting out a rate limit


@dataclass(frozen=True, slots=True)
class RateLimitRecord:
    key: str
    limit_value: int
    value: int
    window_seconds: float
    last_refill: float
    paused_until: float | None


def put_txn(conn: sqlite3.Connection, key: str, limit: int, window: float, now: float) -> None:
    """Create or change a static limit: a new one starts full; a changed one keeps what
    is used of its current window."""
    conn.execute(
        """INSERT INTO rate_limits (key, limit_value, value, window_seconds, last_refill,
               is_static, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?)
           ON CONFLICT (key) DO UPDATE SET
               value = max(0, min(excluded.limit_value,
                                  value + excluded.limit_value - limit_value)),
               limit_value = excluded.limit_value, window_seconds = excluded.window_seconds,
               is_static = 1, updated_at = excluded.updated_at""",
        (key, limit, limit, window, now, now),
    )


def upsert_dynamic_txn(
    conn: sqlite3.Connection, key: str, limit: int, window: float, now: float
) -> None:
    """A dynamic key's limit comes with each task that uses it: the latest wins (a key
    that names a static limit takes that limit as it is)."""
    conn.execute(
        """INSERT INTO rate_limits (key, limit_value, value, window_seconds, last_refill,
               is_static, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?)
           ON CONFLICT (key) DO UPDATE SET
               value = max(0, min(excluded.limit_value,
                                  value + excluded.limit_value - limit_value)),
               limit_value = excluded.limit_value, window_seconds = excluded.window_seconds,
               updated_at = excluded.updated_at
           WHERE is_static = 0 AND (limit_value != excluded.limit_value
              OR window_seconds != excluded.window_seconds)""",
        (key, limit, limit, window, now, now),
    )


def limit_of(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT limit_value FROM rate_limits WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def pause_txn(conn: sqlite3.Connection, key: str, until: float) -> float | None:
    """Give no units of `key` before `until` (a pause is never shortened); returns the
    pause's end, or None if there is no such limit."""
    conn.execute(
        """UPDATE rate_limits SET paused_until = max(coalesce(paused_until, 0), ?)
           WHERE key = ?""",
        (until, key),
    )
    row = conn.execute("SELECT paused_until FROM rate_limits WHERE key = ?", (key,)).fetchone()
    return None if row is None else float(row[0])


NEVER = -1.0  # take_txn: a limit is now below the units the task run takes


def take_txn(conn: sqlite3.Connection, uses: list[tuple[str, int]], now: float) -> float | None:
    """Take the units of every limit in `uses`, or none of them: None if taken, NEVER
    if a limit was lowered below the units, else the earliest moment all could be
    available."""
    rows: dict[str, tuple[int, int, float, float, float | None]] = {}
    for key, _ in uses:
        row = conn.execute(
            """SELECT limit_value, value, window_seconds, last_refill, paused_until
               FROM rate_limits WHERE key = ?""",
            (key,),
        ).fetchone()
        if row is not None:
            rows[key] = row
    retry_at = 0.0
    refills: list[str] = []
    for key, units in uses:
        if key not in rows:
            continue  # deleted since it was rendered: no limit
        limit_value, value, window, last_refill, paused_until = rows[key]
        if units > limit_value:
            return NEVER
        if paused_until is not None and paused_until > now:
            retry_at = max(retry_at, paused_until)
            continue
        if now >= last_refill + window:
            value = limit_value
            refills.append(key)
        if value < units:
            retry_at = max(retry_at, last_refill + window)
    if retry_at:
        return retry_at
    for key, units in uses:
        if key not in rows:
            continue
        if key in refills:
            conn.execute(
                "UPDATE rate_limits SET value = limit_value - ?, last_refill = ? WHERE key = ?",
                (units, now, key),
            )
        else:
            conn.execute("UPDATE rate_limits SET value = value - ? WHERE key = ?", (units, key))
    return None


def park_txn(
    conn: sqlite3.Connection,
    task_id: str,
    run_id: str,
    retry_count: int,
    until: float,
    now: float,
    keys: list[str],
) -> None:
    """Hold a task run back until `until` (a rate limit has no units for it now); the
    first time in an attempt, say so in a REQUEUED_RATE_LIMIT task event."""
    conn.execute(
        "UPDATE task_runs SET held = ?, available_at = ? WHERE id = ? AND status = 'QUEUED'",
        (PARKED, until, task_id),
    )
    noted = conn.execute(
        """SELECT 1 FROM task_events WHERE task_run_id = ? AND retry_count = ?
           AND event_type = 'REQUEUED_RATE_LIMIT' LIMIT 1""",
        (task_id, retry_count),
    ).fetchone()
    if noted is None:
        conn.execute(
            """INSERT INTO task_events (task_run_id, workflow_run_id, retry_count, event_type,
                   message, worker_id, created_at)
               VALUES (?, ?, ?, 'REQUEUED_RATE_LIMIT', ?, NULL, ?)""",
            (
                task_id,
                run_id,
                retry_count,
                f"rate limit {', '.join(repr(k) for k in keys)} has no units left in its "
                f"window; the task waits until it refills",
                now,
            ),
        )


def unpark_txn(conn: sqlite3.Connection, now: float) -> None:
    """Put back in the queue the task runs whose wait for a rate limit is over."""
    conn.execute(
        f"""UPDATE task_runs SET held = 0
            WHERE status = 'QUEUED' AND held = {PARKED} AND available_at <= ?""",
        (now,),
    )


def next_unpark(conn: sqlite3.Connection) -> float | None:
    row = conn.execute(
        f"SELECT min(available_at) FROM task_runs WHERE status = 'QUEUED' AND held = {PARKED}"
    ).fetchone()
    return None if row[0] is None else float(row[0])


def list_txn(
    conn: sqlite3.Connection,
    search: str | None,
    order_by: str,
    descending: bool,
    offset: int,
    limit: int | None,
    now: float,
) -> tuple[list[RateLimitRecord], int]:
    """A page of the limits as of `now`: a window that is over shows full (as the next
    take will find it)."""
    where, params = "", []
    if search:
        where, params = "WHERE key LIKE ? ESCAPE '\\'", [f"%{_escape(search)}%"]
    records = [
        _current(RateLimitRecord(*row), now)
        for row in conn.execute(
            f"""SELECT key, limit_value, value, window_seconds, last_refill, paused_until
                FROM rate_limits {where}""",
            params,
        )
    ]
    field = {"key": "key", "value": "value", "limitValue": "limit_value"}[order_by]
    records.sort(key=lambda r: r.key)
    records.sort(key=lambda r: getattr(r, field), reverse=descending)
    end = None if limit is None else offset + limit
    return records[offset:end], len(records)


def _current(record: RateLimitRecord, now: float) -> RateLimitRecord:
    """A window that is over is full (the next take refills it and starts a window)."""
    if now < record.last_refill + record.window_seconds:
        return record
    return dataclasses.replace(record, value=record.limit_value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def uses_of(text: str | None) -> list[tuple[str, int]]:
    if not text:
        return []
    data: Any = json.loads(text)
    return [(str(key), int(units)) for key, units in data]
