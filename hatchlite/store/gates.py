"""Task conditions: a DAG task whose parents are done (a root: at run creation) and that
has `wait_for`, `skip_if` or `cancel_if` conditions waits PENDING, holding no slot, until
one of the three actions is met: it is then queued, skipped or cancelled.

The conditions are rows of `durable_conditions` with node id 0 and an action, the same
rows durable waits use, so one path meets them: timers fire in the scheduler's step and
pushed events match them by key (see durable.py). Parent conditions are decided at once,
when the gate opens (the parents' outputs are known then).

Which action wins: each action is met when every group of its conditions has a met
member (an `or_` is a group). The action met first wins, by when its conditions were met
(a timer at its wake time, an event when it was pushed), so a step after downtime
decides as the engine would have had it been up; at the same moment, cancel beats skip
beats queue. A task with no `wait_for` conditions is queued as soon as neither skip nor
cancel is met. A `wait_for` that can never be met (its remaining conditions are parent
conditions that were false) skips the task.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from hatchlite.cel import evaluate
from hatchlite.store.durable import ConditionSpec, earlier_event
from hatchlite.store.records import ConditionDef, WorkflowShape
from hatchlite.store.settle import Settler
from hatchlite.types import duration_expr

logger = logging.getLogger("hatchlite")

MET, OPEN, UNMET = "MET", "OPEN", "UNMET"


def open_gate_txn(
    settler: Settler, run_id: str, shape: WorkflowShape, name: str, task_id: str
) -> None:
    """Record the conditions of task `name` (its parents are done) and settle it."""
    conn, now = settler.conn, settler.now
    row = conn.execute("SELECT status FROM task_runs WHERE id = ?", (task_id,)).fetchone()
    if row is None or row[0] != "PENDING":
        return  # ended meanwhile (a concurrency limit cancelled its run)
    conditions = shape.tasks[name].conditions
    outputs = _parent_outputs(settler, run_id, conditions)
    rows = []
    for idx, cond in enumerate(conditions):
        status, payload, wake_at = OPEN, None, None
        # Met at once: met when the gate opened (an earlier event included: the task
        # could not be decided before its parents were done).
        if cond.kind == "SLEEP":
            wake_at = now + (cond.duration or 0.0)
            payload = json.dumps(
                {"sleep_duration": duration_expr(timedelta(seconds=cond.duration or 0.0))}
            )
            status = MET if wake_at <= now else OPEN
        elif cond.kind == "EVENT" and cond.since is not None:
            spec = ConditionSpec(
                cond.group,
                "EVENT",
                cond.readable_key,
                event_key=cond.event_key,
                expression=cond.expression,
                scope=cond.scope,
                since=cond.since,
            )
            found = earlier_event(conn, spec, (task_id, 0, idx))
            if found is not None:
                status, payload = MET, found
        elif cond.kind == "PARENT":
            output = outputs.get(cond.parent or "")
            status = MET if _parent_met(task_id, cond, output) else UNMET
            payload = json.dumps(output)
        rows.append(
            (
                task_id,
                0,
                idx,
                cond.group,
                cond.kind,
                cond.readable_key,
                status,
                cond.event_key,
                cond.expression,
                cond.scope,
                wake_at,
                payload,
                cond.action,
                now if status == MET else None,
            )
        )
    conn.executemany(
        """INSERT OR REPLACE INTO durable_conditions (task_run_id, node_id, idx, grp, kind,
               readable_key, status, event_key, expression, scope, wake_at, payload, action,
               met_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    settle_gates_txn(settler, [task_id])


def _parent_outputs(
    settler: Settler, run_id: str, conditions: tuple[ConditionDef, ...]
) -> dict[str, Any]:
    parents = sorted({c.parent for c in conditions if c.kind == "PARENT" and c.parent})
    if not parents:
        return {}
    rows = settler.conn.execute(
        f"""SELECT task_name, output FROM task_runs
            WHERE workflow_run_id = ? AND task_name IN ({",".join("?" * len(parents))})""",
        (run_id, *parents),
    ).fetchall()
    return {name: json.loads(output) if output else {} for name, output in rows}


def _parent_met(task_id: str, cond: ConditionDef, output: Any) -> bool:
    if not cond.expression:
        return True
    result = evaluate(cond.expression, {"output": output if output is not None else {}})
    if result.error is not None:
        skipped = " (that parent was skipped: its output is {'skipped': true})"
        logger.warning(
            "parent condition %r of task run %s: CEL expression %r failed on the output of "
            "%r%s: %s; the condition is not met",
            cond.readable_key,
            task_id,
            cond.expression,
            cond.parent,
            skipped if output == {"skipped": True} else "",
            result.error,
        )
        return False
    return result.value is True


def settle_gates_txn(settler: Settler, task_ids: list[str]) -> None:
    """Queue, skip or cancel each gated task whose conditions decide it now."""
    for task_id in task_ids:
        _settle_one(settler, task_id)


def _settle_one(settler: Settler, task_id: str) -> None:
    task = settler.conn.execute(
        """SELECT workflow_run_id, workflow_name, task_name, retry_count FROM task_runs
           WHERE id = ? AND status = 'PENDING'""",
        (task_id,),
    ).fetchone()
    if task is None:
        return  # decided already, or ended (its run was cancelled)
    run_id, workflow_name, name, retry_count = task

    def recover(exc: LookupError) -> None:
        settler.fail_orphan(
            task_id,
            run_id,
            workflow_name,
            retry_count,
            f"the conditions of task {name!r} were met, but the registered definition of "
            f"workflow {workflow_name!r} cannot settle it ({exc!r}; was the task removed or "
            f"renamed while runs waited?)",
            was="PENDING",
        )

    settler.guarded(lambda: _settle_gate(settler, run_id, workflow_name, name, task_id), recover)


def _settle_gate(
    settler: Settler, run_id: str, workflow_name: str, name: str, task_id: str
) -> None:
    conn = settler.conn
    rows = conn.execute(
        """SELECT action, grp, status, readable_key, payload, met_at FROM durable_conditions
           WHERE task_run_id = ? AND node_id = 0""",
        (task_id,),
    ).fetchall()
    verdict, matched = _decide(rows)
    if verdict is None:
        return
    conn.execute(
        "UPDATE durable_conditions SET status = 'CLOSED' "
        "WHERE task_run_id = ? AND node_id = 0 AND status = 'OPEN'",
        (task_id,),
    )
    if verdict == "CANCEL":
        settler.cancel(run_id, workflow_name, name, task_id)
    elif verdict == "SKIP":
        why = "a skip_if condition was met" if matched else "its wait_for can never be met"
        settler.skip(run_id, workflow_name, name, task_id, why)
    else:
        shape = settler.shapes.for_run(conn, run_id, workflow_name)
        if name not in shape.tasks:
            raise KeyError(name)
        trigger = json.dumps(matched) if matched else None
        settler.queue(run_id, shape, name, task_id, trigger)


_PRECEDENCE = ("CANCEL", "SKIP", "QUEUE")


def _decide(rows: list[tuple[Any, ...]]) -> tuple[str | None, dict[str, list[Any]]]:
    """(the action that happens now, or None to go on waiting; what the met conditions
    of that action carried, by readable key).

    An action is met when each of its groups has a met member; it was met at the
    latest of its groups' earliest met times. Of the actions met, the one met first
    wins (a step that meets several, after the engine was down, decides as if it had
    been up); at the same moment, cancel beats skip beats queue."""
    groups: dict[str, dict[int, list[tuple[str, float]]]] = {a: {} for a in _PRECEDENCE}
    for action, grp, status, _, _, met_at in rows:
        groups.setdefault(action, {}).setdefault(grp, []).append((status, met_at or 0.0))

    def met_time(action: str) -> float | None:
        if not groups[action]:
            return None
        times = []
        for members in groups[action].values():
            met = [at for status, at in members if status == MET]
            if not met:
                return None
            times.append(min(met))
        return max(times)

    met = [
        (at, rank, action)
        for rank, action in enumerate(_PRECEDENCE)
        if (at := met_time(action)) is not None
    ]
    if met:
        action = min(met)[2]
        return action, _matched(rows, action)
    if not groups["QUEUE"]:
        return "QUEUE", {}
    if any(all(status == UNMET for status, _ in members) for members in groups["QUEUE"].values()):
        return "SKIP", {}  # the wait_for can never be met
    return None, {}


def _matched(rows: list[tuple[Any, ...]], action: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for row_action, _, status, key, payload, _ in rows:
        if row_action == action and status == MET:
            out.setdefault(key, []).append(json.loads(payload) if payload else {})
    return out
