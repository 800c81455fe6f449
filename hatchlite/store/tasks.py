"""Task-run transitions: claim, finish, retry, cascade, time out. Each helper runs
inside the caller's transaction on the database thread.

Every write is guarded by the state it expects (`WHERE status = ...`); a row count of
zero means another process or an earlier cancel got there first, and the write is
dropped.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
from collections.abc import Container
from typing import Any

from hatchlite.store import batches as _batches
from hatchlite.store import rate_limits as _rate_limits
from hatchlite.store.records import (
    ClaimedTask,
    ClaimRequest,
    LogLine,
    WorkflowShape,
    chunks,
    marks,
    shape_from_json,
)
from hatchlite.store.routing import Router
from hatchlite.store.settle import Settler
from hatchlite.store.shapes import ShapeCache

logger = logging.getLogger("hatchlite")


# -- claim ---------------------------------------------------------------------------


# Rows of one workflow's queue a claim reads at most, per slot it could fill: past rows
# this worker leaves (another worker's routing, durable rows with no durable slot free).
_CLAIM_READ_PER_SLOT = 32


def claim_txn(
    conn: sqlite3.Connection,
    req: ClaimRequest,
    shapes: ShapeCache,
    now: float,
    paused: Container[str] = (),
    wall: float = 0.0,
    settler: Settler | None = None,
) -> list[ClaimedTask]:
    """Take up to the worker's free slots of ready tasks (none of `paused` workflows).

    Each workflow's queue is read highest priority first, then by when each task run
    became ready (queued, admitted by a concurrency limit, back from a retry's backoff
    or a rate limit); the queues are interleaved by the age of their heads, so a flood
    of high-priority runs of one workflow does not starve another's older runs.

    A task run the workflow's registered definition lacks fails (no process can run
    it); one this worker has no code for is left for a worker that has (another
    process runs another version). A task run whose worker died while running it is a
    suspect: it runs alone, so a death while it runs is surely its own (see
    store/workers.py). Batch tasks' members are buffered and flushed first, a batch
    for one slot (store/batches.py)."""
    limit = req.free_slots + req.free_durable_slots
    workflows = [name for name in req.workflows if name not in paused]
    # Task runs failed here end their runs through `settler`: the step reports them.
    settler = settler or Settler(conn, shapes, now)
    if limit <= 0 or not workflows:
        return []
    picker = _Picker(conn, req, now, wall)
    batched = _claim_batches(conn, req, shapes, now, workflows, picker, settler)
    elsewhere = _Elsewhere(conn, wall)
    # The first page fits the slots most tasks take; pages grow while rows do not fit.
    first = max(req.free_slots, 1) + 16
    most = limit * _CLAIM_READ_PER_SLOT + 128
    queues = [_Queue(conn, name, now, first, most) for name in workflows]
    heads = [(head[11], head[0], n) for n, q in enumerate(queues) if (head := q.head()) is not None]
    heapq.heapify(heads)
    while heads and not picker.done:
        *_, n = heapq.heappop(heads)
        queue = queues[n]
        row = queue.pop()
        _, task_id, run_id, wf_name, task_name, retry_count, *_ = row
        shape = shapes.for_run(conn, run_id, wf_name)
        if req.runnable is not None and (wf_name, task_name) not in req.runnable:
            if not elsewhere.runnable(wf_name, task_name):
                _fail_undefined(settler, task_id, run_id, wf_name, task_name, retry_count)
            # else: left for a worker of the version that has it
        elif not _has_task(shape, task_name):
            _fail_undefined(settler, task_id, run_id, wf_name, task_name, retry_count)
        elif shape.task(task_name).batch is not None:
            pass  # a batch member another version buffers: never claimed alone
        else:
            picker.offer(row, shape)
        head = queue.head()
        if head is not None:
            heapq.heappush(heads, (head[11], head[0], n))
    for task_id, run_id, wf_name, retry_count, uses in picker.never:
        _fail_queued(
            settler,
            task_id,
            run_id,
            wf_name,
            retry_count,
            f"its rate limits {uses} take more units than a limit now allows (it was "
            f"lowered with rate_limits.put since the task was queued): it could never run",
        )
    # Each claim is written on its own: one that a failure above cancelled (a task run
    # of the same run) is dropped, not started.
    chosen = [
        claimed
        for claimed, update in zip(picker.chosen, picker.updates, strict=True)
        if conn.execute(
            """UPDATE task_runs SET status = 'RUNNING', worker_id = ?, started_at = ?,
                   timeout_at = ?
               WHERE seq = ? AND status = 'QUEUED'""",
            update,
        ).rowcount
    ]
    chosen += batched
    if not chosen:
        return []
    durable = [c for c in chosen if c.is_durable]
    if durable:
        _attach_history(conn, durable)
    run_ids = list({c.run_id: None for c in chosen})
    conn.executemany(
        "UPDATE workflow_runs SET status = 'RUNNING', started_at = ? "
        "WHERE id = ? AND status = 'QUEUED'",
        [(now, run_id) for run_id in run_ids],
    )
    _attach_run_data(conn, shapes, chosen, run_ids, picker.dag_runs)
    return chosen


def _claim_batches(
    conn: sqlite3.Connection,
    req: ClaimRequest,
    shapes: ShapeCache,
    now: float,
    workflows: list[str],
    picker: _Picker,
    settler: Settler,
) -> list[ClaimedTask]:
    """Buffer the new members of the batch tasks the worker serves, and flush the
    batches that are due, each for one of the worker's free slots."""
    out: list[ClaimedTask] = []

    def fail(task_id: str, run_id: str, wf_name: str, retry_count: int, message: str) -> None:
        _fail_queued(settler, task_id, run_id, wf_name, retry_count, message)

    for wf_name, task_name, spec in _batches.batch_tasks(conn, shapes, req):
        if wf_name not in workflows:
            continue  # paused
        _batches.intake_txn(conn, wf_name, task_name, spec, now, fail)
        if picker.free < 1:
            continue
        shape = shapes.get(conn, wf_name)
        timeout = shape.task(task_name).execution_timeout
        busy = req.busy or bool(out)
        for members in _batches.flush_txn(
            conn, wf_name, task_name, spec, req, now, picker.free, timeout, busy
        ):
            picker.free -= 1
            out.extend(members)
            if shape.is_dag:
                picker.dag_runs.extend(m.run_id for m in members)
            if members[0].suspect:
                picker.done = True  # it runs alone: take nothing more
                return out
    return out


