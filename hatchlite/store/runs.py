"""Workflow runs: create, cancel, read results."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Collection

from hatchlite.exceptions import HatchliteError, NonDeterminismError, RunNotFoundError
from hatchlite.limits import LimitKeyError, key_run
from hatchlite.store.concurrency import HELD_BY_LIMIT
from hatchlite.store.eviction import restore_txn
from hatchlite.store.records import (
    ACTIVE,
    TERMINAL,
    NewRun,
    RunResult,
    TaskEvent,
    TaskRow,
    TriggerResult,
    WorkflowShape,
    chunks,
    marks,
)
from hatchlite.store.settle import SKIPPED_OUTPUT, Settler, insert_task_events
from hatchlite.store.shapes import ShapeCache

logger = logging.getLogger("hatchlite")


def trigger_txn(
    conn: sqlite3.Connection,
    runs: list[NewRun],
    shapes: ShapeCache,
    now: float,
    settler: Settler | None = None,
) -> list[TriggerResult]:
    """Insert runs and their task rows: roots QUEUED, the rest PENDING on their parents;
    roots with conditions are gated at once (through `settler`, or one of their own).

    A child run whose identity (parent task, child key or index) already exists is not
    created again; its existing id is returned instead.
    """
    results: list[TriggerResult] = []
    gated: list[tuple[str, WorkflowShape, str, str]] = []
    limited: list[tuple[NewRun, WorkflowShape]] = []
    run_rows: list[tuple[object, ...]] = []
    task_rows: list[tuple[object, ...]] = []
    created: set[str] = set()  # runs of this call (their rows are written below)
    children = _Children(conn)
    for run in runs:
        # The caller's own definition when it has one (another process may have
        # registered another version last); else the registered one.
        shape = run.shape if run.shape is not None else shapes.get(conn, run.workflow_name)
        key_run(shape, run)
        if run.parent_task_run_id is not None:
            # A child spawned before (same parent task, key or index) is that child:
            # found first, so a re-spawn neither collides with nor takes a key.
            existing = children.existing(run)
            if existing is not None:
                results.append(TriggerResult(existing[0], True, existing[1]))
                continue
        if run.idempotency_key is not None and shape.idempotency is not None:
            holder = _claim_idempotency_key(conn, shape, run, now, created)
            if holder is not None:
                results.append(TriggerResult(holder, False, "", collided=True))
                continue
        created.add(run.run_id)
        hash_ = (
            shapes.own_txn(conn, run.shape)
            if run.shape is not None
            else shapes.current_hash(conn, run.workflow_name)
        )
        shapes.note_run(run.run_id, hash_)
        row = (
            run.run_id,
            run.workflow_name,
            int(shape.is_dag),
            run.input_json,
            run.metadata_json,
            run.priority,
            run.parent_workflow_run_id,
            run.parent_task_run_id,
            run.child_index,
            run.child_key,
            run.trigger_key,
            run.triggering_event_id,
            run.filter_id,
            run.filter_payload_json,
            json.dumps(run.limit_keys) if run.limit_keys else None,
            run.routing_json,
            hash_,
            now,
        )
        run_rows.append(row)
        if run.parent_task_run_id is not None:
            children.created(run)
        if shape.limited or shape.rate_limited:
            limited.append((run, shape))
        for task in shape.tasks.values():
            if not task.parents and task.conditions:
                gated.append((run.run_id, shape, task.name, run.task_ids[task.name]))
            root = not task.parents and not task.conditions
            # A root some concurrency limit must admit first waits out of the claim's way.
            held_back = root and (bool(shape.concurrency) or bool(task.concurrency))
            task_rows.append(
                (
                    run.task_ids[task.name],
                    run.run_id,
                    run.workflow_name,
                    task.name,
                    "QUEUED" if root else "PENDING",
                    len(task.parents),
                    run.priority,
                    now,
                    HELD_BY_LIMIT if held_back else 0,
                    now + task.schedule_timeout if root else None,
                    now,
                    now if root else None,
                    run.routing_json,
                )
            )
        results.append(TriggerResult(run.run_id, False, "QUEUED"))
    if run_rows:
        conn.executemany(_INSERT_RUN, run_rows)
    conn.executemany(
        """INSERT INTO task_runs (id, workflow_run_id, workflow_name, task_name, status,
               parents_left, priority, available_at, held, schedule_deadline, created_at,
               queued_at, routing)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        task_rows,
    )
    if gated or limited:
        own = settler is None
        gate = settler or Settler(conn, shapes, now)
        for run, shape in limited:
            for task in shape.tasks.values():
                if task.rate_limits and not task.parents and not task.conditions:
                    # Raises for a key that cannot be used: the trigger stores nothing.
                    gate.render_rate_limits(
                        run.run_id,
                        shape,
                        task.name,
                        run.task_ids[task.name],
                        (run.input_json, run.metadata_json),
                    )
            if shape.limited:
                _enter_limits(gate, run, shape)
        for run_id, shape, name, task_id in gated:
            gate.parents_done(run_id, shape, name, task_id, 0)
        if own:
            gate.close()
    return results


