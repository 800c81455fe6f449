"""Event triggers: which workflows a pushed event starts, through their filters.

A workflow listens to event keys (`on_events`; `*` and `%` match any run of characters
and `_` any one character, as Hatchet's SQL LIKE does). For an event with a matching key:
a workflow with no filters starts one run; one with filters starts none unless the
event has a scope, and then one run per filter of that scope whose CEL expression is
true (`input` = the payload, `additional_metadata`, `payload` = the filter's payload,
`event_key`, `event_id`). A filter whose expression fails is logged once, and starts
nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3
from dataclasses import dataclass

from hatchlite.cel import evaluate
from hatchlite.ids import new_id
from hatchlite.limits import LimitKeyError, key_run
from hatchlite.store.durable import ReportedOnce, StoredEvent
from hatchlite.store.records import NewRun, WorkflowShape
from hatchlite.store.shapes import ShapeCache, bump_definitions_txn, definitions_version

logger = logging.getLogger("hatchlite")


@functools.lru_cache(maxsize=4096)
def _key_pattern(key: str) -> re.Pattern[str]:
    parts = ("." if ch == "_" else ".*" if ch in "*%" else re.escape(ch) for ch in key)
    return re.compile("".join(parts), re.DOTALL)


def key_matches(pattern: str, key: str) -> bool:
    return _key_pattern(pattern).fullmatch(key) is not None


# -- registration -------------------------------------------------------------------------


def register_txn(conn: sqlite3.Connection, shape: WorkflowShape, now: float) -> None:
    """Record a workflow's event keys and (re)create its default ("declarative")
    filters, keeping the ids of those that did not change."""
    before = {
        row[0]
        for row in conn.execute(
            "SELECT pattern FROM event_triggers WHERE workflow_name = ?", (shape.name,)
        )
    }
    if before != set(shape.on_events):
        conn.execute("DELETE FROM event_triggers WHERE workflow_name = ?", (shape.name,))
        conn.executemany(
            "INSERT OR IGNORE INTO event_triggers (workflow_name, pattern) VALUES (?, ?)",
            [(shape.name, key) for key in shape.on_events],
        )
    bump_definitions_txn(conn)  # the workflow may also have come back from a delete
    wanted = set(shape.default_filters)
    existing = conn.execute(
        """SELECT id, expression, scope, payload FROM filters
           WHERE workflow_name = ? AND is_declarative = 1""",
        (shape.name,),
    ).fetchall()
    kept = set()
    for filter_id, expression, scope, payload in existing:
        if (expression, scope, payload) in wanted:
            kept.add((expression, scope, payload))
        else:
            conn.execute("DELETE FROM filters WHERE id = ?", (filter_id,))
    conn.executemany(
        """INSERT INTO filters (id, workflow_name, scope, expression, payload, is_declarative,
               created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)""",
        [
            (new_id(), shape.name, scope, expression, payload, now, now)
            for expression, scope, payload in sorted(wanted - kept)
        ],
    )


class Listeners:
    """Which workflows listen to which event keys, read once per change (any process's
    registration or delete bumps a version in hatchlite_meta): exact keys by a dict
    lookup, keys with wildcards by a match each."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._exact: dict[str, list[str]] = {}
        self._wildcards: list[tuple[str, str]] = []

    def for_key(self, conn: sqlite3.Connection, key: str) -> list[str]:
        current = definitions_version(conn)
        if current != self._version or current is None:
            self._load(conn)
            self._version = current
        names = set(self._exact.get(key, ()))
        names.update(name for pattern, name in self._wildcards if key_matches(pattern, key))
        return sorted(names)

    def _load(self, conn: sqlite3.Connection) -> None:
        self._exact, self._wildcards = {}, []
        for name, pattern in conn.execute(
            """SELECT t.workflow_name, t.pattern FROM event_triggers t
               JOIN workflows w ON w.name = t.workflow_name WHERE w.deleted_at IS NULL"""
        ):
            if any(ch in pattern for ch in "*%_"):
                self._wildcards.append((pattern, name))
            else:
                self._exact.setdefault(pattern, []).append(name)


# -- what an event starts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Filter:
    id: str
    scope: str
    expression: str
    payload_json: str


def runs_for_event_txn(
    conn: sqlite3.Connection, shapes: ShapeCache, event: StoredEvent, listeners: Listeners
) -> list[NewRun]:
    """The runs `event` starts (not yet inserted)."""
    runs: list[NewRun] = []
    for name in listeners.for_key(conn, event.key):
        shape = shapes.get(conn, name)
        filters = [
            _Filter(*row)
            for row in conn.execute(
                "SELECT id, scope, expression, payload FROM filters WHERE workflow_name = ?",
                (name,),
            )
        ]
        if not filters:
            runs.append(_new_run(shape, event, None))
            continue
        for f in filters:
            if event.scope is not None and f.scope == event.scope and _passes(f, event):
                runs.append(_new_run(shape, event, f))
    if any(_keyed(shapes.get(conn, run.workflow_name)) for run in runs):
        runs = [
            keyed
            for run in runs
            if (keyed := _with_keys(run, shapes.get(conn, run.workflow_name))) is not None
        ]
    return runs


