"""Reading runs back: filtered, paged lists of runs and task runs, their attempts, task
events and logs, and counts. Read-only (no write lock); every query is served by an
index (see tests/test_runs_api.py for the query plans).

Internal task states stay internal: PENDING task runs (waiting for their parents) are
not listed, as Hatchet creates a task only when its parents are done.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from hatchlite.store.records import WorkflowShape, chunks, marks
from hatchlite.store.shapes import ShapeCache

# -- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    workflow_name: str
    workflow_id: str | None
    status: str
    is_dag: bool
    input_json: str
    metadata_json: str
    priority: int
    parent_workflow_run_id: str | None
    parent_task_run_id: str | None
    child_index: int | None
    child_key: str | None
    triggering_event_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    seq: int
    id: str
    workflow_run_id: str
    workflow_name: str
    task_name: str
    status: str
    retry_count: int
    priority: int
    worker_id: str | None
    output_json: str | None
    error_json: str | None
    created_at: float
    queued_at: float | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: int
    task_run_id: str
    retry_count: int
    status: str
    worker_id: str | None
    error_json: str | None
    queued_at: float | None
    started_at: float | None
    finished_at: float


@dataclass(frozen=True, slots=True)
class TaskEventRecord:
    id: int
    task_run_id: str
    workflow_run_id: str
    retry_count: int
    event_type: str
    message: str | None
    worker_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class LogRecord:
    id: int
    task_run_id: str
    retry_count: int
    level: str
    message: str
    created_at: float


@dataclass(slots=True)
class RunQuery:
    """Filters of `runs.list` (times are epoch seconds; statuses are Hatchet's five)."""

    since: float
    until: float | None = None
    statuses: list[str] | None = None
    workflow_ids: list[str] | None = None
    additional_metadata: dict[str, str] | None = None
    parent_task_external_id: str | None = None
    triggering_event_external_id: str | None = None
    worker_id: str | None = None
    only_tasks: bool = False
    offset: int = 0
    limit: int | None = 50


@dataclass(slots=True)
class RunPage:
    runs: list[RunRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)  # only_tasks rows
    total: int = 0


# -- columns -----------------------------------------------------------------------------

_RUN_COLUMNS = """r.id, r.workflow_name, w.id, r.status, r.is_dag, r.input,
    r.additional_metadata, r.priority, r.parent_workflow_run_id, r.parent_task_run_id,
    r.child_index, r.child_key, r.triggering_event_id, r.created_at, r.started_at,
    r.finished_at"""
_RUN_FROM = "workflow_runs r LEFT JOIN workflows w ON w.name = r.workflow_name"

_TASK_COLUMNS = """t.seq, t.id, t.workflow_run_id, t.workflow_name, t.task_name, t.status,
    t.retry_count, t.priority, t.worker_id, t.output, t.error, t.created_at, t.queued_at,
    t.started_at, t.finished_at"""


def _run(row: tuple[object, ...]) -> RunRecord:
    values = list(row)
    values[4] = bool(values[4])
    return RunRecord(*values)  # type: ignore[arg-type]


def _task(row: tuple[object, ...]) -> TaskRecord:
    return TaskRecord(*row)  # type: ignore[arg-type]


# -- lists -------------------------------------------------------------------------------


def workflow_names(conn: sqlite3.Connection, ids: list[str]) -> list[str]:
    names: list[str] = []
    for part in chunks(ids):
        names.extend(
            row[0]
            for row in conn.execute(
                f"SELECT name FROM workflows WHERE id IN ({marks(len(part))})", part
            )
        )
    return names


def _run_filters(
    conn: sqlite3.Connection, q: RunQuery, table: str, alias: str = "r"
) -> tuple[list[str], list[object]] | None:
    """WHERE clauses: the time window and workflows on `table` (the alias of
    workflow_runs or task_runs, which both have `created_at` and `workflow_name`), the
    rest on workflow_runs `alias`; None when nothing can match."""
    where = [f"{table}.created_at >= ?"]
    params: list[object] = [q.since]
    if q.until is not None:
        where.append(f"{table}.created_at <= ?")
        params.append(q.until)
    if q.workflow_ids is not None:
        names = workflow_names(conn, q.workflow_ids)
        if not names:
            return None
        where.append(f"{table}.workflow_name IN ({marks(len(names))})")
        params.extend(names)
    if q.parent_task_external_id is not None:
        where.append(f"{alias}.parent_task_run_id = ?")
        params.append(q.parent_task_external_id)
    if q.triggering_event_external_id is not None:
        where.append(f"{alias}.triggering_event_id = ?")
        params.append(q.triggering_event_external_id)
    if q.additional_metadata:
        # Any pair matches (Hatchet's default); values compare as the strings Hatchet
        # sends them as.
        pairs = []
        for key, value in q.additional_metadata.items():
            pairs.append(
                f"""EXISTS (SELECT 1 FROM json_each({alias}.additional_metadata) m
                    WHERE m.key = ? AND (CASE WHEN m.type IN ('true', 'false') THEN m.type
                                              ELSE CAST(m.value AS TEXT) END) = ?)"""
            )
            params.extend((key, str(value)))
        where.append("(" + " OR ".join(pairs) + ")")
    return where, params


def _task_source(q: RunQuery) -> str:
    """task_runs, joined to their runs only when a filter needs the run's columns."""
    if q.additional_metadata or q.parent_task_external_id or q.triggering_event_external_id:
        return "task_runs t JOIN workflow_runs r ON r.id = t.workflow_run_id"
    return "task_runs t"


def _statuses(statuses: list[str] | None, alias: str, tasks: bool) -> tuple[str, list[object]]:
    if not statuses:
        return "", []
    wanted = set(statuses)
    if tasks and "RUNNING" in wanted:
        wanted.add("WAITING")  # a durable task suspended in a wait shows as RUNNING
    ordered = sorted(wanted)
    return f" AND {alias}.status IN ({marks(len(ordered))})", list(ordered)


def list_runs_txn(conn: sqlite3.Connection, q: RunQuery) -> RunPage:
    """One page of workflow runs (newest first) matching `q`, and how many match."""
    filters = _run_filters(conn, q, "r")
    if filters is None:
        return RunPage()
    where, params = filters
    status_sql, status_params = _statuses(q.statuses, "r", tasks=False)
    worker_sql, worker_params = "", []
    if q.worker_id is not None:
        worker_sql = " AND EXISTS (SELECT 1 FROM task_runs t WHERE t.workflow_run_id = r.id AND t.worker_id = ?)"
        worker_params = [q.worker_id]
    condition = " AND ".join(where) + status_sql + worker_sql
    all_params = [*params, *status_params, *worker_params]
    total = int(
        conn.execute(
            f"SELECT count(*) FROM workflow_runs r WHERE {condition}", all_params
        ).fetchone()[0]
    )
    rows = conn.execute(
        f"""SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE {condition}
            ORDER BY r.created_at DESC, r.seq DESC LIMIT ? OFFSET ?""",
        [*all_params, -1 if q.limit is None else q.limit, q.offset],
    ).fetchall()
    return RunPage(runs=[_run(row) for row in rows], total=total)


def list_tasks_txn(conn: sqlite3.Connection, q: RunQuery) -> RunPage:
    """One page of task runs (newest first) whose runs match `q`, and their runs."""
    # The time window applies to the task's own creation, served by task_runs_created.
    filters = _run_filters(conn, q, "t")
    if filters is None:
        return RunPage()
    where, params = filters
    status_sql, status_params = _statuses(q.statuses, "t", tasks=True)
    worker_sql, worker_params = "", []
    if q.worker_id is not None:
        worker_sql, worker_params = " AND t.worker_id = ?", [q.worker_id]
    condition = " AND ".join(where) + " AND t.status != 'PENDING'" + status_sql + worker_sql
    all_params = [*params, *status_params, *worker_params]
    source = _task_source(q)
    total = int(
        conn.execute(f"SELECT count(*) FROM {source} WHERE {condition}", all_params).fetchone()[0]
    )
    rows = conn.execute(
        f"""SELECT {_TASK_COLUMNS} FROM {source} WHERE {condition}
            ORDER BY t.created_at DESC, t.seq DESC LIMIT ? OFFSET ?""",
        [*all_params, -1 if q.limit is None else q.limit, q.offset],
    ).fetchall()
    tasks = [_task(row) for row in rows]
    runs = runs_txn(conn, list({t.workflow_run_id: None for t in tasks}))
    return RunPage(runs=list(runs.values()), tasks=tasks, total=total)


# -- single items and what hangs off them -------------------------------------------------


def runs_txn(conn: sqlite3.Connection, run_ids: Iterable[str]) -> dict[str, RunRecord]:
    out: dict[str, RunRecord] = {}
    for part in chunks(list(run_ids)):
        for row in conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE r.id IN ({marks(len(part))})", part
        ):
            record = _run(row)
            out[record.id] = record
    return out


