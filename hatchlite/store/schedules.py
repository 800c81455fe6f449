"""Crons and one-time schedules as rows, and firing them.

Firing is part of the scheduler's step (one transaction): for each due cron, `next_at`
moves past the ticks fired and their runs are created together, so two processes on one
file, or a process killed in the middle, never fire a tick twice or lose one. A cron
fires only in a process with a worker serving its workflow; ticks due while none runs
follow the workflow's missed-tick policy (hatchlite/cron.py). A one-time schedule that
came due while no worker ran fires once when one starts.

A paused workflow's cron ticks and schedules follow the pause's behaviour: QUEUE
creates the run (it stays queued until the workflow is unpaused), DROP fires nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from hatchlite.cron import InvalidCronError, due_ticks, format_instant, parse
from hatchlite.exceptions import HatchliteError
from hatchlite.ids import new_id
from hatchlite.limits import LimitKeyError, key_run
from hatchlite.store.durable import ReportedOnce
from hatchlite.store.records import NewRun, WorkflowShape
from hatchlite.store.settle import Settler
from hatchlite.store.shapes import ShapeCache, UnknownWorkflowError

logger = logging.getLogger("hatchlite")

# One-time schedules fired per step at most (the next step fires the rest).
FIRE_BATCH = 500
# The `next_at` of a cron that cannot fire (its stored expression no longer parses).
NEVER = 1e300
_REPORTED = ReportedOnce()


class DuplicateCronNameError(HatchliteError, ValueError):
    """A workflow already has a cron of that name."""


# -- rows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CronRecord:
    id: str
    workflow_name: str
    workflow_id: str | None
    name: str | None
    expression: str
    input_json: str
    metadata_json: str
    priority: int | None
    method: str
    next_at: float
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: str
    workflow_name: str
    workflow_id: str | None
    trigger_at: float
    input_json: str
    metadata_json: str
    priority: int | None
    method: str
    parent_workflow_run_id: str | None
    run_id: str | None
    fired_at: float | None
    run_status: str | None
    run_created_at: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class NewSchedule:
    workflow_name: str
    trigger_at: float
    input_json: str
    metadata_json: str
    priority: int | None
    method: str = "API"
    parent_workflow_run_id: str | None = None
    parent_task_run_id: str | None = None
    child_index: int | None = None
    child_key: str | None = None


_CRON_COLUMNS = """c.id, c.workflow_name, w.id, c.name, c.expression, c.input,
    c.additional_metadata, c.priority, c.method, c.next_at, c.created_at, c.updated_at"""
_CRON_FROM = "crons c LEFT JOIN workflows w ON w.name = c.workflow_name"
_SCHEDULE_COLUMNS = """s.id, s.workflow_name, w.id, s.trigger_at, s.input,
    s.additional_metadata, s.priority, s.method, s.parent_workflow_run_id, s.run_id,
    s.fired_at, r.status, r.created_at, s.created_at, s.updated_at"""
_SCHEDULE_FROM = """scheduled_runs s LEFT JOIN workflows w ON w.name = s.workflow_name
    LEFT JOIN workflow_runs r ON r.id = s.run_id"""


def _metadata_where(column: str, metadata: dict[str, str] | None) -> tuple[list[str], list[str]]:
    if not metadata:
        return [], []
    where = [f"json_extract({column}, ?) = ?" for _ in metadata]
    params: list[str] = []
    for key, value in metadata.items():
        params.extend([f'$."{key}"', value])
    return where, params


def _check_workflow(conn: sqlite3.Connection, names: Collection[str]) -> None:
    """In the transaction that stores a cron or schedule: its workflow still exists (a
    delete by another process may have come between the caller's check and now)."""
    for name in names:
        found = conn.execute(
            "SELECT 1 FROM workflows WHERE name = ? AND deleted_at IS NULL", (name,)
        ).fetchone()
        if found is None:
            raise UnknownWorkflowError(f"no workflow named {name!r} is registered")


def create_cron_txn(
    conn: sqlite3.Connection,
    workflow_name: str,
    name: str,
    expression: str,
    input_json: str,
    metadata_json: str,
    priority: int | None,
    now: float,
) -> CronRecord:
    spec = parse(expression)
    _check_workflow(conn, [workflow_name])
    cron_id = new_id()
    try:
        conn.execute(
            """INSERT INTO crons (id, workflow_name, name, expression, input,
                   additional_metadata, priority, method, next_at, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, 'API', ?, ?, ?)""",
            (
                cron_id,
                workflow_name,
                name,
                expression,
                input_json,
                metadata_json,
                priority,
                spec.next_after(now),
                now,
                now,
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise DuplicateCronNameError(
            f"workflow {workflow_name!r} already has a cron named {name!r}"
        ) from exc
    found = get_cron_txn(conn, cron_id)
    assert found is not None
    return found


def get_cron_txn(conn: sqlite3.Connection, cron_id: str) -> CronRecord | None:
    row = conn.execute(
        f"SELECT {_CRON_COLUMNS} FROM {_CRON_FROM} WHERE c.id = ?", (cron_id,)
    ).fetchone()
    return None if row is None else CronRecord(*row)


def list_crons_txn(
    conn: sqlite3.Connection,
    workflow_id: str | None,
    workflow_name: str | None,
    cron_name: str | None,
    metadata: dict[str, str] | None,
    order_by: str,
    descending: bool,
    offset: int,
    limit: int | None,
) -> tuple[list[CronRecord], int]:
    where, params = ["1 = 1"], []
    for column, value in (("w.id", workflow_id), ("c.workflow_name", workflow_name)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if cron_name is not None:
        where.append("c.name = ?")
        params.append(cron_name)
    more, values = _metadata_where("c.additional_metadata", metadata)
    where += more
    params += values
    condition = " AND ".join(where)
    total = int(
        conn.execute(f"SELECT count(*) FROM {_CRON_FROM} WHERE {condition}", params).fetchone()[0]
    )
    direction = "DESC" if descending else "ASC"
    column = {"name": "c.name", "createdAt": "c.created_at"}[order_by]
    rows = conn.execute(
        f"""SELECT {_CRON_COLUMNS} FROM {_CRON_FROM} WHERE {condition}
            ORDER BY {column} {direction}, c.id {direction} LIMIT ? OFFSET ?""",
        [*params, -1 if limit is None else limit, offset],
    ).fetchall()
    return [CronRecord(*row) for row in rows], total


def delete_cron_txn(conn: sqlite3.Connection, cron_id: str) -> bool:
    return conn.execute("DELETE FROM crons WHERE id = ?", (cron_id,)).rowcount > 0


def create_schedules_txn(
    conn: sqlite3.Connection, schedules: list[NewSchedule], now: float
) -> list[str]:
    _check_workflow(conn, {s.workflow_name for s in schedules})
    ids = [new_id() for _ in schedules]
    conn.executemany(
        """INSERT INTO scheduled_runs (id, workflow_name, trigger_at, input,
               additional_metadata, priority, method, parent_workflow_run_id,
               parent_task_run_id, child_index, child_key, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                schedule_id,
                s.workflow_name,
                s.trigger_at,
                s.input_json,
                s.metadata_json,
                s.priority,
                s.method,
                s.parent_workflow_run_id,
                s.parent_task_run_id,
                s.child_index,
                s.child_key,
                now,
                now,
            )
            for schedule_id, s in zip(ids, schedules, strict=True)
        ],
    )
    return ids


def get_schedule_txn(conn: sqlite3.Connection, schedule_id: str) -> ScheduleRecord | None:
    row = conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM {_SCHEDULE_FROM} WHERE s.id = ?", (schedule_id,)
    ).fetchone()
    return None if row is None else ScheduleRecord(*row)


# A schedule's status, as Hatchet's ScheduledRunStatus: SCHEDULED until it fires, then
# its run's (a run not started yet is QUEUED); one a paused workflow dropped, CANCELLED.
_STATUS_SQL = """CASE WHEN s.fired_at IS NULL THEN 'SCHEDULED'
    WHEN s.run_id IS NULL THEN 'CANCELLED'
    WHEN r.status = 'COMPLETED' THEN 'SUCCEEDED'
    WHEN r.status = 'QUEUED' THEN 'QUEUED'
    WHEN r.status IS NULL THEN 'PENDING'
    ELSE r.status END"""


def list_schedules_txn(
    conn: sqlite3.Connection,
    workflow_id: str | None,
    parent_workflow_run_id: str | None,
    statuses: list[str] | None,
    metadata: dict[str, str] | None,
    order_by: str,
    descending: bool,
    offset: int,
    limit: int | None,
) -> tuple[list[ScheduleRecord], int]:
    where, params = ["1 = 1"], []
    for column, value in (
        ("w.id", workflow_id),
        ("s.parent_workflow_run_id", parent_workflow_run_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if statuses:
        where.append(f"({_STATUS_SQL}) IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    more, values = _metadata_where("s.additional_metadata", metadata)
    where += more
    params += values
    condition = " AND ".join(where)
    total = int(
        conn.execute(f"SELECT count(*) FROM {_SCHEDULE_FROM} WHERE {condition}", params).fetchone()[
            0
        ]
    )
    direction = "DESC" if descending else "ASC"
    column = {"triggerAt": "s.trigger_at", "createdAt": "s.created_at"}[order_by]
    rows = conn.execute(
        f"""SELECT {_SCHEDULE_COLUMNS} FROM {_SCHEDULE_FROM} WHERE {condition}
            ORDER BY {column} {direction}, s.seq {direction} LIMIT ? OFFSET ?""",
        [*params, -1 if limit is None else limit, offset],
    ).fetchall()
    return [ScheduleRecord(*row) for row in rows], total


def reschedule_txn(
    conn: sqlite3.Connection, schedule_id: str, trigger_at: float, now: float
) -> str | None:
    """Move a schedule that has not fired; None if done, else why not."""
    cur = conn.execute(
        """UPDATE scheduled_runs SET trigger_at = ?, updated_at = ?
           WHERE id = ? AND fired_at IS NULL""",
        (trigger_at, now, schedule_id),
    )
    if cur.rowcount:
        return None
    if get_schedule_txn(conn, schedule_id) is None:
        return f"no scheduled run with id {schedule_id!r}"
    return f"scheduled run {schedule_id!r} has already fired; it cannot be rescheduled"


def delete_schedules_txn(conn: sqlite3.Connection, schedule_ids: list[str]) -> list[str]:
    """Delete schedules (fired or not: the runs they made stay); returns those found."""
    found = [
        str(row[0])
        for row in conn.execute(
            f"SELECT id FROM scheduled_runs WHERE id IN ({','.join('?' * len(schedule_ids))})",
            schedule_ids,
        )
    ]
    conn.executemany("DELETE FROM scheduled_runs WHERE id = ?", [(i,) for i in found])
    return found


def matching_schedules_txn(
    conn: sqlite3.Connection,
    workflow_id: str | None,
    parent_workflow_run_id: str | None,
    parent_task_run_id: str | None,
    metadata: dict[str, str] | None,
) -> list[str]:
    where, params = ["1 = 1"], []
    for column, value in (
        ("w.id", workflow_id),
        ("s.parent_workflow_run_id", parent_workflow_run_id),
        ("s.parent_task_run_id", parent_task_run_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    more, values = _metadata_where("s.additional_metadata", metadata)
    rows = conn.execute(
        f"""SELECT s.id FROM scheduled_runs s LEFT JOIN workflows w ON w.name = s.workflow_name
            WHERE {" AND ".join(where + more)} ORDER BY s.seq""",
        params + values,
    )
    return [str(row[0]) for row in rows]


# -- registration ------------------------------------------------------------------------


def register_txn(conn: sqlite3.Connection, shape: WorkflowShape, now: float) -> None:
    """Make the workflow's declarative crons those of its shape: new expressions start
    from now, kept ones keep their next tick (and take the new input), removed ones go."""
    existing = {
        str(expression): str(cron_id)
        for cron_id, expression in conn.execute(
            "SELECT id, expression FROM crons WHERE workflow_name = ? AND method = 'DEFAULT'",
            (shape.name,),
        )
    }
    wanted = list(dict.fromkeys(shape.on_crons))
    gone = [cron_id for expression, cron_id in existing.items() if expression not in wanted]
    conn.executemany("DELETE FROM crons WHERE id = ?", [(i,) for i in gone])
    conn.execute(
        """UPDATE crons SET input = ?, priority = ?, updated_at = ?
           WHERE workflow_name = ? AND method = 'DEFAULT' AND (input != ? OR priority != ?)""",
        (
            shape.cron_input_json,
            shape.default_priority,
            now,
            shape.name,
            shape.cron_input_json,
            shape.default_priority,
        ),
    )
    conn.executemany(
        """INSERT INTO crons (id, workflow_name, name, expression, input, additional_metadata,
               priority, method, next_at, created_at, updated_at)
           VALUES (?, ?, NULL, ?, ?, '{}', ?, 'DEFAULT', ?, ?, ?)""",
        [
            (
                new_id(),
                shape.name,
                expression,
                shape.cron_input_json,
                shape.default_priority,
                parse(expression).next_after(now),
                now,
                now,
            )
            for expression in wanted
            if expression not in existing
        ],
    )


def forget_workflow_txn(conn: sqlite3.Connection, name: str) -> None:
    """A deleted workflow's crons and pending schedules go with it."""
    conn.execute("DELETE FROM crons WHERE workflow_name = ?", (name,))
    conn.execute("DELETE FROM scheduled_runs WHERE workflow_name = ? AND fired_at IS NULL", (name,))


# -- firing ----------------------------------------------------------------------------


def fire_due_txn(
    settler: Settler,
    shapes: ShapeCache,
    served: Collection[str],
    dropping: dict[str, tuple[bool, bool]],
    live_since: float | None = None,
) -> None:
    """Fire the crons and one-time schedules of `served` workflows that are due.
    `dropping` holds, for paused workflows, whether their crons and their schedules are
    dropped (DROP) rather than queued. `live_since`: when this process last fired
    (its ticks since then were late, not missed; see `cron.due_ticks`)."""
    if not served:
        return
    names = sorted(served)
    marks = ",".join("?" * len(names))
    conn, now = settler.conn, settler.now
    runs: list[NewRun] = []
    crons = conn.execute(
        f"""SELECT c.id, c.workflow_name, c.name, c.expression, c.input, c.additional_metadata,
                   c.priority, c.next_at
            FROM crons c JOIN workflows w ON w.name = c.workflow_name AND w.deleted_at IS NULL
            WHERE c.workflow_name IN ({marks}) AND c.next_at <= ? ORDER BY c.next_at""",
        [*names, now],
    ).fetchall()
    for cron_id, name, cron_name, expression, input_json, meta_json, priority, next_at in crons:
        shape = shapes.get(conn, name)
        try:
            spec = parse(expression)
            ticks, following = due_ticks(spec, next_at, now, shape.cron_missed, live_since)
        except InvalidCronError as exc:  # stored by a hatchlite that read it differently
            if _REPORTED.first(cron_id):
                logger.error("cron %s of workflow %r does not fire: %s", cron_id, name, exc)
            conn.execute("UPDATE crons SET next_at = ? WHERE id = ?", (NEVER, cron_id))
            continue
        dropped = dropping.get(name, (False, False))[0]
        made = (
            []
            if dropped
            else [
                _cron_run(shape, tick, cron_name, expression, input_json, meta_json, priority)
                for tick in ticks
            ]
        )
        conn.execute(
            """UPDATE crons SET next_at = ?, last_tick_at = coalesce(?, last_tick_at),
                   last_run_id = coalesce(?, last_run_id) WHERE id = ?""",
            (following, ticks[-1] if ticks else None, made[-1].run_id if made else None, cron_id),
        )
        runs.extend(made)
    schedules = conn.execute(
        f"""SELECT s.id, s.workflow_name, s.input, s.additional_metadata, s.priority,
                   s.parent_workflow_run_id, s.parent_task_run_id, s.child_index, s.child_key
            FROM scheduled_runs s
            JOIN workflows w ON w.name = s.workflow_name AND w.deleted_at IS NULL
            WHERE s.workflow_name IN ({marks}) AND s.fired_at IS NULL AND s.trigger_at <= ?
            ORDER BY s.trigger_at, s.seq LIMIT ?""",
        [*names, now, FIRE_BATCH],
    ).fetchall()
    fired = []
    for schedule_id, name, input_json, meta_json, priority, *parent in schedules:
        shape = shapes.get(conn, name)
        run = None
        if not dropping.get(name, (False, False))[1]:
            run = _new_run(shape, input_json, meta_json, priority)
            run.parent_workflow_run_id, run.parent_task_run_id = parent[0], parent[1]
            run.child_index, run.child_key = parent[2], parent[3]
            runs.append(run)
        fired.append((now, run.run_id if run else None, now, schedule_id))
    conn.executemany(
        "UPDATE scheduled_runs SET fired_at = ?, run_id = ?, updated_at = ? WHERE id = ?", fired
    )
    if runs:
        _start(settler, shapes, runs)


def _start(settler: Settler, shapes: ShapeCache, runs: list[NewRun]) -> None:
    """Create the runs; one whose keys fail (a concurrency or rate-limit expression on
    its input) is left out and logged, the others start. A schedule or cron whose run
    was not made, or was an existing one (idempotency, child key), names that."""
    from hatchlite.store import runs as _runs

    conn = settler.conn
    made: dict[str, str | None] = {run.run_id: None for run in runs}
    kept = []
    for run in runs:
        try:
            key_run(shapes.get(conn, run.workflow_name), run)
            kept.append(run)
        except LimitKeyError as exc:
            _not_created(run, exc)
    for run, result in _runs.start_runs_txn(settler, shapes, kept, _not_created):
        made[run.run_id] = result.run_id
    changed = [(actual, planned) for planned, actual in made.items() if actual != planned]
    if changed:
        conn.executemany("UPDATE scheduled_runs SET run_id = ? WHERE run_id = ?", changed)
        conn.executemany("UPDATE crons SET last_run_id = ? WHERE last_run_id = ?", changed)


def _not_created(run: NewRun, exc: Exception) -> None:
    logger.warning("a scheduled run of workflow %r was not created: %s", run.workflow_name, exc)


def _new_run(shape: WorkflowShape, input_json: str, meta_json: str, priority: int | None) -> NewRun:
    run_id = new_id()
    metadata = {**json.loads(shape.default_metadata_json), **json.loads(meta_json)}
    task_ids = (
        {name: new_id() for name in shape.tasks}
        if shape.is_dag
        else {next(iter(shape.tasks)): run_id}
    )
    return NewRun(
        run_id,
        shape.name,
        input_json,
        json.dumps(metadata),
        priority if priority is not None else shape.default_priority,
        task_ids,
    )


def _cron_run(
    shape: WorkflowShape,
    tick: float,
    cron_name: str | None,
    expression: str,
    input_json: str,
    meta_json: str,
    priority: int | None,
) -> NewRun:
    run = _new_run(shape, input_json, meta_json, priority)
    metadata = json.loads(run.metadata_json)
    metadata.update(
        hatchet__cron_name=cron_name or "",
        hatchet__cron_expression=expression,
        hatchet__cron_scheduled_at=format_instant(tick),
    )
    run.metadata_json = json.dumps(metadata)
    return run


def next_due(conn: sqlite3.Connection, served: Collection[str]) -> float | None:
    """The earliest cron tick or schedule of `served` workflows not fired yet (of those
    `fire_due_txn` would fire: their workflow exists, the cron can fire)."""
    if not served:
        return None
    names = sorted(served)
    marks = ",".join("?" * len(names))
    row = conn.execute(
        f"""SELECT min(t) FROM (
                SELECT min(c.next_at) AS t FROM crons c
                JOIN workflows w ON w.name = c.workflow_name AND w.deleted_at IS NULL
                WHERE c.workflow_name IN ({marks}) AND c.next_at < ?
                UNION ALL
                SELECT min(s.trigger_at) FROM scheduled_runs s
                JOIN workflows w ON w.name = s.workflow_name AND w.deleted_at IS NULL
                WHERE s.workflow_name IN ({marks}) AND s.fired_at IS NULL)""",
        [*names, NEVER, *names],
    ).fetchone()
    return None if row[0] is None else float(row[0])
