"""`hatchet.cron` and `hatchet.scheduled`: crons and one-time schedules, persisted.

A cron or schedule names its workflow; it fires in a process with a worker serving
that workflow (see hatchlite/store/schedules.py). The input is validated against the
workflow's `input_validator` when the cron or schedule is created, if this process
defines the workflow; nothing is stored when it does not validate.

Times are UTC. A naive `datetime` is read as UTC (as Hatchet's documentation says; its
SDK logs "assuming UTC"), with a warning.
"""

from __future__ import annotations

import builtins
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hatchlite.cron import InvalidCronError, check_hatchet_expression
from hatchlite.dag import check_priority
from hatchlite.exceptions import HatchliteError
from hatchlite.features.summaries import pagination, utc
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import (
    APIResourceMeta,
    CronWorkflows,
    CronWorkflowsList,
    CronWorkflowsMethod,
    CronWorkflowsOrderByField,
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
    CronRecord,
    DuplicateCronNameError,
    NewSchedule,
    ScheduleRecord,
)
from hatchlite.store.shapes import UnknownWorkflowError
from hatchlite.types import JSONMap

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.scheduler.engine import Engine

logger = logging.getLogger("hatchlite")

__all__ = [
    "CronClient",
    "CronNotFoundError",
    "DuplicateCronNameError",
    "InvalidCronError",
    "ScheduleNotFoundError",
    "ScheduledClient",
]


class CronNotFoundError(HatchliteError, ValueError):
    """No cron has the given id."""


class ScheduleNotFoundError(HatchliteError, ValueError):
    """No scheduled run has the given id, or it has fired and cannot change."""


