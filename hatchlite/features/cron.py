"""`hatchet.cron`: crons of any workflow, persisted (see hatchlite/features/scheduling.py
for what crons and schedules share, and hatchlite/store/schedules.py for firing)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hatchlite.cron import check_hatchet_expression
from hatchlite.dag import check_priority
from hatchlite.exceptions import HatchliteError
from hatchlite.features.summaries import pagination
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import (
    CronWorkflows,
    CronWorkflowsList,
    CronWorkflowsMethod,
    CronWorkflowsOrderByField,
    WorkflowRunOrderByDirection,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.schedules import (
    CronRecord,
)
from hatchlite.store.shapes import UnknownWorkflowError
from hatchlite.types import JSONMap

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
from hatchlite.features.scheduling import (
    json_map,
    missing_workflow,
    resource_meta,
    target_workflow,
    text_map,
)


class CronNotFoundError(HatchliteError, ValueError):
    """No cron has the given id."""


# -- crons ----------------------------------------------------------------------------


def _cron(record: CronRecord, tenant_id: str) -> CronWorkflows:
    return CronWorkflows(
        metadata=resource_meta(record.id, record.created_at, record.updated_at),
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
        meta_json = json_map(additional_metadata, "additional_metadata")
        engine = self._client._engine
        _, input_json = await target_workflow(engine, workflow_name, input)
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
            raise WorkflowNotFoundError(missing_workflow(workflow_name, engine, True)) from exc
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
            text_map(additional_metadata),
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