def task_txn(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    row = conn.execute(f"SELECT {_TASK_COLUMNS} FROM task_runs t WHERE t.id = ?", (task_id,))
    found = row.fetchone()
    return None if found is None else _task(found)


def tasks_of_runs_txn(
    conn: sqlite3.Connection, run_ids: list[str], *, pending: bool = False
) -> dict[str, list[TaskRecord]]:
    """The task runs of each run, in creation order (PENDING ones only if asked)."""
    out: dict[str, list[TaskRecord]] = {}
    skip = "" if pending else " AND t.status != 'PENDING'"
    for part in chunks(run_ids):
        for row in conn.execute(
            f"""SELECT {_TASK_COLUMNS} FROM task_runs t
                WHERE t.workflow_run_id IN ({marks(len(part))}){skip} ORDER BY t.seq""",
            part,
        ):
            task = _task(row)
            out.setdefault(task.workflow_run_id, []).append(task)
    return out


def spawned_counts_txn(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, int]:
    """How many child runs each task run spawned."""
    out: dict[str, int] = {}
    for part in chunks(task_ids):
        for task_id, count in conn.execute(
            f"""SELECT parent_task_run_id, count(*) FROM workflow_runs
                WHERE parent_task_run_id IN ({marks(len(part))}) GROUP BY parent_task_run_id""",
            part,
        ):
            out[task_id] = int(count)
    return out


def attempts_txn(conn: sqlite3.Connection, task_ids: list[str]) -> list[AttemptRecord]:
    out: list[AttemptRecord] = []
    for part in chunks(task_ids):
        out.extend(
            AttemptRecord(*row)
            for row in conn.execute(
                f"""SELECT id, task_run_id, retry_count, status, worker_id, error, queued_at,
                           started_at, finished_at
                    FROM task_attempts WHERE task_run_id IN ({marks(len(part))})
                    ORDER BY id""",
                part,
            )
        )
    return out


def task_events_txn(conn: sqlite3.Connection, run_ids: list[str]) -> list[TaskEventRecord]:
    out: list[TaskEventRecord] = []
    for part in chunks(run_ids):
        out.extend(
            TaskEventRecord(*row)
            for row in conn.execute(
                f"""SELECT id, task_run_id, workflow_run_id, retry_count, event_type, message,
                           worker_id, created_at
                    FROM task_events WHERE workflow_run_id IN ({marks(len(part))})
                    ORDER BY id""",
                part,
            )
        )
    return out


def logs_txn(
    conn: sqlite3.Connection,
    task_id: str,
    limit: int,
    since: float | None,
    until: float | None,
) -> list[LogRecord]:
    where, params = ["task_run_id = ?"], [task_id]
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)  # type: ignore[arg-type]
    if until is not None:
        where.append("created_at <= ?")
        params.append(until)  # type: ignore[arg-type]
    return [
        LogRecord(*row)
        for row in conn.execute(
            f"""SELECT id, task_run_id, retry_count, level, message, created_at FROM task_logs
                WHERE {" AND ".join(where)} ORDER BY id LIMIT ?""",
            [*params, limit],
        )
    ]


