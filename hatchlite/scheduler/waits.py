"""Durable tasks waiting in this process: for an entry of their history to be satisfied
(a sleep, an event, `aio_wait_for`), or for child runs to end.

The store decides when a wait is over (a step meets due sleeps, a push meets events);
this only holds the futures the waiting coroutines await, and tells an execution that
its wait is over so that it counts as running from then on (see Execution.node_resolved
and Execution.wait_resolved).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hatchlite.store import Node

if TYPE_CHECKING:
    from hatchlite.scheduler.engine import Engine
    from hatchlite.scheduler.execution import Execution, Wait


class DurableWaits:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._suspended: dict[Node, asyncio.Future[str]] = {}
        # Waits for child runs, by child run id (told when the child ends).
        self._children: dict[str, list[tuple[Execution, Wait]]] = {}

    def __bool__(self) -> bool:
        """Whether any entry is waited for here (the engine polls for other processes'
        commits, which may satisfy one)."""
        return bool(self._suspended)

    def nodes(self) -> list[Node]:
        return list(self._suspended)

    async def wait(self, node: Node) -> str:
        """Wait until the durable entry `node` is satisfied (the task keeps its durable
        slot unless it is evicted); its result."""
        engine = self.engine
        assert engine.loop is not None
        future: asyncio.Future[str] = engine.loop.create_future()
        self._suspended[node] = future
        engine.wake()  # deadlines and polling change
        try:
            # A timer or event may have satisfied it before the future was registered.
            found = await engine.store.durable_satisfied([node])
            if node in found:
                self.resolve({node: found[node]})
            return await future
        finally:
            self._suspended.pop(node, None)

    def resolve(self, satisfied: dict[Node, str]) -> None:
        for node, result in satisfied.items():
            # Popped now, not when the task resumes: it counts as running from here on
            # (a test clock must not skip ahead of it).
            future = self._suspended.pop(node, None)
            if future is not None and not future.done():
                future.set_result(result)
                execution = self.engine._executions.get(node[0])
                if execution is not None:
                    execution.node_resolved(node[1])

    def forget(self, node: Node) -> None:
        """An evicted task's wait: its resumption is the store's business now."""
        self._suspended.pop(node, None)

    def children_began(self, execution: Execution, wait: Wait) -> None:
        for run_id in wait.children:
            self._children.setdefault(run_id, []).append((execution, wait))

    def children_ended(self, execution: Execution, wait: Wait) -> None:
        for run_id in wait.children:
            waits = self._children.get(run_id)
            if waits is not None:
                waits[:] = [w for w in waits if w[1] is not wait]
                if not waits:
                    del self._children[run_id]

    def runs_ended(self, run_ids: list[str]) -> None:
        """Child runs ended: a wait whose children all ended is over."""
        for run_id in run_ids:
            for execution, wait in self._children.pop(run_id, ()):
                wait.children.discard(run_id)
                if not wait.children:
                    execution.wait_resolved(wait)