def start_runs_txn(
    settler: Settler,
    shapes: ShapeCache,
    runs: list[NewRun],
    left_out: Callable[[NewRun, LimitKeyError], None],
) -> list[tuple[NewRun, TriggerResult]]:
    """Create runs started by something else than a caller (an event, a cron tick, a
    schedule), all at once; if one cannot start (a key of its limits fails on its
    input), each on its own, leaving that one out (`left_out` is told): the others are
    kept."""
    conn, now = settler.conn, settler.now
    try:
        made = settler.attempt(lambda: trigger_txn(conn, runs, shapes, now, settler))
        return list(zip(runs, made, strict=True))
    except LimitKeyError:
        pass
    out = []
    for run in runs:
        try:
            [one] = settler.attempt(
                functools.partial(trigger_txn, conn, [run], shapes, now, settler)
            )
        except LimitKeyError as exc:
            left_out(run, exc)
            continue
        out.append((run, one))
    return out


class _Children:
    """The child runs each parent task spawned: those stored before (read once per
    parent task) and those this trigger creates, by identity (child key, or index)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._by_parent: dict[str, dict[str, tuple[str, str, str]]] = {}

    def _of(self, parent_task_run_id: str) -> dict[str, tuple[str, str, str]]:
        known = self._by_parent.get(parent_task_run_id)
        if known is None:
            known = self._by_parent[parent_task_run_id] = {
                identity: (run_id, status, workflow_name)
                for run_id, status, workflow_name, identity in self.conn.execute(
                    """SELECT id, status, workflow_name,
                              coalesce(child_key, 'index:' || child_index)
                       FROM workflow_runs WHERE parent_task_run_id = ?""",
                    (parent_task_run_id,),
                )
            }
        return known

    def existing(self, run: NewRun) -> tuple[str, str] | None:
        """(id, status) of the child run spawned before with `run`'s identity, if any.
        One of another workflow under that identity is a non-determinism error (as in
        Hatchet): the parent spawned something else in that place before."""
        assert run.parent_task_run_id is not None
        found = self._of(run.parent_task_run_id).get(_identity(run))
        if found is None:
            return None
        run_id, status, workflow_name = found
        if workflow_name != run.workflow_name:
            what = (
                f"child key {run.child_key!r}"
                if run.child_key
                else f"child index {run.child_index}"
            )
            raise NonDeterminismError(
                run.parent_task_run_id,
                0,
                f"non-determinism: task run {run.parent_task_run_id} spawned a run of "
                f"{run.workflow_name!r} with {what}, which it gave to a run of "
                f"{workflow_name!r} before ({run_id})",
                0,
            )
        return run_id, status

    def created(self, run: NewRun) -> None:
        assert run.parent_task_run_id is not None
        self._of(run.parent_task_run_id)[_identity(run)] = (
            run.run_id,
            "QUEUED",
            run.workflow_name,
        )


def _identity(run: NewRun) -> str:
    return run.child_key if run.child_key is not None else f"index:{run.child_index}"


def _claim_idempotency_key(
    conn: sqlite3.Connection, shape: WorkflowShape, run: NewRun, now: float, created: set[str]
) -> str | None:
    """Take the run's idempotency key, or return the id of the run that holds it: one
    created within the ttl (status-based: and not ended; a run of this same call, whose
    row is not written yet, holds it too). Decided in the trigger's write transaction,
    so two processes racing on a key get one run."""
    spec = shape.idempotency
    assert spec is not None and run.idempotency_key is not None
    row = conn.execute(
        """SELECT k.run_id, k.expires_at, k.until_done, r.status FROM idempotency_keys k
           LEFT JOIN workflow_runs r ON r.id = k.run_id
           WHERE k.workflow_name = ? AND k.key = ?""",
        (shape.name, run.idempotency_key),
    ).fetchone()
    if row is not None:
        holder, expires_at, until_done, status = row
        ended = holder not in created and status in (None, *TERMINAL)  # None: purged
        held = expires_at > now and not (until_done and ended)
        if held:
            return str(holder)
    conn.execute(
        """INSERT OR REPLACE INTO idempotency_keys (workflow_name, key, run_id, expires_at,
               until_done) VALUES (?, ?, ?, ?, ?)""",
        (shape.name, run.idempotency_key, run.run_id, now + spec.ttl, int(spec.until_done)),
    )
    return None


def _enter_limits(settler: Settler, run: NewRun, shape: WorkflowShape) -> None:
    """A new run joins its workflow's limits (its roots wait until admitted), or its
    roots join their own."""
    keys = run.limit_keys or {}
    if shape.concurrency:
        settler.limits.enter_run(run.run_id, shape, keys.get("", []))
        return
    for task in shape.tasks.values():
        if task.concurrency and not task.parents and not task.conditions:
            settler.limits.ready(run.run_id, shape, task.name, run.task_ids[task.name])


_INSERT_RUN = """INSERT INTO workflow_runs (id, workflow_name, status, is_dag, input,
    additional_metadata, priority, parent_workflow_run_id, parent_task_run_id, child_index,
    child_key, trigger_key, triggering_event_id, filter_id, filter_payload, limit_keys,
    routing, shape_hash, created_at)
    VALUES (?, ?, 'QUEUED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def unserved_txn(
    conn: sqlite3.Connection, shapes: ShapeCache, workflow_names: Collection[str], wall: float
) -> set[str]:
    """The workflows of `workflow_names` whose first tasks no live worker serves."""
    from hatchlite.store.workers import live_actions_txn

    live = live_actions_txn(conn, wall)
    out: set[str] = set()
    for name in workflow_names:
        shape = shapes.get(conn, name)
        roots = [t.name for t in shape.tasks.values() if not t.parents]
        if any(f"{name.lower()}:{task}" not in live for task in roots):
            out.add(name)
    return out


