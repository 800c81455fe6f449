"""`hatchet.metrics`: counts of task runs by status, and what is queued and running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hatchlite.models import ConcurrencyStat, TaskMetrics, TaskStat, TaskStatusStat
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.views import RunQuery

if TYPE_CHECKING:
    from hatchlite.client import Hatchet


class MetricsClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    def _query(
        self,
        since: datetime | None,
        until: datetime | None,
        workflow_ids: list[str] | None,
        parent_task_external_id: str | None,
        triggering_event_external_id: str | None,
    ) -> RunQuery:
        now = self._client._engine.clock.now()
        start = since or now - timedelta(days=1)
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        end = until if until is None or until.tzinfo else until.replace(tzinfo=UTC)
        if end is not None and start > end:
            raise ValueError("since is after until")
        return RunQuery(
            since=start.timestamp(),
            until=None if end is None else end.timestamp(),
            workflow_ids=workflow_ids,
            parent_task_external_id=parent_task_external_id,
            triggering_event_external_id=triggering_event_external_id,
        )

    async def _task_metrics(self, query: RunQuery) -> TaskMetrics:
        engine = self._client._engine
        await engine.ensure_started()
        counts = await engine.store.task_counts(query)
        return TaskMetrics(
            cancelled=counts.get("CANCELLED", 0),
            completed=counts.get("COMPLETED", 0),
            failed=counts.get("FAILED", 0),
            queued=counts.get("QUEUED", 0),
            running=counts.get("RUNNING", 0),
        )

    def get_task_metrics(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        workflow_ids: list[str] | None = None,
        parent_task_external_id: str | None = None,
        triggering_event_external_id: str | None = None,
    ) -> TaskMetrics:
        """Task runs created between `since` (default: a day ago) and `until`, by status."""
        query = self._query(
            since, until, workflow_ids, parent_task_external_id, triggering_event_external_id
        )
        return RUNTIME.call(self._task_metrics, query)

    async def aio_get_task_metrics(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        workflow_ids: list[str] | None = None,
        parent_task_external_id: str | None = None,
        triggering_event_external_id: str | None = None,
    ) -> TaskMetrics:
        query = self._query(
            since, until, workflow_ids, parent_task_external_id, triggering_event_external_id
        )
        return await RUNTIME.acall(self._task_metrics, query)

    async def _active(self) -> dict[tuple[str, str, str], int]:
        engine = self._client._engine
        await engine.ensure_started()
        return await engine.store.active_counts()

    def get_queue_metrics(self) -> dict[str, Any]:
        """Queued task runs per action id (`workflow:task`)."""
        return _queues(RUNTIME.call(self._active))

    async def aio_get_queue_metrics(self) -> dict[str, Any]:
        return _queues(await RUNTIME.acall(self._active))

    async def _task_stats(self) -> dict[str, TaskStat]:
        engine = self._client._engine
        await engine.ensure_started()
        active = await engine.store.active_counts()
        return _stats(active, await engine.store.concurrency_waiting())

    def get_task_stats(self) -> dict[str, TaskStat]:
        """Queued and running task runs per task name; for queued ones, what concurrency
        limits hold back (`concurrency`: per limit, the waiting task runs per key)."""
        return RUNTIME.call(self._task_stats)

    async def aio_get_task_stats(self) -> dict[str, TaskStat]:
        return await RUNTIME.acall(self._task_stats)


def _queues(active: dict[tuple[str, str, str], int]) -> dict[str, Any]:
    return {
        f"{wf.lower()}:{task}": count
        for (wf, task, status), count in sorted(active.items())
        if status == "QUEUED"
    }


def _stats(
    active: dict[tuple[str, str, str], int], waiting: list[tuple[str, str, str, str, int]]
) -> dict[str, TaskStat]:
    totals: dict[str, dict[str, int]] = {}
    for (_, task, status), count in active.items():
        by_status = totals.setdefault(task, {})
        by_status[status] = by_status.get(status, 0) + count
    held: dict[str, dict[tuple[str, str], dict[str, int]]] = {}
    for task, expression, strategy, key, count in waiting:
        keys = held.setdefault(task, {}).setdefault((expression, strategy), {})
        keys[key] = keys.get(key, 0) + count
    return {
        task: TaskStat(
            queued=TaskStatusStat(
                total=by_status.get("QUEUED", 0),
                concurrency=[
                    ConcurrencyStat(expression=expression, type=strategy, keys=keys)
                    for (expression, strategy), keys in sorted(held.get(task, {}).items())
                ]
                or None,
            ),
            running=TaskStatusStat(total=by_status.get("RUNNING", 0)),
        )
        for task, by_status in sorted(totals.items())
    }