class _Queue:
    """One workflow's ready task runs, highest priority then longest ready first, read a
    page at a time (after the last row read: rows failed or claimed meanwhile do not
    shift it), each page four times the last, up to `most` rows in all."""

    def __init__(
        self, conn: sqlite3.Connection, workflow_name: str, now: float, page: int, most: int
    ):
        self.conn = conn
        self.workflow_name = workflow_name
        self.now = now
        self.page = page
        self.left = most
        self.rows: list[tuple[Any, ...]] = []
        self.at = 0
        self.more = True
        self.after: tuple[int, float, int] | None = None  # (priority, ready at, seq) last read

    def head(self) -> tuple[Any, ...] | None:
        if self.at >= len(self.rows) and not self._fetch():
            return None
        return self.rows[self.at]

    def pop(self) -> tuple[Any, ...]:
        row = self.rows[self.at]
        self.at += 1
        return row

    def _fetch(self) -> bool:
        if not self.more or self.left <= 0:
            return False
        page = min(self.page, self.left)
        after, params = "", [self.workflow_name, self.now]
        if self.after is not None:
            priority, ready, seq = self.after
            after = """AND (priority < ? OR (priority = ? AND (available_at > ?
                        OR (available_at = ? AND seq > ?))))"""
            params += [priority, priority, ready, ready, seq]
        self.rows = self.conn.execute(
            f"""SELECT seq, id, workflow_run_id, workflow_name, task_name, retry_count,
                       priority, queued_at, lost_count, rate_limits, routing, available_at
                FROM task_runs
                WHERE status = 'QUEUED' AND held = 0 AND workflow_name = ?
                  AND available_at <= ? {after}
                ORDER BY priority DESC, available_at, seq LIMIT ?""",
            (*params, page),
        ).fetchall()
        self.at = 0
        self.left -= page
        self.page *= 4
        self.more = len(self.rows) == page
        if self.rows:
            last = self.rows[-1]
            self.after = (last[6], last[11], last[0])
        return bool(self.rows)


