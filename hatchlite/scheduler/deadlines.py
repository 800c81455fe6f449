"""Deadlines of the executions running here (execution timeouts, eviction TTLs),
soonest first.

An entry names its execution by task run id and serial number, not by reference: an
execution that ended or was evicted is not kept in memory by its old deadlines (with
100,000 durable tasks passing through a worker, those would be most of its memory).
Entries that no longer apply are dropped when they come up, and all at once when they
outnumber the executions."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hatchlite.scheduler.execution import Execution

# (deadline, push order, task run id, execution serial, token the check compares)
_Entry = tuple[float, int, str, int, float]


class Deadlines:
    def __init__(
        self,
        executions: dict[str, Execution],
        applies: Callable[[Execution, float], bool],
    ) -> None:
        """`applies(execution, token)`: whether an entry pushed with `token` still
        stands (the execution's deadline was not moved or dropped since)."""
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._executions = executions
        self._applies = applies

    def push(self, deadline: float, execution: Execution, token: float) -> None:
        entry = (deadline, next(self._seq), execution.task_id, execution.serial, token)
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._executions) + 1024:
            self._heap = [e for e in self._heap if self._live(e) is not None]
            heapq.heapify(self._heap)

    def _live(self, entry: _Entry) -> Execution | None:
        _, _, task_id, serial, token = entry
        execution = self._executions.get(task_id)
        if execution is None or execution.serial != serial:
            return None
        return execution if self._applies(execution, token) else None

    def due(self, now: float, limit: int | None = None) -> list[Execution]:
        """The executions whose deadline has come (at most `limit`), taken off."""
        heap, out = self._heap, list["Execution"]()
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            execution = self._live(heapq.heappop(heap))
            if execution is not None:
                out.append(execution)
        return out

    def next(self) -> float | None:
        heap = self._heap
        while heap:
            if self._live(heap[0]) is not None:
                return heap[0][0]
            heapq.heappop(heap)
        return None
