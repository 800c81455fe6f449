"""`hatchet.workflows`: the workflows registered on this database; deleting and pausing.

A paused workflow's new runs are created but stay QUEUED (no worker takes its task
runs) until it is unpaused; task runs queued longer than the pause's `queue_ttl` are
cancelled. The DROP/QUEUE behaviours for cron and scheduled runs are stored with the
pause (they apply once crons and schedules exist).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from hatchlite.exceptions import HatchliteError
from hatchlite.features.summaries import pagination, utc
from hatchlite.models import APIResourceMeta, Workflow, WorkflowList
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.workflows import WorkflowRecord

if TYPE_CHECKING:
    from hatchlite.client import Hatchet

PausedBehavior = Literal["DROP", "QUEUE"]
_BEHAVIORS = ("DROP", "QUEUE")


class WorkflowNotFoundError(HatchliteError, ValueError):
    """No workflow has the given id (or name)."""


def _workflow(record: WorkflowRecord, tenant_id: str) -> Workflow:
    created, updated = utc(record.created_at), utc(record.updated_at)
    assert created is not None and updated is not None
    return Workflow(
        metadata=APIResourceMeta(id=record.id, created_at=created, updated_at=updated),
        name=record.name,
        description=record.description,
        is_paused=record.is_paused,
        tenant_id=tenant_id,
    )


class WorkflowsClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def _list(
        self, workflow_name: str | None, limit: int | None, offset: int | None
    ) -> WorkflowList:
        engine = self._client._engine
        await engine.ensure_started()
        await engine.register_defined()
        name = None if workflow_name is None else self._client.config.apply_namespace(workflow_name)
        records, total = await engine.store.workflows(name, limit, offset or 0)
        return WorkflowList(
            rows=[_workflow(r, self._client.tenant_id) for r in records],
            pagination=pagination(offset or 0, limit, total),
        )

    async def _get(self, workflow_id: str) -> Workflow:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.workflow(workflow_id)
        if record is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        return _workflow(record, self._client.tenant_id)

    async def _delete(self, workflow_id: str) -> None:
        if await self._client._engine.delete_workflow(workflow_id) is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")

    async def _pause(
        self,
        workflow_id: str,
        paused: bool,
        queue_ttl: timedelta | None,
        cron: PausedBehavior | None,
        scheduled: PausedBehavior | None,
    ) -> Workflow:
        engine = self._client._engine
        await engine.ensure_started()
        ttl = None if queue_ttl is None else queue_ttl.total_seconds()
        found = await engine.store.pause_workflow(
            workflow_id, paused, engine.clock.time(), ttl, cron, scheduled
        )
        if not found:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        engine.wake()  # unpaused: claim its queued task runs now
        return await self._get(workflow_id)

    def list(
        self, workflow_name: str | None = None, limit: int | None = None, offset: int | None = None
    ) -> WorkflowList:
        """The registered workflows (by name), or the one named `workflow_name`."""
        _check_page(limit, offset)
        return RUNTIME.call(self._list, workflow_name, limit, offset)

    async def aio_list(
        self, workflow_name: str | None = None, limit: int | None = None, offset: int | None = None
    ) -> WorkflowList:
        _check_page(limit, offset)
        return await RUNTIME.acall(self._list, workflow_name, limit, offset)

    def get(self, workflow_id: str) -> Workflow:
        return RUNTIME.call(self._get, workflow_id)

    async def aio_get(self, workflow_id: str) -> Workflow:
        return await RUNTIME.acall(self._get, workflow_id)

    def delete(self, workflow_id: str) -> None:
        """Remove a workflow from `list` and `get`. Its stored runs stay (readable by id,
        deleted by `runs.purge`), and its queued and running task runs still finish. A
        process that defines it registers it again (when it triggers or serves it, or
        reads `wf.id`), under a new id that its old runs are listed under too."""
        RUNTIME.call(self._delete, workflow_id)

    async def aio_delete(self, workflow_id: str) -> None:
        await RUNTIME.acall(self._delete, workflow_id)

    def pause(
        self,
        workflow_id: str,
        queue_ttl: timedelta,
        paused_workflow_cron_run_queue_behavior: PausedBehavior = "QUEUE",
        paused_workflow_scheduled_run_queue_behavior: PausedBehavior = "QUEUE",
    ) -> Workflow:
        """Stop starting the workflow's task runs; those queued longer than `queue_ttl`
        are cancelled. `unpause` resumes."""
        _check_pause(
            queue_ttl,
            paused_workflow_cron_run_queue_behavior,
            paused_workflow_scheduled_run_queue_behavior,
        )
        return RUNTIME.call(
            self._pause,
            workflow_id,
            True,
            queue_ttl,
            paused_workflow_cron_run_queue_behavior,
            paused_workflow_scheduled_run_queue_behavior,
        )

    async def aio_pause(
        self,
        workflow_id: str,
        queue_ttl: timedelta,
        paused_workflow_cron_run_queue_behavior: PausedBehavior = "QUEUE",
        paused_workflow_scheduled_run_queue_behavior: PausedBehavior = "QUEUE",
    ) -> Workflow:
        _check_pause(
            queue_ttl,
            paused_workflow_cron_run_queue_behavior,
            paused_workflow_scheduled_run_queue_behavior,
        )
        return await RUNTIME.acall(
            self._pause,
            workflow_id,
            True,
            queue_ttl,
            paused_workflow_cron_run_queue_behavior,
            paused_workflow_scheduled_run_queue_behavior,
        )

    def unpause(self, workflow_id: str) -> Workflow:
        return RUNTIME.call(self._pause, workflow_id, False, None, None, None)

    async def aio_unpause(self, workflow_id: str) -> Workflow:
        return await RUNTIME.acall(self._pause, workflow_id, False, None, None, None)


def _check_page(limit: int | None, offset: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    if offset is not None and offset < 0:
        raise ValueError(f"offset must be 0 or more, got {offset}")


def _check_pause(queue_ttl: timedelta, cron: str, scheduled: str) -> None:
    if not isinstance(queue_ttl, timedelta):
        raise TypeError(f"queue_ttl must be a timedelta, got {type(queue_ttl).__name__}")
    if queue_ttl < timedelta(0):
        raise ValueError(f"queue_ttl must not be negative, got {queue_ttl}")
    for what, value in (
        ("paused_workflow_cron_run_queue_behavior", cron),
        ("paused_workflow_scheduled_run_queue_behavior", scheduled),
    ):
        if value not in _BEHAVIORS:
            raise ValueError(f"{what} must be 'DROP' or 'QUEUE', got {value!r}")
