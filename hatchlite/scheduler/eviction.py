"""Which waiting durable tasks leave memory, and when (Hatchet's `EvictionPolicy`).

A durable task waiting (a sleep, an event, child runs) keeps its coroutine and its
durable slot. It is evicted, its coroutine dropped and its slot freed, when:
- it has waited continuously for its policy's `ttl` (engine clock);
- its worker needs the slot for another durable task and the policy allows capacity
  eviction (lowest `priority` first, then the one waiting longest);
- its worker shuts down gracefully.
The store then holds it as evicted and queues it again when its wait is over; it is
replayed from its history like a task whose worker died (store/eviction.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hatchlite.scheduler.deadlines import Deadlines

if TYPE_CHECKING:
    from hatchlite.scheduler.engine import Engine
    from hatchlite.scheduler.execution import Execution
    from hatchlite.scheduler.workers import LocalWorker

logger = logging.getLogger("hatchlite")

# Evictions written per engine step (a TTL that many tasks share ends in several steps).
EVICT_BATCH = 1000


class Evictor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # When each waiting task's TTL ends; the token is when its wait began.
        self._ttl = Deadlines(engine._executions, _still_waiting)

    def waiting(self, execution: Execution) -> None:
        """`execution` began to wait: its TTL starts."""
        policy = execution.task.eviction_policy
        since = execution.waiting_since
        if policy is None or policy.ttl is None or since is None:
            return
        self._ttl.push(since + policy.ttl.total_seconds(), execution, since)

    def due(self, now: float) -> list[tuple[Execution, str]]:
        """Waiting tasks whose TTL is over (at most EVICT_BATCH)."""
        return [
            (e, f"waited {e.task.eviction_policy.ttl} (its eviction policy's ttl) for ")  # type: ignore[union-attr]
            for e in self._ttl.due(now, EVICT_BATCH)
        ]

    def next_deadline(self) -> float | None:
        return self._ttl.next()

    @staticmethod
    def evictable(worker: LocalWorker) -> list[Execution]:
        """Waiting tasks of `worker` that may make room for another, first to go first."""
        candidates = [
            e
            for e in worker.running.values()
            if e.suspended
            and not e.evicting
            and e.task.eviction_policy is not None
            and e.task.eviction_policy.allow_capacity_eviction
        ]
        candidates.sort(
            key=lambda e: (e.task.eviction_policy.priority, e.waiting_since)  # type: ignore[union-attr]
        )
        return candidates

    def room(self, worker: LocalWorker) -> int:
        """How many durable slots eviction could free on `worker` (looked at only when
        its durable slots are all taken)."""
        if worker.used_durable < worker.durable_slots:
            return 0
        return len(self.evictable(worker))

    def for_capacity(self, worker: LocalWorker) -> list[tuple[Execution, str]]:
        """Waiting tasks to evict so that `worker` holds no more durable tasks than its
        durable slots (it claimed new ones counting on them)."""
        over = worker.used_durable - worker.durable_slots
        if over <= 0:
            return []
        reason = (
            f"worker {worker.name} needed its durable slot for another task while it waited for "
        )
        return [(e, reason) for e in self.evictable(worker)[:over]]

    @staticmethod
    def for_shutdown(worker: LocalWorker) -> list[tuple[Execution, str]]:
        reason = f"worker {worker.name} shut down while it waited for "
        return [(e, reason) for e in worker.running.values() if e.suspended and not e.evicting]

    async def evict(self, victims: list[tuple[Execution, str]]) -> int:
        """Write the evictions (one transaction), then drop the evicted coroutines.
        A task whose wait ended meanwhile is not evicted: it goes on in memory."""
        if not victims:
            return 0
        engine = self.engine
        for execution, _ in victims:
            execution.evicting = True
        items = [(e, e.waits_for(), reason) for e, reason in victims]
        try:
            done = await engine.store.evict_many(
                [
                    (e.task_id, e.worker_id, nodes, children, reason + _describe(nodes, children))
                    for e, (nodes, children), reason in items
                ],
                engine.clock.time(),
            )
        except BaseException:
            for execution, _ in victims:
                execution.evicting = False
            raise
        for (execution, _), evicted in zip(victims, done, strict=True):
            if evicted:
                execution.evict()
            else:
                execution.evicting = False
        engine.wake()  # freed slots: claim more
        return sum(done)


def _still_waiting(execution: Execution, since: float) -> bool:
    return execution.suspended and not execution.evicting and execution.waiting_since == since


def _describe(nodes: list[int], children: list[list[str]]) -> str:
    parts = [f"durable entry {n}" for n in nodes]
    parts += [
        f"child run {ids[0]}" if len(ids) == 1 else f"{len(ids)} child runs" for ids in children
    ]
    return " and ".join(parts) or "nothing"
