"""Which worker takes a task run: worker labels, sticky runs and a trigger's desired
worker, decided by each claiming worker against the others on the database.

- A desired label marked `required` must be satisfied by the worker's label of that
  key (by its comparator; EQUAL by default), or the worker leaves the task run, which
  waits (until its schedule timeout) for a worker that satisfies it.
- Optional labels rank workers: a worker leaves a task run while another live worker
  that serves it, satisfies its required labels and had free slots (free durable slots,
  for a durable task) at its last heartbeat scores a higher sum of the weights (100 by
  default) of the labels it satisfies. The preference is soft: once the better worker
  reports it is full, anyone takes it.
- A sticky run (the workflow's `sticky`, or `sticky=True` on a child's trigger) keeps to
  the worker that took its first task: HARD waits for that worker, SOFT prefers it
  while it is live and has room. A trigger's `desired_worker_id` is a soft preference.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from hatchlite.store.records import ClaimRequest, LabelSpec, TaskShape, WorkflowShape

DEFAULT_WEIGHT = 100


@dataclass(frozen=True, slots=True)
class Routing:
    """What a trigger asked about where its run's tasks run."""

    sticky: str | None = None  # SOFT or HARD
    desired_worker_id: str | None = None
    labels: tuple[LabelSpec, ...] = ()

    def to_json(self) -> str | None:
        if not (self.sticky or self.desired_worker_id or self.labels):
            return None
        return json.dumps(
            {
                "sticky": self.sticky,
                "desired_worker_id": self.desired_worker_id,
                "labels": [
                    [lb.key, lb.value, lb.required, lb.weight, lb.comparator] for lb in self.labels
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> Routing:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            data.get("sticky"),
            data.get("desired_worker_id"),
            tuple(LabelSpec(*item) for item in data.get("labels", ())),
        )


def satisfies(have: str | int | None, want: LabelSpec) -> bool:
    """Whether a worker's label value `have` satisfies the desired label `want`."""
    if have is None:
        return False
    comparator = want.comparator
    if comparator in (0, 1):  # EQUAL, NOT_EQUAL: compared as text ("1" == 1)
        return (str(have) == str(want.value)) == (comparator == 0)
    try:
        left, right = float(have), float(want.value)
    except (TypeError, ValueError):
        return False  # an ordering needs numbers
    return {
        2: left > right,
        3: left >= right,
        4: left < right,
        5: left <= right,
    }.get(comparator, False)


def _score(labels: dict[str, str | int], wanted: tuple[LabelSpec, ...]) -> int | None:
    """None if a required label is not satisfied, else the summed weight of the
    optional labels that are."""
    score = 0
    for want in wanted:
        ok = satisfies(labels.get(want.key), want)
        if want.required and not ok:
            return None
        if ok and not want.required:
            score += want.weight
    return score


@dataclass(slots=True)
class _Peer:
    id: str
    labels: dict[str, str | int]
    actions: set[str]
    free: int
    free_durable: int

    def can_take(self, action: str, task: TaskShape, wanted: tuple[LabelSpec, ...]) -> bool:
        """Whether this worker serves the task, had room for it at its last heartbeat,
        and satisfies its required labels: only then is it worth leaving the task to."""
        if action not in self.actions:
            return False
        room = self.free_durable >= 1 if task.is_durable else self.free >= task.slot_cost
        return room and _score(self.labels, wanted) is not None


@dataclass(slots=True)
class Router:
    """The routing decisions of one worker's claim (peers read once, when needed)."""

    conn: sqlite3.Connection
    req: ClaimRequest
    wall: float
    _peers: list[_Peer] | None = None
    _sticky: dict[str, str | None] = field(default_factory=dict)

    def allows(
        self, shape: WorkflowShape, task: TaskShape, run_id: str, routing_json: str | None
    ) -> bool:
        """Whether this worker should take a task run of `run_id` now."""
        routing = Routing.from_json(routing_json)
        wanted = _merge(task.labels, routing.labels)
        me = self.req.worker_id
        action = f"{shape.name.lower()}:{task.name}"
        mine = _score(self.req.labels, wanted) if wanted else 0
        if mine is None:
            return False
        strategy = routing.sticky or shape.sticky
        if strategy is not None:
            holder = self._sticky_worker(run_id)
            if holder is not None and holder != me:
                if strategy == "HARD":
                    return False
                if self._can_take(holder, action, task, wanted):
                    return False
        desired = routing.desired_worker_id
        if desired and desired != me and self._can_take(desired, action, task, wanted):
            return False
        if any(not w.required for w in wanted):
            for peer in self._live():
                if peer.id == me or not peer.can_take(action, task, wanted):
                    continue
                theirs = _score(peer.labels, wanted)
                if theirs is not None and theirs > mine:
                    return False
        return True

    def claimed(self, shape: WorkflowShape, run_id: str, routing_json: str | None) -> None:
        """This worker took a task run: a sticky run without a worker now keeps to it."""
        if shape.sticky is None and Routing.from_json(routing_json).sticky is None:
            return
        self.conn.execute(
            "UPDATE workflow_runs SET sticky_worker_id = ? WHERE id = ? AND sticky_worker_id IS NULL",
            (self.req.worker_id, run_id),
        )
        self._sticky.setdefault(run_id, self.req.worker_id)

    def _sticky_worker(self, run_id: str) -> str | None:
        if run_id not in self._sticky:
            row = self.conn.execute(
                "SELECT sticky_worker_id FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            self._sticky[run_id] = None if row is None else row[0]
        return self._sticky[run_id]

    def _can_take(
        self, worker_id: str, action: str, task: TaskShape, wanted: tuple[LabelSpec, ...]
    ) -> bool:
        return any(p.id == worker_id and p.can_take(action, task, wanted) for p in self._live())

    def _live(self) -> list[_Peer]:
        if self._peers is None:
            from hatchlite.store.workers import live_workers_txn

            self._peers = [_Peer(*row) for row in live_workers_txn(self.conn, self.wall)]
        return self._peers


def _merge(task: tuple[LabelSpec, ...], trigger: tuple[LabelSpec, ...]) -> tuple[LabelSpec, ...]:
    """A task's desired labels, those of the trigger replacing the task's by key."""
    if not trigger:
        return task
    by_key: dict[str, LabelSpec] = {lb.key: lb for lb in task}
    by_key.update({lb.key: lb for lb in trigger})
    return tuple(by_key.values())


def label_specs(labels: Any, where: str) -> tuple[LabelSpec, ...]:
    """Desired worker labels (a dict of key -> DesiredWorkerLabel, or a list of them
    with keys) as data; raises ValueError naming `where`."""
    if not labels:
        return ()
    from hatchlite.types import DesiredWorkerLabel

    items: list[tuple[str | None, Any]] = (
        list(labels.items()) if isinstance(labels, dict) else [(None, lb) for lb in labels]
    )
    specs = []
    for key, label in items:
        if isinstance(label, str | int) and not isinstance(label, bool):
            label = DesiredWorkerLabel(value=label)  # the dict shorthand {"gpu": "yes"}
        if not isinstance(label, DesiredWorkerLabel):
            raise ValueError(
                f"{where}: desired worker labels take DesiredWorkerLabel, got {label!r}"
            )
        name = key if key is not None else label.key
        if not name:
            raise ValueError(f"{where}: a desired worker label needs a key")
        comparator = 0 if label.comparator is None else int(label.comparator)
        if comparator not in range(6):
            raise ValueError(f"{where}: label {name!r}: unknown comparator {label.comparator!r}")
        weight = DEFAULT_WEIGHT if label.weight is None else int(label.weight)
        specs.append(LabelSpec(str(name), label.value, bool(label.required), weight, comparator))
    return tuple(specs)
