"""Durable history: one entry per durable call of a task run, and the conditions of its
waits, satisfied by timers and pushed events inside the same transactions that fire
or store them."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from hatchlite.cel import evaluate
from hatchlite.exceptions import HatchliteError, ResetError
from hatchlite.ids import new_id
from hatchlite.store.eviction import restore_txn
from hatchlite.store.records import chunks, marks

logger = logging.getLogger("hatchlite")

Node = tuple[str, int]  # (task run id, node id)
CondRef = tuple[str, int, int]  # (task run id, node id, condition idx)
# An event to store: key, payload JSON, metadata JSON, scope, priority.
EventIn = tuple[str, str, str, str | None, int | None]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    node_id: int
    kind: str
    key: str
    status: str
    result: str | None
    fingerprint: str | None = None


@dataclass(slots=True)
class ConditionSpec:
    """One condition of a wait. Conditions with the same `group` are alternatives (an
    `or_`); every group must be met."""

    group: int
    kind: str  # SLEEP or EVENT
    readable_key: str
    wake_at: float | None = None
    sleep_payload: str | None = None
    event_key: str | None = None
    expression: str | None = None
    scope: str | None = None
    since: float | None = None  # EVENT: events stored since then count too


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    key: str
    payload_json: str
    metadata_json: str
    scope: str | None
    priority: int | None
    created_at: float


def load_history_txn(
    conn: sqlite3.Connection, task_ids: list[str]
) -> dict[str, list[HistoryEntry]]:
    out: dict[str, list[HistoryEntry]] = {}
    for part in chunks(task_ids):
        for task_id, node_id, kind, key, status, result, fingerprint in conn.execute(
            f"""SELECT task_run_id, node_id, kind, key, status, result, fingerprint
                FROM durable_events WHERE task_run_id IN ({marks(len(part))})
                ORDER BY task_run_id, node_id""",
            part,
        ):
            out.setdefault(task_id, []).append(
                HistoryEntry(node_id, kind, key, status, result, fingerprint)
            )
    return out


class StaleAttemptError(HatchliteError):
    """A durable call from an attempt that no longer owns its task run (its worker was
    presumed gone and the run was given to another)."""


def _check_owner(conn: sqlite3.Connection, task_id: str, worker_id: str | None) -> None:
    if worker_id is None:
        return
    row = conn.execute(
        "SELECT 1 FROM task_runs WHERE id = ? AND status = 'RUNNING' AND worker_id = ?",
        (task_id, worker_id),
    ).fetchone()
    if row is None:
        raise StaleAttemptError(
            f"task run {task_id} is no longer held by worker {worker_id}; "
            f"this attempt's durable calls are not recorded"
        )


def record_txn(
    conn: sqlite3.Connection,
    task_id: str,
    node_id: int,
    kind: str,
    key: str,
    result_json: str,
    now: float,
    worker_id: str | None = None,
) -> None:
    """An entry whose result is known at once (now, spawn, memo)."""
    _check_owner(conn, task_id, worker_id)
    conn.execute(
        """INSERT INTO durable_events (task_run_id, node_id, kind, key, status, result,
               created_at, satisfied_at) VALUES (?, ?, ?, ?, 'SATISFIED', ?, ?, ?)""",
        (task_id, node_id, kind, key, result_json, now, now),
    )


def open_wait_txn(
    conn: sqlite3.Connection,
    task_id: str,
    node_id: int,
    key: str,
    conditions: list[ConditionSpec],
    now: float,
    fingerprint: str | None = None,
    worker_id: str | None = None,
) -> str | None:
    """Record a wait and its conditions; returns its result if already satisfied (a
    zero sleep, or a matching event within a lookback window)."""
    _check_owner(conn, task_id, worker_id)
    conn.execute(
        """INSERT INTO durable_events (task_run_id, node_id, kind, key, fingerprint, status,
               created_at) VALUES (?, ?, 'WAIT', ?, ?, 'PENDING', ?)""",
        (task_id, node_id, key, fingerprint, now),
    )
    rows = []
    for idx, cond in enumerate(conditions):
        status, payload = "OPEN", cond.sleep_payload
        if cond.kind == "SLEEP" and cond.wake_at is not None and cond.wake_at <= now:
            status = "MET"
        elif cond.kind == "EVENT" and cond.since is not None:
            found = earlier_event(conn, cond, (task_id, node_id, idx))
            if found is not None:
                status, payload = "MET", found
        rows.append(
            (
                task_id,
                node_id,
                idx,
                cond.group,
                cond.kind,
                cond.readable_key,
                status,
                cond.event_key,
                cond.expression,
                cond.scope,
                cond.wake_at,
                payload,
            )
        )
    conn.executemany(
        """INSERT INTO durable_conditions (task_run_id, node_id, idx, grp, kind, readable_key,
               status, event_key, expression, scope, wake_at, payload)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    return _settle_entry(conn, task_id, node_id, now)