def note_unserved_txn(
    conn: sqlite3.Connection,
    shapes: ShapeCache,
    runs: list[NewRun],
    results: list[TriggerResult],
    unserved: set[str],
    now: float,
) -> None:
    """A REQUEUED_NO_WORKER event on the first tasks of each new run nobody serves."""
    events: list[TaskEvent] = []
    for run, result in zip(runs, results, strict=True):
        if result.existed or result.collided or run.workflow_name not in unserved:
            continue
        message = (
            f"no running worker on this database serves workflow {run.workflow_name!r}; "
            f"the run stays queued until one that serves it starts"
        )
        for task in shapes.for_run(conn, run.run_id, run.workflow_name).tasks.values():
            if not task.parents:
                events.append(
                    (
                        run.task_ids[task.name],
                        run.run_id,
                        0,
                        "REQUEUED_NO_WORKER",
                        message,
                        None,
                        now,
                    )
                )
    insert_task_events(conn, events)


def cancel_txn(
    conn: sqlite3.Connection, ids: list[str], shapes: ShapeCache, now: float
) -> tuple[dict[str, str], list[str]]:
    """Cancel workflow runs (all their unfinished tasks) or single task runs (and their
    descendants). Returns the runs that ended and the RUNNING task ids that were cancelled."""
    unknown = _unknown_ids(conn, ids)
    if unknown:
        raise RunNotFoundError(
            f"no workflow run or task run with id {unknown[0]!r}"
            + (f" (and {len(unknown) - 1} more unknown ids)" if len(unknown) > 1 else "")
            + "; nothing was cancelled"
        )
    settler = Settler(conn, shapes, now)
    running: list[str] = []
    for target in ids:
        run = conn.execute("SELECT id FROM workflow_runs WHERE id = ?", (target,)).fetchone()
        if run is not None:
            rows = conn.execute(
                f"""SELECT id, workflow_name, task_name, status FROM task_runs
                    WHERE workflow_run_id = ? AND status IN ({marks(len(ACTIVE))})""",
                (target, *ACTIVE),
            ).fetchall()
            run_id = target
        else:
            rows = conn.execute(
                f"""SELECT id, workflow_name, task_name, status, workflow_run_id FROM task_runs
                    WHERE id = ? AND status IN ({marks(len(ACTIVE))})""",
                (target, *ACTIVE),
            ).fetchall()
            if not rows:
                continue
            run_id = rows[0][4]
        for task_id, wf_name, task_name, status, *_ in rows:
            cur = conn.execute(
                f"""UPDATE task_runs SET status = 'CANCELLED', finished_at = ?, timeout_at = NULL
                    WHERE id = ? AND status IN ({marks(len(ACTIVE))})""",
                (now, task_id, *ACTIVE),
            )
            if not cur.rowcount:
                continue
            if status == "WAITING":  # evicted: no worker holds it
                settler.record_evicted_end(task_id, "CANCELLED")
            elif status == "RUNNING":
                running.append(task_id)  # its worker records the attempt when it stops
            settler.after_terminal(run_id, wf_name, task_name, "CANCELLED", task_id)
    settler.close()
    return settler.finished_runs, running + settler.cancelled_running


