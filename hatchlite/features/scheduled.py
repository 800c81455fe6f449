"""`hatchet.scheduled`: one-time scheduled runs of any workflow, persisted (see
hatchlite/features/scheduling.py for what crons and schedules share)."""

from __future__ import annotations

import builtins
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hatchlite.exceptions import HatchliteError
from hatchlite.features.summaries import pagination, utc
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import (
    ScheduledRunStatus,
    ScheduledWorkflow,
    ScheduledWorkflows,
    ScheduledWorkflowsBulkDeleteResponse,
    ScheduledWorkflowsBulkError,
    ScheduledWorkflowsBulkUpdateItem,
    ScheduledWorkflowsBulkUpdateResponse,
    ScheduledWorkflowsList,
    ScheduledWorkflowsMethod,
    ScheduledWorkflowsOrderByField,
    WorkflowRunOrderByDirection,
    WorkflowRunStatus,
)
from hatchlite.models.scheduling import WorkflowVersion
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.schedules import (
    NewSchedule,
    ScheduleRecord,
)
from hatchlite.store.shapes import UnknownWorkflowError
from hatchlite.types import JSONMap

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
from hatchlite.features.scheduling import (
    instant,
    json_map,
    missing_workflow,
    resource_meta,
    target_workflow,
    text_map,
)

logger = logging.getLogger("hatchlite")


class ScheduleNotFoundError(HatchliteError, ValueError):
    """No scheduled run has the given id, or it has fired and cannot change."""


# -- one-time schedules -----------------------------------------------------------------

_RUN_STATUS = {
    "COMPLETED": WorkflowRunStatus.SUCCEEDED,
    "FAILED": WorkflowRunStatus.FAILED,
    "CANCELLED": WorkflowRunStatus.CANCELLED,
    "RUNNING": WorkflowRunStatus.RUNNING,
    "QUEUED": WorkflowRunStatus.QUEUED,
}


def _scheduled(record: ScheduleRecord, tenant_id: str) -> ScheduledWorkflows:
    trigger_at = utc(record.trigger_at)
    assert trigger_at is not None
    return ScheduledWorkflows(
        metadata=resource_meta(record.id, record.created_at, record.updated_at),
        tenant_id=tenant_id,
        workflow_version_id=record.workflow_id or "",
        workflow_id=record.workflow_id or "",
        workflow_name=record.workflow_name,
        trigger_at=trigger_at,
        input=json.loads(record.input_json),
        additional_metadata=json.loads(record.metadata_json),
        workflow_run_created_at=utc(record.run_created_at),
        workflow_run_name=record.workflow_name if record.run_id else None,
        workflow_run_status=_RUN_STATUS.get(record.run_status or ""),
        workflow_run_id=record.run_id,
        method=ScheduledWorkflowsMethod(record.method),
        priority=record.priority,
    )