def _has_task(shape: WorkflowShape, name: str) -> bool:
    return name in shape.tasks or (shape.on_failure is not None and shape.on_failure.name == name)


class _Elsewhere:
    """Whether a task run this worker has no code for can run elsewhere: a live worker
    serves it, or the workflow's registered definition (read afresh: another process
    may have registered a newer version) has it. Read once per claim, when needed."""

    def __init__(self, conn: sqlite3.Connection, wall: float) -> None:
        self.conn = conn
        self.wall = wall
        self._live: set[str] | None = None
        self._registered: dict[str, WorkflowShape | None] = {}

    def runnable(self, workflow_name: str, task_name: str) -> bool:
        from hatchlite.store.workers import live_actions_txn

        if self._live is None:
            self._live = live_actions_txn(self.conn, self.wall)
        if f"{workflow_name.lower()}:{task_name}" in self._live:
            return True
        if workflow_name not in self._registered:
            row = self.conn.execute(
                "SELECT shape FROM workflows WHERE name = ?", (workflow_name,)
            ).fetchone()
            self._registered[workflow_name] = shape_from_json(row[0]) if row else None
        shape = self._registered[workflow_name]
        return shape is not None and _has_task(shape, task_name)


class _Picker:
    """The claims of one worker in one step, within its free slots."""

    def __init__(
        self, conn: sqlite3.Connection, req: ClaimRequest, now: float, wall: float
    ) -> None:
        self.conn = conn
        self.req = req
        self.now = now
        self.router = Router(conn, req, wall)
        # Task runs a rate limit can never admit (lowered below their units since).
        self.never: list[tuple[str, str, str, int, list[tuple[str, int]]]] = []
        self.free = req.free_slots
        self.free_durable = req.free_durable_slots
        self.chosen: list[ClaimedTask] = []
        self.updates: list[tuple[object, ...]] = []
        self.dag_runs: list[str] = []
        self.done = False

    def offer(self, row: tuple[Any, ...], shape: WorkflowShape) -> None:
        (
            seq,
            task_id,
            run_id,
            wf_name,
            task_name,
            retry_count,
            priority,
            queued_at,
            lost,
            rl,
            route,
            _,
        ) = row
        task = shape.task(task_name)
        if lost and (self.req.busy or self.chosen):
            self.done = True  # it runs alone: take nothing more until this worker drains
            return
        if task.is_durable:
            if self.free_durable < 1:
                return
        elif self.free < task.slot_cost:
            return
        routed = route is not None or task.labels or shape.sticky is not None
        if routed and not self.router.allows(shape, task, run_id, route):
            return  # left for a worker it prefers or requires
        if rl is not None:
            uses = _rate_limits.uses_of(rl)
            retry_at = _rate_limits.take_txn(self.conn, uses, self.now)
            if retry_at == _rate_limits.NEVER:
                self.never.append((task_id, run_id, wf_name, retry_count, uses))
                return
            if retry_at is not None:
                _rate_limits.park_txn(
                    self.conn,
                    task_id,
                    run_id,
                    retry_count,
                    retry_at,
                    self.now,
                    [k for k, _ in uses],
                )
                return
        if lost:
            self.done = True  # it is all this worker takes now
        if routed:
            self.router.claimed(shape, run_id, route)
        if task.is_durable:
            self.free_durable -= 1
        else:
            self.free -= task.slot_cost
        timeout_at = self.now + task.execution_timeout if task.execution_timeout else None
        self.updates.append((self.req.worker_id, self.now, timeout_at, seq))
        self.chosen.append(
            ClaimedTask(
                task_id=task_id,
                run_id=run_id,
                workflow_name=wf_name,
                task_name=task_name,
                retry_count=retry_count,
                priority=priority,
                input_json="",
                metadata_json="",
                timeout_at=timeout_at,
                worker_id=self.req.worker_id,
                started_at=self.now,
                queued_at=queued_at,
                is_durable=task.is_durable,
                suspect=bool(lost),
            )
        )
        if shape.is_dag:
            self.dag_runs.append(run_id)
        if self.free <= 0 and self.free_durable <= 0:
            self.done = True