def task_counts_txn(conn: sqlite3.Connection, q: RunQuery) -> dict[str, int]:
    """Task runs per public status among the runs `q` matches (PENDING not counted)."""
    filters = _run_filters(conn, q, "t")
    if filters is None:
        return {}
    where, params = filters
    counts: dict[str, int] = {}
    for status, count in conn.execute(
        f"""SELECT t.status, count(*) FROM {_task_source(q)}
            WHERE {" AND ".join(where)} AND t.status != 'PENDING' GROUP BY t.status""",
        params,
    ):
        public = "RUNNING" if status == "WAITING" else str(status)
        counts[public] = counts.get(public, 0) + int(count)
    return counts


def active_counts_txn(conn: sqlite3.Connection) -> dict[tuple[str, str, str], int]:
    """(workflow, task, status) -> count of queued and of running task runs (each query
    served by its partial index; WAITING is never written, see schema.py)."""
    out: dict[tuple[str, str, str], int] = {}
    for status in ("QUEUED", "RUNNING"):
        for wf, task, count in conn.execute(
            f"""SELECT workflow_name, task_name, count(*) FROM task_runs
                WHERE status = '{status}' GROUP BY workflow_name, task_name""",
        ):
            out[(wf, task, status)] = int(count)
    return out


# -- bundles: what one API call reads, in one job ----------------------------------------