class ScheduledClient:
    """One-time scheduled runs of any workflow."""

    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def create_many(
        self, workflow_name: str, schedules: builtins.list[NewSchedule], input: Any
    ) -> tuple[str, builtins.list[str]]:
        """Store schedules of `workflow_name` (namespaced) whose input is `input` (the
        schedules' `input_json` is replaced by it, validated): the workflow id, the ids."""
        engine = self._client._engine
        workflow_id, input_json = await target_workflow(engine, workflow_name, input)
        rows = [
            NewSchedule(
                workflow_name,
                s.trigger_at,
                input_json,
                s.metadata_json,
                s.priority,
                s.method,
                s.parent_workflow_run_id,
                s.parent_task_run_id,
                s.child_index,
                s.child_key,
            )
            for s in schedules
        ]
        try:
            ids = await engine.store.create_schedules(rows, engine.clock.time())
        except UnknownWorkflowError as exc:  # deleted since `_target` looked
            raise WorkflowNotFoundError(missing_workflow(workflow_name, engine, True)) from exc
        engine.wake()
        return workflow_id, ids

    async def _create(
        self, workflow_name: str, trigger_at: datetime, input: Any, additional_metadata: Any
    ) -> ScheduledWorkflows:
        at = instant(trigger_at, "trigger_at")
        meta_json = json_map(additional_metadata, "additional_metadata")
        _, [schedule_id] = await self.create_many(
            workflow_name, [NewSchedule(workflow_name, at, "", meta_json, None)], input
        )
        return await self._get(schedule_id)

    async def _get(self, scheduled_id: str) -> ScheduledWorkflows:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.schedule(str(scheduled_id))
        if record is None:
            raise ScheduleNotFoundError(f"no scheduled run with id {scheduled_id!r}")
        return _scheduled(record, self._client.tenant_id)

    async def _reschedule(
        self, moves: builtins.list[tuple[str, float]]
    ) -> builtins.list[tuple[str, str | None]]:
        engine = self._client._engine
        await engine.ensure_started()
        outcome = await engine.store.reschedule(moves, engine.clock.time())
        engine.wake()
        return outcome

    async def _update(self, scheduled_id: str, trigger_at: datetime) -> ScheduledWorkflows:
        [(_, error)] = await self._reschedule(
            [(str(scheduled_id), instant(trigger_at, "trigger_at"))]
        )
        if error is not None:
            raise ScheduleNotFoundError(error)
        return await self._get(scheduled_id)

    async def _bulk_update(
        self,
        updates: builtins.list[ScheduledWorkflowsBulkUpdateItem]
        | builtins.list[tuple[str, datetime]],
    ) -> ScheduledWorkflowsBulkUpdateResponse:
        moves = []
        for item in updates:
            if isinstance(item, ScheduledWorkflowsBulkUpdateItem):
                moves.append((item.id, item.trigger_at.timestamp()))
            else:
                schedule_id, at = item
                moves.append((str(schedule_id), instant(at, "trigger_at")))
        outcome = await self._reschedule(moves)
        return ScheduledWorkflowsBulkUpdateResponse(
            updated_ids=[i for i, error in outcome if error is None],
            errors=[
                ScheduledWorkflowsBulkError(id=i, error=error)
                for i, error in outcome
                if error is not None
            ],
        )

    async def _delete(self, scheduled_id: str) -> None:
        engine = self._client._engine
        await engine.ensure_started()
        if not await engine.store.delete_schedules([str(scheduled_id)]):
            raise ScheduleNotFoundError(f"no scheduled run with id {scheduled_id!r}")

    async def _bulk_delete(
        self,
        scheduled_ids: builtins.list[str] | None,
        workflow_id: str | None,
        parent_workflow_run_id: str | None,
        parent_step_run_id: str | None,
        statuses: builtins.list[ScheduledRunStatus] | None,
        additional_metadata: JSONMap | None,
    ) -> ScheduledWorkflowsBulkDeleteResponse:
        filters = (workflow_id, parent_workflow_run_id, parent_step_run_id, additional_metadata)
        if not scheduled_ids and all(f is None for f in filters):
            raise ValueError("bulk_delete needs scheduled_ids or at least one filter")
        if statuses:
            logger.warning("bulk_delete: the statuses filter is not supported and is ignored")
        engine = self._client._engine
        await engine.ensure_started()
        wanted = [str(i) for i in scheduled_ids or []]
        if any(f is not None for f in filters):
            wanted += await engine.store.matching_schedules(
                workflow_id,
                parent_workflow_run_id,
                parent_step_run_id,
                text_map(additional_metadata),
            )
        wanted = list(dict.fromkeys(wanted))
        deleted = await engine.store.delete_schedules(wanted) if wanted else []
        missing = [i for i in wanted if i not in set(deleted)]
        return ScheduledWorkflowsBulkDeleteResponse(
            deleted_ids=deleted,
            errors=[
                ScheduledWorkflowsBulkError(id=i, error=f"no scheduled run with id {i!r}")
                for i in missing
            ],
        )

    async def _list(
        self,
        offset: int | None,
        limit: int | None,
        workflow_id: str | None,
        parent_workflow_run_id: str | None,
        statuses: builtins.list[ScheduledRunStatus] | None,
        additional_metadata: JSONMap | None,
        order_by_field: ScheduledWorkflowsOrderByField | None,
        order_by_direction: WorkflowRunOrderByDirection | None,
    ) -> ScheduledWorkflowsList:
        engine = self._client._engine
        await engine.ensure_started()
        field = ScheduledWorkflowsOrderByField(
            order_by_field or ScheduledWorkflowsOrderByField.TRIGGERAT
        )
        direction = WorkflowRunOrderByDirection(
            order_by_direction or WorkflowRunOrderByDirection.DESC
        )
        records, total = await engine.store.schedules(
            workflow_id,
            parent_workflow_run_id,
            [ScheduledRunStatus(s).value for s in statuses] if statuses else None,
            text_map(additional_metadata),
            field.value,
            direction is WorkflowRunOrderByDirection.DESC,
            offset or 0,
            limit,
        )
        return ScheduledWorkflowsList(
            rows=[_scheduled(r, self._client.tenant_id) for r in records],
            pagination=pagination(offset or 0, limit, total),
        )

    def create(
        self,
        workflow_name: str,
        trigger_at: datetime,
        input: JSONMap,
        additional_metadata: JSONMap,
    ) -> ScheduledWorkflows:
        """A run of `workflow_name` at `trigger_at` (fires once; at once if past)."""
        name = self._client.config.apply_namespace(workflow_name)
        return RUNTIME.call(self._create, name, trigger_at, input, additional_metadata)

    async def aio_create(
        self,
        workflow_name: str,
        trigger_at: datetime,
        input: JSONMap,
        additional_metadata: JSONMap,
    ) -> ScheduledWorkflows:
        name = self._client.config.apply_namespace(workflow_name)
        return await RUNTIME.acall(self._create, name, trigger_at, input, additional_metadata)

    def get(self, scheduled_id: str) -> ScheduledWorkflows:
        return RUNTIME.call(self._get, scheduled_id)

    async def aio_get(self, scheduled_id: str) -> ScheduledWorkflows:
        return await RUNTIME.acall(self._get, scheduled_id)

    def update(self, scheduled_id: str, trigger_at: datetime) -> ScheduledWorkflows:
        """Move a schedule that has not fired (`ScheduleNotFoundError` once it has)."""
        return RUNTIME.call(self._update, scheduled_id, trigger_at)

    async def aio_update(self, scheduled_id: str, trigger_at: datetime) -> ScheduledWorkflows:
        return await RUNTIME.acall(self._update, scheduled_id, trigger_at)

    def bulk_update(
        self,
        updates: builtins.list[ScheduledWorkflowsBulkUpdateItem]
        | builtins.list[tuple[str, datetime]],
    ) -> ScheduledWorkflowsBulkUpdateResponse:
        return RUNTIME.call(self._bulk_update, updates)

    async def aio_bulk_update(
        self,
        updates: builtins.list[ScheduledWorkflowsBulkUpdateItem]
        | builtins.list[tuple[str, datetime]],
    ) -> ScheduledWorkflowsBulkUpdateResponse:
        return await RUNTIME.acall(self._bulk_update, updates)

    def delete(self, scheduled_id: str) -> None:
        RUNTIME.call(self._delete, scheduled_id)

    async def aio_delete(self, scheduled_id: str) -> None:
        await RUNTIME.acall(self._delete, scheduled_id)

    def bulk_delete(
        self,
        *,
        scheduled_ids: builtins.list[str] | None = None,
        workflow_id: str | None = None,
        parent_workflow_run_id: str | None = None,
        parent_step_run_id: str | None = None,
        statuses: builtins.list[ScheduledRunStatus] | None = None,
        additional_metadata: JSONMap | None = None,
    ) -> ScheduledWorkflowsBulkDeleteResponse:
        return RUNTIME.call(
            self._bulk_delete,
            scheduled_ids,
            workflow_id,
            parent_workflow_run_id,
            parent_step_run_id,
            statuses,
            additional_metadata,
        )

    async def aio_bulk_delete(
        self,
        *,
        scheduled_ids: builtins.list[str] | None = None,
        workflow_id: str | None = None,
        parent_workflow_run_id: str | None = None,
        parent_step_run_id: str | None = None,
        statuses: builtins.list[ScheduledRunStatus] | None = None,
        additional_metadata: JSONMap | None = None,
    ) -> ScheduledWorkflowsBulkDeleteResponse:
        return await RUNTIME.acall(
            self._bulk_delete,
            scheduled_ids,
            workflow_id,
            parent_workflow_run_id,
            parent_step_run_id,
            statuses,
            additional_metadata,
        )

    def list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        workflow_id: str | None = None,
        parent_workflow_run_id: str | None = None,
        statuses: builtins.list[ScheduledRunStatus] | None = None,
        additional_metadata: JSONMap | None = None,
        order_by_field: ScheduledWorkflowsOrderByField | None = None,
        order_by_direction: WorkflowRunOrderByDirection | None = None,
    ) -> ScheduledWorkflowsList:
        """Schedules, latest trigger time first unless ordered otherwise."""
        return RUNTIME.call(
            self._list,
            offset,
            limit,
            workflow_id,
            parent_workflow_run_id,
            statuses,
            additional_metadata,
            order_by_field,
            order_by_direction,
        )

    async def aio_list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        workflow_id: str | None = None,
        parent_workflow_run_id: str | None = None,
        statuses: builtins.list[ScheduledRunStatus] | None = None,
        additional_metadata: JSONMap | None = None,
        order_by_field: ScheduledWorkflowsOrderByField | None = None,
        order_by_direction: WorkflowRunOrderByDirection | None = None,
    ) -> ScheduledWorkflowsList:
        return await RUNTIME.acall(
            self._list,
            offset,
            limit,
            workflow_id,
            parent_workflow_run_id,
            statuses,
            additional_metadata,
            order_by_field,
            order_by_direction,
        )


def workflow_version(
    workflow_id: str, version: str | None, now: float, schedules: builtins.list[tuple[str, float]]
) -> WorkflowVersion:
    """What `Workflow.schedule` returns: the workflow and the schedules just made."""
    at = utc(now)
    assert at is not None
    return WorkflowVersion(
        id=workflow_id,
        created_at=at,
        updated_at=at,
        version=version or "",
        order=0,
        workflow_id=workflow_id,
        scheduled_workflows=[
            ScheduledWorkflow(id=schedule_id, trigger_at=datetime.fromtimestamp(t, UTC))
            for schedule_id, t in schedules
        ],
    )