def earlier_event(conn: sqlite3.Connection, cond: ConditionSpec, ref: CondRef) -> str | None:
    for key, payload, metadata, scope in conn.execute(
        """SELECT key, payload, additional_metadata, scope FROM events
           WHERE key = ? AND created_at >= ? ORDER BY seq""",
        (cond.event_key, cond.since),
    ):
        if _Matcher(key, payload, metadata, scope).matches(ref, cond.scope, cond.expression):
            return str(payload)
    return None


class _Matcher:
    """Matches one event against event conditions: the payload is parsed once, and each
    distinct expression is evaluated once for the event, however many waits share it."""

    def __init__(self, key: str, payload: str, metadata: str, scope: str | None) -> None:
        self.key = key
        self.scope = scope
        self._payload = payload
        self._metadata = metadata
        self._data: Any = None
        self._results: dict[str, tuple[bool, str | None]] = {}

    def matches(self, ref: CondRef, want_scope: str | None, expression: str | None) -> bool:
        """Whether the event meets one condition. An expression that fails on the event
        (missing field, payload not an object, result not a bool) does not match, and is
        reported once per condition."""
        if want_scope is not None and want_scope != self.scope:
            return False
        if not expression:
            return True
        if expression not in self._results:
            self._results[expression] = self._evaluate(expression)
        matched, error = self._results[expression]
        if error is not None:
            _report_once(ref, self.key, expression, error)
        return matched

    def _evaluate(self, expression: str) -> tuple[bool, str | None]:
        if self._data is None:
            self._data = (json.loads(self._payload), json.loads(self._metadata))
        data, metadata = self._data
        result = evaluate(expression, {"input": data, "additional_metadata": metadata})
        if result.error is None:
            return result.value is True, None
        error = result.error
        if not isinstance(data, dict):
            error += f" (the event payload is {_json_kind(data)}, not a JSON object)"
        return False, error


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "a string"