def _fail_undefined(
    settler: Settler,
    task_id: str,
    run_id: str,
    wf_name: str,
    task_name: str,
    retry_count: int,
) -> None:
    """A queued task no process can run (no running worker serves it, and its
    workflow's registered definition does not have it): fail it and end its run,
    rather than leave it queued for nobody."""
    _fail_queued(
        settler,
        task_id,
        run_id,
        wf_name,
        retry_count,
        f"task {task_name!r} is not in the registered definition of workflow {wf_name!r} "
        f"and no running worker serves it (was it removed or renamed while runs were "
        f"queued?)",
    )


def _fail_queued(
    settler: Settler,
    task_id: str,
    run_id: str,
    wf_name: str,
    retry_count: int,
    message: str,
) -> None:
    """Fail a queued task run that can never run, and end its run (now: the claims
    that follow must see its other task runs cancelled)."""
    settler.fail_orphan(task_id, run_id, wf_name, retry_count, message, was="QUEUED")
    settler.close()


def _attach_history(conn: sqlite3.Connection, durable: list[ClaimedTask]) -> None:
    from hatchlite.store.durable import load_history_txn

    ids = [c.task_id for c in durable]
    history = load_history_txn(conn, ids)
    starts: dict[str, int] = {}
    for part in chunks(ids):
        for task_id, count in conn.execute(
            f"""SELECT task_run_id, count(*) FROM task_attempts
                WHERE task_run_id IN ({marks(len(part))}) GROUP BY task_run_id""",
            part,
        ):
            starts[task_id] = count
        for task_id, count in conn.execute(  # an eviction ends an invocation too
            f"""SELECT task_run_id, count(*) FROM task_events
                WHERE task_run_id IN ({marks(len(part))}) AND event_type = 'DURABLE_EVICTED'
                GROUP BY task_run_id""",
            part,
        ):
            starts[task_id] = starts.get(task_id, 0) + count
    for claimed in durable:
        claimed.history = history.get(claimed.task_id, [])
        claimed.invocation_count = starts.get(claimed.task_id, 0) + 1


def _attach_run_data(
    conn: sqlite3.Connection,
    shapes: ShapeCache,
    chosen: list[ClaimedTask],
    run_ids: list[str],
    dag_runs: list[str],
) -> None:
    runs: dict[str, tuple[Any, ...]] = {}
    for part in chunks(run_ids):
        for row in conn.execute(
            f"""SELECT id, input, additional_metadata, parent_workflow_run_id,
                       parent_task_run_id, child_index, child_key, triggering_event_id,
                       filter_payload
                FROM workflow_runs WHERE id IN ({marks(len(part))})""",
            part,
        ):
            runs[row[0]] = row[1:]
    gated = [
        c.task_id
        for c in chosen
        if shapes.for_run(conn, c.run_id, c.workflow_name).task(c.task_name).conditions
    ]
    trigger_data: dict[str, str | None] = {}
    for part in chunks(gated):
        trigger_data.update(
            conn.execute(
                f"SELECT id, trigger_data FROM task_runs WHERE id IN ({marks(len(part))})", part
            ).fetchall()
        )
    outputs: dict[str, dict[str, str | None]] = {}
    errors: dict[str, dict[str, str]] = {}
    if dag_runs:
        unique = list(dict.fromkeys(dag_runs))
        for part in chunks(unique):
            for run_id, name, status, output, error in conn.execute(
                f"""SELECT workflow_run_id, task_name, status, output, error FROM task_runs
                    WHERE workflow_run_id IN ({marks(len(part))})
                      AND status IN ('COMPLETED', 'FAILED')""",
                part,
            ):
                if status == "COMPLETED":
                    outputs.setdefault(run_id, {})[name] = output
                elif error is not None:
                    errors.setdefault(run_id, {})[name] = error
    for claimed in chosen:
        data = runs[claimed.run_id]
        claimed.input_json, claimed.metadata_json = data[0], data[1]
        claimed.parent_workflow_run_id, claimed.parent_task_run_id = data[2], data[3]
        claimed.child_index, claimed.child_key = data[4], data[5]
        claimed.triggering_event_id, claimed.filter_payload_json = data[6], data[7]
        claimed.trigger_data_json = trigger_data.get(claimed.task_id)
        run_outputs = outputs.get(claimed.run_id, {})
        shape = shapes.for_run(conn, claimed.run_id, claimed.workflow_name)
        if shape.on_failure is not None and claimed.task_name == shape.on_failure.name:
            claimed.parent_outputs = run_outputs  # the on-failure task sees every task
        else:
            parents = shape.task(claimed.task_name).parents
            claimed.parent_outputs = {p: run_outputs[p] for p in parents if p in run_outputs}
        claimed.parent_errors = errors.get(claimed.run_id, {})