def _unknown_ids(conn: sqlite3.Connection, ids: list[str]) -> list[str]:
    """The ids of `ids` that name neither a workflow run nor a task run."""
    known: set[str] = set()
    for part in chunks(list(dict.fromkeys(ids))):
        params = (*part, *part)
        known.update(
            row[0]
            for row in conn.execute(
                f"""SELECT id FROM workflow_runs WHERE id IN ({marks(len(part))})
                    UNION SELECT id FROM task_runs WHERE id IN ({marks(len(part))})""",
                params,
            )
        )
    return [i for i in ids if i not in known]


def results_txn(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, RunResult]:
    """Status and task rows of each run of `run_ids` that exists."""
    found: dict[str, tuple[str, str, bool]] = {}
    for part in chunks(run_ids):
        for run_id, wf_name, status, is_dag in conn.execute(
            f"""SELECT id, workflow_name, status, is_dag FROM workflow_runs
                WHERE id IN ({marks(len(part))})""",
            part,
        ):
            found[run_id] = (wf_name, status, bool(is_dag))
    tasks: dict[str, list[TaskRow]] = {}
    ids = list(found)
    for part in chunks(ids):
        for run_id, task_id, name, status, output, error, retry_count in conn.execute(
            f"""SELECT workflow_run_id, id, task_name, status, output, error, retry_count
                FROM task_runs WHERE workflow_run_id IN ({marks(len(part))}) ORDER BY seq""",
            part,
        ):
            tasks.setdefault(run_id, []).append(
                TaskRow(task_id, name, status, output, error, retry_count)
            )
    return {
        run_id: RunResult(run_id, wf_name, status, is_dag, tasks.get(run_id, []))
        for run_id, (wf_name, status, is_dag) in found.items()
    }