def _passes(f: _Filter, event: StoredEvent) -> bool:
    result = evaluate(
        f.expression,
        {
            "input": json.loads(event.payload_json),
            "additional_metadata": json.loads(event.metadata_json),
            "payload": json.loads(f.payload_json),
            "event_key": event.key,
            "event_id": event.id,
        },
    )
    if result.error is not None:
        if _REPORTED.first((f.id, f.expression)):
            logger.warning(
                "filter %s (scope %r): CEL expression %r failed on event %r: %s; the filter "
                "starts no run (logged once per filter)",
                f.id,
                f.scope,
                f.expression,
                event.key,
                result.error,
            )
        return False
    return result.value is True


def _keyed(shape: WorkflowShape) -> bool:
    return shape.limited or shape.idempotency is not None


def _with_keys(run: NewRun, shape: WorkflowShape) -> NewRun | None:
    """`run` with its keys (concurrency, idempotency), or None (logged) when a key fails
    on the event:
    the event is stored and its other runs start."""
    try:
        key_run(shape, run)
    except LimitKeyError as exc:
        logger.warning(
            "event %s starts no run of workflow %r: %s", run.triggering_event_id, shape.name, exc
        )
        return None
    return run


def _new_run(shape: WorkflowShape, event: StoredEvent, f: _Filter | None) -> NewRun:
    run_id = new_id()
    metadata = {
        **json.loads(shape.default_metadata_json),
        **json.loads(event.metadata_json),
        "hatchet__event_id": event.id,
        "hatchet__event_key": event.key,
    }
    task_ids = (
        {name: new_id() for name in shape.tasks}
        if shape.is_dag
        else {next(iter(shape.tasks)): run_id}
    )
    return NewRun(
        run_id,
        shape.name,
        event.payload_json,
        json.dumps(metadata),
        event.priority if event.priority is not None else shape.default_priority,
        task_ids,
        triggering_event_id=event.id,
        filter_id=f.id if f else None,
        filter_payload_json=f.payload_json if f else None,
    )


_REPORTED = ReportedOnce()


# -- filters as rows ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterRecord:
    id: str
    workflow_name: str
    workflow_id: str | None
    scope: str
    expression: str
    payload_json: str
    is_declarative: bool
    created_at: float
    updated_at: float


_FILTER_COLUMNS = """f.id, f.workflow_name, w.id, f.scope, f.expression, f.payload,
    f.is_declarative, f.created_at, f.updated_at"""
_FILTER_FROM = "filters f LEFT JOIN workflows w ON w.name = f.workflow_name"


def _filter(row: tuple[object, ...]) -> FilterRecord:
    values = list(row)
    values[6] = bool(values[6])
    return FilterRecord(*values)  # type: ignore[arg-type]


def create_filter_txn(
    conn: sqlite3.Connection,
    workflow_id: str,
    expression: str,
    scope: str,
    payload_json: str,
    now: float,
) -> FilterRecord | None:
    """A filter of the workflow with id `workflow_id` (None if there is none)."""
    row = conn.execute(
        "SELECT name FROM workflows WHERE id = ? AND deleted_at IS NULL", (workflow_id,)
    ).fetchone()
    if row is None:
        return None
    filter_id = new_id()
    conn.execute(
        """INSERT INTO filters (id, workflow_name, scope, expression, payload, is_declarative,
               created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)""",
        (filter_id, row[0], scope, expression, payload_json, now, now),
    )
    return get_filter_txn(conn, filter_id)


def get_filter_txn(conn: sqlite3.Connection, filter_id: str) -> FilterRecord | None:
    row = conn.execute(
        f"SELECT {_FILTER_COLUMNS} FROM {_FILTER_FROM} WHERE f.id = ?", (filter_id,)
    ).fetchone()
    return None if row is None else _filter(row)


def list_filters_txn(
    conn: sqlite3.Connection,
    workflow_ids: list[str] | None,
    scopes: list[str] | None,
    limit: int | None,
    offset: int,
) -> tuple[list[FilterRecord], int]:
    where, params = ["1 = 1"], []
    if workflow_ids is not None:
        where.append(f"w.id IN ({','.join('?' * len(workflow_ids))})")
        params.extend(workflow_ids)
    if scopes is not None:
        where.append(f"f.scope IN ({','.join('?' * len(scopes))})")
        params.extend(scopes)
    condition = " AND ".join(where) if where else "1"
    total = int(
        conn.execute(f"SELECT count(*) FROM {_FILTER_FROM} WHERE {condition}", params).fetchone()[0]
    )
    rows = conn.execute(
        f"""SELECT {_FILTER_COLUMNS} FROM {_FILTER_FROM} WHERE {condition}
            ORDER BY f.created_at, f.id LIMIT ? OFFSET ?""",
        [*params, -1 if limit is None else limit, offset],
    ).fetchall()
    return [_filter(row) for row in rows], total


def update_filter_txn(
    conn: sqlite3.Connection,
    filter_id: str,
    expression: str | None,
    scope: str | None,
    payload_json: str | None,
    now: float,
) -> FilterRecord | None:
    conn.execute(
        """UPDATE filters SET expression = coalesce(?, expression), scope = coalesce(?, scope),
               payload = coalesce(?, payload), updated_at = ? WHERE id = ?""",
        (expression, scope, payload_json, now, filter_id),
    )
    return get_filter_txn(conn, filter_id)


def delete_filter_txn(conn: sqlite3.Connection, filter_id: str) -> FilterRecord | None:
    found = get_filter_txn(conn, filter_id)
    if found is not None:
        conn.execute("DELETE FROM filters WHERE id = ?", (filter_id,))
    return found