class ReportedOnce:
    """What was already logged (a condition's or a filter's failing expression): a
    bounded LRU, so something that fails on many events logs once and memory stays
    flat."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()  # one database thread per engine, several engines

    def first(self, ref: Hashable) -> bool:
        with self._lock:
            if ref in self._seen:
                self._seen.move_to_end(ref)
                return False
            self._seen[ref] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True


_REPORTED = ReportedOnce()


def _report_once(ref: CondRef, event_key: str, expression: str, error: str) -> None:
    # Runs inside the push's transaction on the database thread: a failing log handler
    # must not roll the push back.
    try:
        if _REPORTED.first(ref):
            task_id, node_id, idx = ref
            logger.warning(
                "wait of task run %s (entry %d, condition %d): CEL expression %r "
                "failed on event %r: %s; the event does not match, the wait goes on "
                "(logged once per condition)",
                task_id,
                node_id,
                idx,
                expression,
                event_key,
                error,
            )
    except Exception:
        pass


def _settle_entry(conn: sqlite3.Connection, task_id: str, node_id: int, now: float) -> str | None:
    """If every group of the wait has a met condition, satisfy the entry."""
    conds = conn.execute(
        """SELECT grp, readable_key, status, payload FROM durable_conditions
           WHERE task_run_id = ? AND node_id = ? ORDER BY idx""",
        (task_id, node_id),
    ).fetchall()
    groups: dict[int, bool] = {}
    for grp, _, status, _ in conds:
        groups[grp] = groups.get(grp, False) or status == "MET"
    if not groups or not all(groups.values()):
        return None
    matched: dict[str, list[Any]] = {}
    for _, readable_key, status, payload in conds:
        if status == "MET":
            matched.setdefault(readable_key, []).append(json.loads(payload) if payload else {})
    result = json.dumps({"CREATE": matched})
    cur = conn.execute(
        """UPDATE durable_events SET status = 'SATISFIED', result = ?, satisfied_at = ?
           WHERE task_run_id = ? AND node_id = ? AND status = 'PENDING'""",
        (result, now, task_id, node_id),
    )
    if not cur.rowcount:
        return None
    conn.execute(
        """UPDATE durable_conditions SET status = 'CLOSED'
           WHERE task_run_id = ? AND node_id = ? AND status = 'OPEN'""",
        (task_id, node_id),
    )
    restore_txn(conn, task_id, now, f"its wait (entry {node_id}) was satisfied")
    return result


def meet_timers_txn(conn: sqlite3.Connection, now: float) -> set[Node]:
    """Meet every sleep condition that is due; returns the waits (node 0: a task's
    conditions) that have a newly met condition."""
    due = conn.execute(
        """SELECT task_run_id, node_id, idx FROM durable_conditions
           WHERE status = 'OPEN' AND kind = 'SLEEP' AND wake_at <= ?""",
        (now,),
    ).fetchall()
    if not due:
        return set()
    conn.executemany(
        """UPDATE durable_conditions SET status = 'MET', met_at = wake_at
           WHERE task_run_id = ? AND node_id = ? AND idx = ? AND status = 'OPEN'""",
        due,
    )
    return {(t, n) for t, n, _ in due}


def settle_waits_txn(conn: sqlite3.Connection, nodes: set[Node], now: float) -> dict[Node, str]:
    """Satisfy the durable waits among `nodes` whose every group is met (a task's
    conditions, node 0, are settled by gates.py)."""
    out: dict[Node, str] = {}
    for task_id, node_id in sorted(nodes):
        if node_id == 0:
            continue
        result = _settle_entry(conn, task_id, node_id, now)
        if result is not None:
            out[(task_id, node_id)] = result
    return out


def store_event_txn(
    conn: sqlite3.Connection,
    key: str,
    payload_json: str,
    metadata_json: str,
    scope: str | None,
    priority: int | None,
    now: float,
) -> StoredEvent:
    event = StoredEvent(new_id(), key, payload_json, metadata_json, scope, priority, now)
    conn.execute(
        """INSERT INTO events (id, key, payload, additional_metadata, scope, priority, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (event.id, key, payload_json, metadata_json, scope, priority, now),
    )
    return event


def meet_event_txn(conn: sqlite3.Connection, event: StoredEvent) -> set[Node]:
    """Meet the open event conditions (of durable waits and of tasks) that `event`
    matches: found by its key (an index), each one's CEL compiled once and cached.
    Returns the waits with a newly met condition."""
    met: list[tuple[str, float, str, int, int]] = []
    matcher = _Matcher(event.key, event.payload_json, event.metadata_json, event.scope)
    for task_id, node_id, idx, want_scope, expression in conn.execute(
        """SELECT task_run_id, node_id, idx, scope, expression FROM durable_conditions
           WHERE status = 'OPEN' AND kind = 'EVENT' AND event_key = ?""",
        (event.key,),
    ).fetchall():
        if matcher.matches((task_id, node_id, idx), want_scope, expression):
            met.append((event.payload_json, event.created_at, task_id, node_id, idx))
    if met:
        conn.executemany(
            """UPDATE durable_conditions SET status = 'MET', payload = ?, met_at = ?
               WHERE task_run_id = ? AND node_id = ? AND idx = ? AND status = 'OPEN'""",
            met,
        )
    return {(t, n) for _, _, t, n, _ in met}