def statuses_txn(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, str]:
    """Current status of each existing run."""
    out: dict[str, str] = {}
    for part in chunks(run_ids):
        for run_id, status in conn.execute(
            f"SELECT id, status FROM workflow_runs WHERE id IN ({marks(len(part))})", part
        ):
            out[run_id] = status
    return out


def terminal_among(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, str]:
    """The runs of `run_ids` that have ended, with their status."""
    return {k: v for k, v in statuses_txn(conn, run_ids).items() if v in TERMINAL}


# -- replay ------------------------------------------------------------------------------


class RunNotFinishedError(HatchliteError, ValueError):
    """A replay named a run (or task run) that has not finished."""


def _restore_evicted(conn: sqlite3.Connection, run_id: str, only: str | None, now: float) -> bool:
    """Replaying a run that has evicted durable tasks (it is unfinished) queues them
    again at once; False if it has none (of task `only`, if given)."""
    evicted = [
        str(row[0])
        for row in conn.execute(
            "SELECT id FROM task_runs WHERE workflow_run_id = ? AND status = 'WAITING' "
            "AND (? IS NULL OR task_name = ?)",
            (run_id, only, only),
        )
    ]
    for task_id in evicted:
        restore_txn(conn, task_id, now, "replayed")
    return bool(evicted)