def expire_schedule_timeouts(settler: Settler) -> list[str]:
    """Cancel queued tasks that waited past their schedule timeout."""
    conn = settler.conn
    rows = conn.execute(
        """SELECT id, workflow_run_id, workflow_name, task_name, retry_count, queued_at
           FROM task_runs WHERE status = 'QUEUED' AND schedule_deadline <= ?""",
        (settler.now,),
    ).fetchall()
    expired = []
    for task_id, run_id, wf_name, task_name, retry_count, queued_at in rows:
        cur = conn.execute(
            "UPDATE task_runs SET status = 'CANCELLED', finished_at = ? "
            "WHERE id = ? AND status = 'QUEUED'",
            (settler.now, task_id),
        )
        if cur.rowcount:
            settler.record_attempt(
                task_id, retry_count, "SCHEDULING_TIMED_OUT", None, None, None, queued_at
            )
            settler.after_terminal(run_id, wf_name, task_name, "CANCELLED", task_id)
            expired.append(task_id)
    return expired


def next_deadline(conn: sqlite3.Connection, now: float, shapes: ShapeCache) -> float | None:
    """The earliest future instant at which queued work changes (backoff ends, a
    schedule timeout fires, a batch's interval ends)."""
    row = conn.execute(
        """SELECT (SELECT min(available_at) FROM task_runs
                   WHERE status = 'QUEUED' AND available_at > ?),
                  (SELECT min(schedule_deadline) FROM task_runs WHERE status = 'QUEUED')""",
        (now,),
    ).fetchone()
    candidates = [v for v in row if v is not None]
    from hatchlite.store.durable import next_timer

    timer = next_timer(conn)
    flush = _batches.next_flush(conn, shapes, now)
    if timer is not None:
        candidates.append(timer)
    if flush is not None:
        candidates.append(flush)
    return min(candidates) if candidates else None


def insert_logs(conn: sqlite3.Connection, logs: list[LogLine]) -> None:
    if logs:
        conn.executemany(
            """INSERT INTO task_logs (task_run_id, retry_count, level, message, created_at)
               VALUES (?, ?, ?, ?, ?)""",
            [(lg.task_id, lg.retry_count, lg.level, lg.message, lg.created_at) for lg in logs],
        )


def cancelled_among(conn: sqlite3.Connection, task_ids: list[str]) -> list[str]:
    """The task runs of `task_ids` that are no longer RUNNING (cancelled elsewhere)."""
    out: list[str] = []
    for part in chunks(task_ids):
        out.extend(
            row[0]
            for row in conn.execute(
                f"""SELECT id FROM task_runs WHERE id IN ({marks(len(part))})
                    AND status NOT IN ('RUNNING', 'WAITING')""",
                part,
            )
        )
    return out
