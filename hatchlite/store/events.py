"""Pushed events read back: a filtered, paged list and one event, each with the runs
it started and how those runs stand."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from hatchlite.store.records import chunks, marks
from hatchlite.store.views import workflow_names


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    key: str
    payload_json: str
    metadata_json: str
    scope: str | None
    created_at: float


@dataclass(slots=True)
class EventQuery:
    keys: list[str] | None = None
    since: float | None = None
    until: float | None = None
    workflow_ids: list[str] | None = None
    workflow_run_statuses: list[str] | None = None
    event_ids: list[str] | None = None
    additional_metadata: dict[str, str] | None = None
    scopes: list[str] | None = None
    offset: int = 0
    limit: int | None = 50


@dataclass(slots=True)
class EventPage:
    events: list[EventRecord] = field(default_factory=list)
    # event id -> the runs it started: (run id, filter id, run status)
    runs: dict[str, list[tuple[str, str | None, str]]] = field(default_factory=dict)
    total: int = 0


_COLUMNS = "e.id, e.key, e.payload, e.additional_metadata, e.scope, e.created_at"


def _in(column: str, values: list[str]) -> tuple[str, list[object]]:
    return f"{column} IN ({marks(len(values))})", list(values)


def list_events_txn(conn: sqlite3.Connection, q: EventQuery) -> EventPage:
    where: list[str] = []
    params: list[object] = []
    for column, values in (("e.key", q.keys), ("e.id", q.event_ids), ("e.scope", q.scopes)):
        if values is not None:
            clause, values_params = _in(column, values)
            where.append(clause)
            params.extend(values_params)
    if q.since is not None:
        where.append("e.created_at >= ?")
        params.append(q.since)
    if q.until is not None:
        where.append("e.created_at <= ?")
        params.append(q.until)
    if q.workflow_ids is not None or q.workflow_run_statuses is not None:
        sub = ["r.triggering_event_id = e.id"]
        if q.workflow_ids is not None:
            names = workflow_names(conn, q.workflow_ids)
            if not names:
                return EventPage()
            clause, values_params = _in("r.workflow_name", names)
            sub.append(clause)
            params.extend(values_params)
        if q.workflow_run_statuses is not None:
            clause, values_params = _in("r.status", q.workflow_run_statuses)
            sub.append(clause)
            params.extend(values_params)
        where.append(f"EXISTS (SELECT 1 FROM workflow_runs r WHERE {' AND '.join(sub)})")
    if q.additional_metadata:
        pairs = []
        for key, value in q.additional_metadata.items():
            pairs.append(
                """EXISTS (SELECT 1 FROM json_each(e.additional_metadata) m
                    WHERE m.key = ? AND (CASE WHEN m.type IN ('true', 'false') THEN m.type
                                              ELSE CAST(m.value AS TEXT) END) = ?)"""
            )
            params.extend((key, str(value)))
        # Every pair must match (Hatchet's events query is a JSON containment).
        where.append("(" + " AND ".join(pairs) + ")")
    condition = " AND ".join(where) or "1"
    total = int(
        conn.execute(f"SELECT count(*) FROM events e WHERE {condition}", params).fetchone()[0]
    )
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM events e WHERE {condition}
            ORDER BY e.created_at DESC, e.seq DESC LIMIT ? OFFSET ?""",
        [*params, -1 if q.limit is None else q.limit, q.offset],
    ).fetchall()
    events = [EventRecord(*row) for row in rows]
    return EventPage(events, _runs_of(conn, [e.id for e in events]), total)


def get_event_txn(conn: sqlite3.Connection, event_id: str) -> EventPage:
    row = conn.execute(f"SELECT {_COLUMNS} FROM events e WHERE e.id = ?", (event_id,)).fetchone()
    if row is None:
        return EventPage()
    return EventPage([EventRecord(*row)], _runs_of(conn, [event_id]), 1)


def _runs_of(
    conn: sqlite3.Connection, event_ids: list[str]
) -> dict[str, list[tuple[str, str | None, str]]]:
    out: dict[str, list[tuple[str, str | None, str]]] = {}
    for part in chunks(event_ids):
        for event_id, run_id, filter_id, status in conn.execute(
            f"""SELECT triggering_event_id, id, filter_id, status FROM workflow_runs
                WHERE triggering_event_id IN ({marks(len(part))}) ORDER BY seq""",
            part,
        ):
            out.setdefault(event_id, []).append((run_id, filter_id, status))
    return out