def instant(when: datetime, what: str) -> float:
    """A datetime as epoch seconds; a naive one is read as UTC (with a warning)."""
    if not isinstance(when, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        logger.warning("%s %s is naive; assuming UTC", what, when.isoformat())
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _json_map(value: Any, what: str) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from exc


async def _target(engine: Engine, workflow_name: str, input: Any) -> tuple[str, str]:
    """The stored workflow's id, and the input as JSON (validated when this process
    defines the workflow): raises if there is no such workflow."""
    await engine.ensure_started()
    workflow = engine.defined.get(workflow_name)
    if workflow is not None:
        input_json = workflow.validate_input(input)
        await engine.register([workflow])
    else:
        input_json = _json_map(input, "input")
    record = await engine.store.workflow_by_name(workflow_name)
    if record is None:
        raise WorkflowNotFoundError(_missing(workflow_name, engine, workflow is not None))
    return record.id, input_json


def _missing(workflow_name: str, engine: Engine, defined: bool) -> str:
    if defined:
        return f"workflow {workflow_name!r} was deleted from {engine.path}"
    return f"no workflow named {workflow_name!r} is defined here or registered on {engine.path}"


def _meta(record_id: str, created: float, updated: float) -> APIResourceMeta:
    made, changed = utc(created), utc(updated)
    assert made is not None and changed is not None
    return APIResourceMeta(id=record_id, created_at=made, updated_at=changed)


# -- crons ----------------------------------------------------------------------------


def _cron(record: CronRecord, tenant_id: str) -> CronWorkflows:
    return CronWorkflows(
        metadata=_meta(record.id, record.created_at, record.updated_at),
        tenant_id=tenant_id,
        workflow_version_id=record.workflow_id or "",
        workflow_id=record.workflow_id or "",
        workflow_name=record.workflow_name,
        cron=record.expression,
        name=record.name,
        input=json.loads(record.input_json),
        additional_metadata=json.loads(record.metadata_json),
        enabled=True,
        method=CronWorkflowsMethod(record.method),
        priority=record.priority,
    )


class CronClient:
    """Crons of any workflow: created here (method API) or declared with `on_crons`
    (method DEFAULT, created when the workflow is registered)."""

    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def create_for(
        self,
        workflow_name: str,
        cron_name: str,
        expression: str,
        input: Any,
        additional_metadata: JSONMap | None,
        priority: int | None,
    ) -> CronWorkflows:
        """Create a cron of `workflow_name` (already namespaced)."""
        if not isinstance(cron_name, str) or not cron_name:
            raise ValueError("a cron needs a name (cron_name)")
        expression = check_hatchet_expression(expression)
        checked = check_priority(priority, f"cron {cron_name!r}")
        meta_json = _json_map(additional_metadata, "additional_metadata")
        engine = self._client._engine
        _, input_json = await _target(engine, workflow_name, input)
        try:
            record = await engine.store.create_cron(
                workflow_name,
                cron_name,
                expression,
                input_json,
                meta_json,
                checked,
                engine.clock.time(),
            )
        except UnknownWorkflowError as exc:  # deleted since `_target` looked
            raise WorkflowNotFoundError(_missing(workflow_name, engine, True)) from exc
        engine.wake()  # its first tick is a new deadline
        return _cron(record, self._client.tenant_id)

    async def _get(self, cron_id: str) -> CronWorkflows:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.cron(str(cron_id))
        if record is None:
            raise CronNotFoundError(f"no cron with id {cron_id!r}")
        return _cron(record, self._client.tenant_id)

    async def _list(
        self,
        offset: int | None,
        limit: int | None,
        workflow_id: str | None,
        additional_metadata: JSONMap | None,
        order_by_field: CronWorkflowsOrderByField | None,
        order_by_direction: WorkflowRunOrderByDirection | None,
        workflow_name: str | None,
        cron_name: str | None,
    ) -> CronWorkflowsList:
        engine = self._client._engine
        await engine.ensure_started()
        field = CronWorkflowsOrderByField(order_by_field or CronWorkflowsOrderByField.CREATEDAT)
        direction = WorkflowRunOrderByDirection(
            order_by_direction or WorkflowRunOrderByDirection.DESC
        )
        name = None if workflow_name is None else self._client.config.apply_namespace(workflow_name)
        records, total = await engine.store.crons(
            workflow_id,
            name,
            cron_name,
            _text_map(additional_metadata),
            field.value,
            direction is WorkflowRunOrderByDirection.DESC,
            offset or 0,
            limit,
        )
        return CronWorkflowsList(
            rows=[_cron(r, self._client.tenant_id) for r in records],
            pagination=pagination(offset or 0, limit, total),
        )

    async def _delete(self, cron_id: str) -> None:
        engine = self._client._engine
        await engine.ensure_started()
        if not await engine.store.delete_cron(str(cron_id)):
            raise CronNotFoundError(f"no cron with id {cron_id!r}")

    def create(
        self,
        workflow_name: str,
        cron_name: str,
        expression: str,
        input: JSONMap,
        additional_metadata: JSONMap,
        priority: int | None = None,
    ) -> CronWorkflows:
        """A cron that runs `workflow_name` with `input` at each tick of `expression`
        (UTC; 5 fields, 6 with leading seconds, or an alias such as `@daily`)."""
        name = self._client.config.apply_namespace(workflow_name)
        return RUNTIME.call(
            self.create_for, name, cron_name, expression, input, additional_metadata, priority
        )

    async def aio_create(
        self,
        workflow_name: str,
        cron_name: str,
        expression: str,
        input: JSONMap,
        additional_metadata: JSONMap,
        priority: int | None = None,
    ) -> CronWorkflows:
        name = self._client.config.apply_namespace(workflow_name)
        return await RUNTIME.acall(
            self.create_for, name, cron_name, expression, input, additional_metadata, priority
        )

    def get(self, cron_id: str) -> CronWorkflows:
        return RUNTIME.call(self._get, cron_id)

    async def aio_get(self, cron_id: str) -> CronWorkflows:
        return await RUNTIME.acall(self._get, cron_id)

    def list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        workflow_id: str | None = None,
        additional_metadata: JSONMap | None = None,
        order_by_field: CronWorkflowsOrderByField | None = None,
        order_by_direction: WorkflowRunOrderByDirection | None = None,
        workflow_name: str | None = None,
        cron_name: str | None = None,
    ) -> CronWorkflowsList:
        """Crons, newest first unless ordered otherwise."""
        return RUNTIME.call(
            self._list,
            offset,
            limit,
            workflow_id,
            additional_metadata,
            order_by_field,
            order_by_direction,
            workflow_name,
            cron_name,
        )

    async def aio_list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        workflow_id: str | None = None,
        additional_metadata: JSONMap | None = None,
        order_by_field: CronWorkflowsOrderByField | None = None,
        order_by_direction: WorkflowRunOrderByDirection | None = None,
        workflow_name: str | None = None,
        cron_name: str | None = None,
    ) -> CronWorkflowsList:
        return await RUNTIME.acall(
            self._list,
            offset,
            limit,
            workflow_id,
            additional_metadata,
            order_by_field,
            order_by_direction,
            workflow_name,
            cron_name,
        )

    def delete(self, cron_id: str) -> None:
        """Delete a cron; it fires no more. Raises `CronNotFoundError` if unknown."""
        RUNTIME.call(self._delete, cron_id)

    async def aio_delete(self, cron_id: str) -> None:
        await RUNTIME.acall(self._delete, cron_id)


def _text_map(metadata: JSONMap | None) -> dict[str, str] | None:
    return None if not metadata else {str(k): str(v) for k, v in metadata.items()}


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
        metadata=_meta(record.id, record.created_at, record.updated_at),
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
        workflow_id, input_json = await _target(engine, workflow_name, input)
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
            raise WorkflowNotFoundError(_missing(workflow_name, engine, True)) from exc
        engine.wake()
        return workflow_id, ids

    async def _create(
        self, workflow_name: str, trigger_at: datetime, input: Any, additional_metadata: Any
    ) -> ScheduledWorkflows:
        at = instant(trigger_at, "trigger_at")
        meta_json = _json_map(additional_metadata, "additional_metadata")
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
                _text_map(additional_metadata),
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
            _text_map(additional_metadata),
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