def replay_txn(
    conn: sqlite3.Connection,
    ids: list[str],
    shapes: ShapeCache,
    now: float,
    *,
    restore_evicted: bool = True,
) -> tuple[list[str], dict[str, str], list[str]]:
    """Queue finished runs again (by workflow run id, or by task run id for one task and
    its descendants). In a run that did not complete, its failed and cancelled tasks and
    their descendants run again and completed outputs are kept; a completed run runs
    whole. Each task run that goes again keeps its id and counts one more retry; one
    with conditions is gated by them again. An unfinished run with evicted durable tasks
    has those queued again at once (with `restore_evicted`; else it is refused like any
    unfinished run). Returns the workflow run ids replayed, and those that ended at
    once (every task they replayed was skipped)."""
    unknown = _unknown_ids(conn, ids)
    if unknown:
        raise RunNotFoundError(f"no workflow run or task run with id {unknown[0]!r}")
    replayed: list[str] = []
    events: list[TaskEvent] = []
    settler = Settler(conn, shapes, now)
    for target in ids:
        run_id, only = _replay_target(conn, target)
        status = conn.execute(
            "SELECT status, workflow_name FROM workflow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        unfinished = status[0] not in TERMINAL
        if unfinished and restore_evicted and _restore_evicted(conn, run_id, only, now):
            replayed.append(run_id)  # its evicted durable tasks go on from their history
            continue
        if status[0] not in TERMINAL:
            raise RunNotFinishedError(
                f"run {run_id} is {status[0]}; only finished runs can be replayed (nothing was "
                f"replayed)"
            )
        shape = shapes.for_run(conn, run_id, status[1])
        tasks = {
            name: (task_id, task_status, retry_count)
            for task_id, name, task_status, retry_count in conn.execute(
                "SELECT id, task_name, status, retry_count FROM task_runs WHERE workflow_run_id = ?",
                (run_id,),
            )
        }
        skipped = {
            row[0]
            for row in conn.execute(
                "SELECT task_name FROM task_runs WHERE workflow_run_id = ? AND output = ?",
                (run_id, SKIPPED_OUTPUT),
            )
        }
        if only is not None:
            blocked = [
                p for p in shape.task(only).parents if tasks.get(p, ("", "", 0))[1] != "COMPLETED"
            ]
            if blocked:
                raise RunNotFinishedError(
                    f"task {only!r} of run {run_id} cannot be replayed alone: its parent "
                    f"{blocked[0]!r} did not complete (replay the run instead)"
                )
        again = _tasks_to_replay(shape, tasks, only, status[0])
        if not again:
            # What failed is no longer in the workflow's definition: nothing would run.
            logger.warning(
                "run %s was not replayed: none of its failed or cancelled tasks is in the "
                "current definition of workflow %r",
                run_id,
                shape.name,
            )
            continue
        if shape.on_failure is not None and shape.on_failure.name in tasks:
            # It runs again only if the replay fails again.
            conn.execute(
                "DELETE FROM task_runs WHERE workflow_run_id = ? AND task_name = ?",
                (run_id, shape.on_failure.name),
            )
        ready: list[tuple[str, str, int]] = []
        for name in again:
            task_id, _, retry_count = tasks[name]
            parents = shape.task(name).parents
            waiting_on = [
                p for p in parents if p in again or tasks.get(p, ("", ""))[1] != "COMPLETED"
            ]
            skipped_parents = sum(1 for p in parents if p not in waiting_on and p in skipped)
            conn.execute(
                """UPDATE task_runs SET status = 'PENDING', parents_left = ?,
                       parents_skipped = ?, retry_count = retry_count + 1, output = NULL,
                       error = NULL, worker_id = NULL, timeout_at = NULL, started_at = NULL,
                       finished_at = NULL, lost_count = 0, lost_alone = 0, trigger_data = NULL,
                       available_at = ?, queued_at = NULL, schedule_deadline = NULL, held = 0
                   WHERE id = ?""",
                (len(waiting_on), skipped_parents, now, task_id),
            )
            conn.execute(
                "DELETE FROM durable_conditions WHERE task_run_id = ? AND node_id = 0",
                (task_id,),
            )
            if not waiting_on:
                ready.append((name, task_id, skipped_parents))
            # A durable task replays its history; a wait it had not finished is opened
            # afresh by the replay.
            conn.execute(
                "DELETE FROM durable_conditions WHERE task_run_id = ? AND node_id IN "
                "(SELECT node_id FROM durable_events WHERE task_run_id = ? AND status = 'PENDING')",
                (task_id, task_id),
            )
            conn.execute(
                "DELETE FROM durable_events WHERE task_run_id = ? AND status = 'PENDING'",
                (task_id,),
            )
            events.append(
                (task_id, run_id, retry_count + 1, "RETRIED_BY_USER", "replayed", None, now)
            )
        conn.execute(
            "UPDATE workflow_runs SET status = 'QUEUED', finished_at = NULL WHERE id = ?",
            (run_id,),
        )
        if shape.concurrency:  # the run waits for its workflow's limits again
            settler.limits.enter_run(run_id, shape, settler.limits.run_keys(run_id).get("", []))
        for name, task_id, skipped_parents in ready:  # queued, skipped or gated again
            settler.parents_done(run_id, shape, name, task_id, skipped_parents)
        replayed.append(run_id)
    insert_task_events(conn, events)
    settler.close()
    return replayed, settler.finished_runs, settler.cancelled_running


def _replay_target(conn: sqlite3.Connection, target: str) -> tuple[str, str | None]:
    """(workflow run id, the task name to replay alone with its descendants, or None)."""
    if conn.execute("SELECT 1 FROM workflow_runs WHERE id = ?", (target,)).fetchone():
        return target, None
    row = conn.execute(
        "SELECT workflow_run_id, task_name FROM task_runs WHERE id = ?", (target,)
    ).fetchone()
    return str(row[0]), str(row[1])


def _tasks_to_replay(
    shape: WorkflowShape,
    tasks: dict[str, tuple[str, str, int]],
    only: str | None,
    run_status: str,
) -> list[str]:
    """Names of the task runs to queue again, in the shape's order."""
    if only is not None:
        chosen = {only, *shape.task(only).descendants}
    elif run_status == "COMPLETED":
        chosen = set(shape.tasks)
    else:
        chosen = set()
        for name, (_, status, _) in tasks.items():
            if name in shape.tasks and status in ("FAILED", "CANCELLED"):
                chosen.add(name)
                chosen.update(shape.tasks[name].descendants)
    return [name for name in shape.tasks if name in chosen and name in tasks]
