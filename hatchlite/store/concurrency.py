"""Concurrency limits in SQL: who holds and who waits for each key of each limit, decided
inside the transactions that queue, finish and cancel task runs (the strategies are
described in hatchlite/limits.py).

An owner is a workflow run (scope RUN: the workflow's limits, held until the run ends)
or a task run (scope TASK: held until it ends, across its retries). Its rows, one per
limit of its list, are LATER until the earlier limits admitted it, then WAITING, then
HELD. A task run not yet admitted is QUEUED and `held` (HELD_BY_LIMIT), which keeps it
out of the claim's index while its schedule timeout still runs; a run not admitted
keeps all its queued tasks held.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from hatchlite.store.records import ConcurrencySpec, WorkflowShape

if TYPE_CHECKING:
    from hatchlite.store.settle import Settler

HELD_BY_LIMIT = 1  # task_runs.held of a queued task run a limit has not admitted
RUN, TASK = "RUN", "TASK"
logger = logging.getLogger("hatchlite")
LATER, WAITING, HELD = "LATER", "WAITING", "HELD"


def limit_id(workflow_name: str, task_name: str | None, index: int) -> str:
    return (
        f"{workflow_name}#{index}" if task_name is None else f"{workflow_name}:{task_name}#{index}"
    )


class Limits:
    """Admission for one transaction (owned by its Settler)."""

    def __init__(self, settler: Settler) -> None:
        self.settler = settler
        self.conn = settler.conn
        self._admitted_runs: dict[str, bool] = {}
        self._keys: dict[str, dict[str, list[str]]] = {}
        # Whether any run holds a slot (read once: most databases use no limit, and
        # every run that ends would otherwise look for its slots).
        self._any_slots: bool | None = None

    # -- entering ---------------------------------------------------------------------

    def enter_run(self, run_id: str, shape: WorkflowShape, keys: list[str]) -> None:
        """A new (or replayed) run joins its workflow's limits."""
        self._enter(RUN, run_id, run_id, shape.name, None, shape.concurrency, keys)

    def ready(self, run_id: str, shape: WorkflowShape, name: str, task_id: str) -> None:
        """Task run `task_id` was just queued: hold it back until its run's and its own
        limits admit it."""
        task = shape.task(name)
        if shape.concurrency and not self.run_admitted(run_id):
            self._block(task_id)
            return
        if task.concurrency and not self._has_rows(TASK, task_id):
            self._block(task_id)
            keys = self.run_keys(run_id).get(name, [])
            self._enter(TASK, task_id, run_id, shape.name, name, task.concurrency, keys)

    def run_admitted(self, run_id: str) -> bool:
        known = self._admitted_runs.get(run_id)
        if known is None:
            rows = self.conn.execute(
                "SELECT status FROM concurrency_slots WHERE owner_id = ? AND scope = 'RUN'",
                (run_id,),
            ).fetchall()
            # No rows: it never entered (triggered before its workflow had a limit).
            known = all(status == HELD for (status,) in rows)
            self._admitted_runs[run_id] = known
        return known

    def _enter(
        self,
        scope: str,
        owner_id: str,
        run_id: str,
        workflow_name: str,
        task_name: str | None,
        specs: tuple[ConcurrencySpec, ...],
        keys: list[str],
    ) -> None:
        if len(keys) != len(specs):
            # Its definition changed since it was triggered (limits added or removed):
            # the keys it was given no longer fit, so it runs without these limits
            # rather than stop every step on it.
            logger.warning(
                "run %s has %d concurrency keys for %d limits of %r (its definition "
                "changed since it was triggered): it runs without them",
                run_id,
                len(keys),
                len(specs),
                workflow_name + (f":{task_name}" if task_name else ""),
            )
            self._admit(scope, owner_id, run_id)
            return
        now = self.settler.now
        self._any_slots = True
        self.conn.executemany(
            """INSERT INTO concurrency_slots (limit_id, key, scope, owner_id, run_id, stage,
                   max_runs, strategy, status, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    limit_id(workflow_name, task_name, index),
                    key,
                    scope,
                    owner_id,
                    run_id,
                    index,
                    spec.max_runs,
                    spec.strategy,
                    WAITING if index == 0 else LATER,
                    now,
                )
                for index, (spec, key) in enumerate(zip(specs, keys, strict=True))
            ],
        )
        self._advance(scope, owner_id, run_id, -1)

    # -- deciding ---------------------------------------------------------------------

    def _advance(self, scope: str, owner_id: str, run_id: str, stage: int) -> None:
        """The owner holds `stage` (or is new, -1): offer it to its next limit, or, past
        the last one, let it run."""
        row = self.conn.execute(
            """SELECT seq, limit_id, key, max_runs, strategy FROM concurrency_slots
               WHERE owner_id = ? AND scope = ? AND stage = ?""",
            (owner_id, scope, stage + 1),
        ).fetchone()
        if row is None:
            self._admit(scope, owner_id, run_id)
            return
        seq, lim, key, max_runs, strategy = row
        self.conn.execute(
            "UPDATE concurrency_slots SET status = 'WAITING' WHERE seq = ? AND status = 'LATER'",
            (seq,),
        )
        self._offer(seq, lim, key, max_runs, strategy, scope, owner_id, run_id, stage + 1)

    def _offer(
        self,
        seq: int,
        lim: str,
        key: str,
        max_runs: int,
        strategy: str,
        scope: str,
        owner_id: str,
        run_id: str,
        stage: int,
    ) -> None:
        held = self._held(lim, key)
        if strategy == "CANCEL_NEWEST" and held >= max_runs:
            self._cancel(
                scope,
                owner_id,
                run_id,
                f"cancelled by concurrency limit {key!r} (CANCEL_NEWEST, max_runs="
                f"{max_runs}): older runs hold it",
            )
            return
        if strategy == "GROUP_ROUND_ROBIN" and held >= max_runs:
            return  # waits its turn
        self.conn.execute("UPDATE concurrency_slots SET status = 'HELD' WHERE seq = ?", (seq,))
        if strategy == "CANCEL_IN_PROGRESS" and held + 1 > max_runs:
            oldest = self.conn.execute(
                """SELECT scope, owner_id, run_id FROM concurrency_slots
                   WHERE limit_id = ? AND key = ? AND status = 'HELD' ORDER BY seq LIMIT ?""",
                (lim, key, held + 1 - max_runs),
            ).fetchall()
            for old_scope, old_owner, old_run in oldest:
                self._cancel(
                    old_scope,
                    old_owner,
                    old_run,
                    f"cancelled by concurrency limit {key!r} (CANCEL_IN_PROGRESS, max_runs="
                    f"{max_runs}): a newer run took its place",
                )
        self._advance(scope, owner_id, run_id, stage)

    def _held(self, lim: str, key: str) -> int:
        row = self.conn.execute(
            """SELECT count(*) FROM concurrency_slots
               WHERE limit_id = ? AND key = ? AND status = 'HELD'""",
            (lim, key),
        ).fetchone()
        return int(row[0])

    def _admit(self, scope: str, owner_id: str, run_id: str) -> None:
        """Every limit of the owner holds it: its blocked task runs may be claimed."""
        if scope == TASK:
            self._unblock(owner_id)
            return
        self._admitted_runs[run_id] = True
        row = self.conn.execute(
            "SELECT workflow_name FROM workflow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return
        shape = self.settler.shapes.for_run(self.conn, run_id, row[0])
        for task_id, name in self.conn.execute(
            f"""SELECT id, task_name FROM task_runs WHERE workflow_run_id = ?
                AND status = 'QUEUED' AND held = {HELD_BY_LIMIT}""",
            (run_id,),
        ).fetchall():
            if shape.task(name).concurrency:
                self.ready(run_id, shape, name, task_id)
            else:
                self._unblock(task_id)

    def _cancel(self, scope: str, owner_id: str, run_id: str, reason: str) -> None:
        if scope == RUN:
            self.settler.cancel_run(run_id, reason)
        else:
            self.settler.cancel_task_run(owner_id, reason)
        self.release(scope, [owner_id])  # at once: a later arrival in this step sees it

    # -- releasing --------------------------------------------------------------------

    def release(self, scope: str, owner_ids: list[str]) -> None:
        """The owners ended: drop their rows and admit who waits behind them."""
        freed: dict[tuple[str, str], None] = {}
        for owner_id in owner_ids:
            rows = self.conn.execute(
                """SELECT limit_id, key, status FROM concurrency_slots
                   WHERE owner_id = ? AND scope = ?""",
                (owner_id, scope),
            ).fetchall()
            if not rows:
                continue
            self.conn.execute(
                "DELETE FROM concurrency_slots WHERE owner_id = ? AND scope = ?",
                (owner_id, scope),
            )
            for lim, key, status in rows:
                if status == HELD:
                    freed[(lim, key)] = None
        for lim, key in freed:
            self._admit_waiters(lim, key)

    def release_run(self, run_id: str) -> None:
        """The run ended: release it and every task run of it still in a limit."""
        if self._any_slots is None:
            self._any_slots = bool(
                self.conn.execute("SELECT EXISTS (SELECT 1 FROM concurrency_slots)").fetchone()[0]
            )
        if not self._any_slots:
            return
        rows = set(
            self.conn.execute(
                "SELECT scope, owner_id FROM concurrency_slots WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        if not rows:
            return
        self._admitted_runs.pop(run_id, None)
        for scope in (TASK, RUN):
            owners = [owner for s, owner in rows if s == scope]
            if owners:
                self.release(scope, owners)

    def release_ended_tasks(self, run_id: str) -> None:
        """Release the task runs of `run_id` that ended without passing through
        `after_terminal` one by one (descendants cancelled together)."""
        owners = [
            owner
            for (owner,) in self.conn.execute(
                """SELECT DISTINCT c.owner_id FROM concurrency_slots c
                   JOIN task_runs t ON t.id = c.owner_id
                   WHERE c.run_id = ? AND c.scope = 'TASK'
                     AND t.status IN ('COMPLETED', 'FAILED', 'CANCELLED')""",
                (run_id,),
            )
        ]
        if owners:
            self.release(TASK, owners)

    def _admit_waiters(self, lim: str, key: str) -> None:
        while True:
            row = self.conn.execute(
                """SELECT seq, max_runs, strategy, scope, owner_id, run_id, stage
                   FROM concurrency_slots WHERE limit_id = ? AND key = ? AND status = 'WAITING'
                   ORDER BY seq LIMIT 1""",
                (lim, key),
            ).fetchone()
            if row is None:
                return
            seq, max_runs, strategy, scope, owner_id, run_id, stage = row
            if self._held(lim, key) >= max_runs:
                return
            self._offer(seq, lim, key, max_runs, strategy, scope, owner_id, run_id, stage)

    # -- task rows --------------------------------------------------------------------

    def _block(self, task_id: str) -> None:
        self.conn.execute(
            "UPDATE task_runs SET held = ? WHERE id = ? AND status = 'QUEUED'",
            (HELD_BY_LIMIT, task_id),
        )

    def _unblock(self, task_id: str) -> None:
        """Let it be claimed, ready from now: it queues behind what was ready before."""
        self.conn.execute(
            f"""UPDATE task_runs SET held = 0, available_at = max(available_at, ?)
                WHERE id = ? AND status = 'QUEUED' AND held = {HELD_BY_LIMIT}""",
            (self.settler.now, task_id),
        )

    def _has_rows(self, scope: str, owner_id: str) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM concurrency_slots WHERE owner_id = ? AND scope = ? LIMIT 1",
                (owner_id, scope),
            ).fetchone()
            is not None
        )

    def run_keys(self, run_id: str) -> dict[str, list[str]]:
        keys = self._keys.get(run_id)
        if keys is None:
            row = self.conn.execute(
                "SELECT limit_keys FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            keys = json.loads(row[0]) if row is not None and row[0] else {}
            self._keys[run_id] = keys
        return keys


def waiting_txn(
    conn: sqlite3.Connection, shape_of: Callable[[str], WorkflowShape | None]
) -> list[tuple[str, str, str, str, int]]:
    """What concurrency limits hold back: (task name, the limit's key expression, its
    strategy, key, queued task runs waiting for that key). A run-level limit holds back
    each queued task run of its waiting runs."""
    rows = conn.execute(
        """SELECT t.task_name, s.limit_id, s.strategy, s.key, count(*)
           FROM concurrency_slots s JOIN task_runs t
             ON (s.scope = 'TASK' AND t.id = s.owner_id)
             OR (s.scope = 'RUN' AND t.workflow_run_id = s.owner_id AND t.status = 'QUEUED')
           WHERE s.status IN ('WAITING', 'LATER')
           GROUP BY t.task_name, s.limit_id, s.strategy, s.key"""
    ).fetchall()
    out = []
    for task_name, lim, strategy, key, count in rows:
        out.append((task_name, _expression(lim, shape_of), strategy, key, int(count)))
    return out


def _expression(lim: str, shape_of: Callable[[str], WorkflowShape | None]) -> str:
    """The key expression of limit `lim` (`workflow#i` or `workflow:task#i`) as the
    workflow's current definition has it (the id itself if it is gone)."""
    owner, _, index = lim.rpartition("#")
    workflow, _, task = owner.partition(":")
    shape = shape_of(workflow)
    try:
        specs = shape.tasks[task].concurrency if task else shape.concurrency  # type: ignore[union-attr]
        return specs[int(index)].expression
    except (AttributeError, KeyError, IndexError, ValueError):
        return lim