@dataclass(slots=True)
class RunBundle:
    run: RunRecord
    tasks: list[TaskRecord]  # created ones (not PENDING)
    all_tasks: list[TaskRecord]
    shape: WorkflowShape | None
    spawned: dict[str, int]
    attempts: list[AttemptRecord]
    events: list[TaskEventRecord]


def _shape(
    conn: sqlite3.Connection, shapes: ShapeCache, name: str, run_id: str | None = None
) -> WorkflowShape | None:
    try:
        return shapes.get(conn, name) if run_id is None else shapes.for_run(conn, run_id, name)
    except LookupError:
        return None  # the workflow was deleted


def run_bundle_txn(conn: sqlite3.Connection, shapes: ShapeCache, run_id: str) -> RunBundle | None:
    run = runs_txn(conn, [run_id]).get(run_id)
    if run is None:
        return None
    all_tasks = tasks_of_runs_txn(conn, [run_id], pending=True).get(run_id, [])
    ids = [t.id for t in all_tasks]
    return RunBundle(
        run=run,
        tasks=[t for t in all_tasks if t.status != "PENDING"],
        all_tasks=all_tasks,
        shape=_shape(conn, shapes, run.workflow_name, run_id),
        spawned=spawned_counts_txn(conn, ids),
        attempts=attempts_txn(conn, ids),
        events=task_events_txn(conn, [run_id]),
    )


@dataclass(slots=True)
class PageBundle:
    page: RunPage
    tasks_by_run: dict[str, list[TaskRecord]]
    shapes: dict[str, WorkflowShape | None]  # by run id
    spawned: dict[str, int]


def page_bundle_txn(conn: sqlite3.Connection, shapes: ShapeCache, q: RunQuery) -> PageBundle:
    page = list_tasks_txn(conn, q) if q.only_tasks else list_runs_txn(conn, q)
    run_ids = [r.id for r in page.runs]
    tasks_by_run = {} if q.only_tasks else tasks_of_runs_txn(conn, run_ids)
    task_ids = [t.id for t in page.tasks] or [
        t.id for tasks in tasks_by_run.values() for t in tasks
    ]
    return PageBundle(
        page=page,
        tasks_by_run=tasks_by_run,
        # By run id: each run's own shape (the same object for runs of one version).
        shapes={r.id: _shape(conn, shapes, r.workflow_name, r.id) for r in page.runs},
        spawned=spawned_counts_txn(conn, task_ids),
    )


def task_bundle_txn(
    conn: sqlite3.Connection, shapes: ShapeCache, task_id: str
) -> tuple[TaskRecord, RunRecord, WorkflowShape | None, int] | None:
    task = task_txn(conn, task_id)
    if task is None:
        return None
    run = runs_txn(conn, [task.workflow_run_id])[task.workflow_run_id]
    spawned = spawned_counts_txn(conn, [task_id]).get(task_id, 0)
    return task, run, _shape(conn, shapes, run.workflow_name, run.id), spawned