def satisfied_among_txn(conn: sqlite3.Connection, nodes: list[Node]) -> dict[Node, str]:
    out: dict[Node, str] = {}
    for task_id, node_id in nodes:
        row = conn.execute(
            """SELECT result FROM durable_events WHERE task_run_id = ? AND node_id = ?
               AND status = 'SATISFIED'""",
            (task_id, node_id),
        ).fetchone()
        if row is not None:
            out[(task_id, node_id)] = row[0]
    return out


def next_timer(conn: sqlite3.Connection) -> float | None:
    row = conn.execute(
        "SELECT min(wake_at) FROM durable_conditions WHERE status = 'OPEN' AND kind = 'SLEEP'"
    ).fetchone()
    return None if row[0] is None else float(row[0])


def reset_txn(
    conn: sqlite3.Connection, task_id: str, node_id: int, branch_id: int, is_durable: bool
) -> tuple[str, int]:
    """Start a new branch of task run `task_id`'s durable history at `node_id`: the
    entries from that node on (of branch `branch_id`, its current one) are moved to the
    branch archive and the task's branch number goes up. Returns (its run id, the new
    branch). The caller queues the task again."""
    row = conn.execute(
        "SELECT workflow_run_id, durable_branch, task_name FROM task_runs WHERE id = ?",
        (task_id,),
    ).fetchone()
    if row is None:
        raise ResetError(f"no task run with id {task_id!r}")
    run_id, current, task_name = str(row[0]), int(row[1]), str(row[2])
    if not is_durable:
        raise ResetError(f"task {task_name!r} ({task_id}) is not durable: it has no history")
    if branch_id != current:
        raise ResetError(
            f"task run {task_id} is on branch {current} of its history, not {branch_id}"
        )
    nodes = [
        int(r[0])
        for r in conn.execute(
            "SELECT node_id FROM durable_events WHERE task_run_id = ? ORDER BY node_id",
            (task_id,),
        )
    ]
    if node_id not in nodes:
        known = f"its nodes are {nodes[0]} to {nodes[-1]}" if nodes else "it has no history"
        raise ResetError(f"task run {task_id} has no node {node_id} on branch {current}: {known}")
    conn.execute(
        """INSERT INTO durable_branches (task_run_id, branch_id, node_id, kind, key,
               fingerprint, status, result, created_at, satisfied_at)
           SELECT task_run_id, ?, node_id, kind, key, fingerprint, status, result,
               created_at, satisfied_at
           FROM durable_events WHERE task_run_id = ? AND node_id >= ?""",
        (current, task_id, node_id),
    )
    conn.execute(
        "DELETE FROM durable_events WHERE task_run_id = ? AND node_id >= ?", (task_id, node_id)
    )
    conn.execute(
        "DELETE FROM durable_conditions WHERE task_run_id = ? AND node_id >= ?",
        (task_id, node_id),
    )
    conn.execute("UPDATE task_runs SET durable_branch = ? WHERE id = ?", (current + 1, task_id))
    return run_id, current + 1


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One entry of a durable task's history, on its current branch or an older one."""

    branch_id: int
    node_id: int
    kind: str
    key: str
    status: str
    result: str | None
    created_at: float
    satisfied_at: float | None


def history_txn(conn: sqlite3.Connection, task_id: str) -> tuple[int, list[HistoryRow]] | None:
    """(current branch, every entry of every branch, by branch then node) of task run
    `task_id`; None if there is no such task run."""
    row = conn.execute("SELECT durable_branch FROM task_runs WHERE id = ?", (task_id,)).fetchone()
    if row is None:
        return None
    current = int(row[0])
    rows = [
        HistoryRow(*r)
        for r in conn.execute(
            """SELECT branch_id, node_id, kind, key, status, result, created_at, satisfied_at
               FROM durable_branches WHERE task_run_id = ?""",
            (task_id,),
        )
    ]
    rows += [
        HistoryRow(current, *r)
        for r in conn.execute(
            """SELECT node_id, kind, key, status, result, created_at, satisfied_at
               FROM durable_events WHERE task_run_id = ?""",
            (task_id,),
        )
    ]
    rows.sort(key=lambda r: (r.branch_id, r.node_id))
    return current, rows
