"""`hatchet.filters`: a workflow's event filters, and `hatchet.cel.debug`.

A workflow that listens to events and has filters starts a run for an event only
through a filter of the event's scope whose CEL expression is true of it (see
hatchlite/store/triggers.py); `default_filters=[...]` on a workflow creates such filters
("declarative") when the workflow is registered.
"""

from __future__ import annotations

import builtins
import json
from typing import TYPE_CHECKING, Any

from hatchlite.cel import InvalidCELError, check_boolean, evaluate
from hatchlite.exceptions import HatchliteError
from hatchlite.features.summaries import pagination, utc
from hatchlite.models import (
    APIResourceMeta,
    CELEvaluationResult,
    CELFailure,
    CELSuccess,
    V1Filter,
    V1FilterList,
    V1UpdateFilterRequest,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.triggers import FilterRecord
from hatchlite.types import JSONMap

if TYPE_CHECKING:
    from hatchlite.client import Hatchet


class FilterNotFoundError(HatchliteError, ValueError):
    """No filter (or no workflow, for a new filter) has the given id."""


def _filter(record: FilterRecord, tenant_id: str) -> V1Filter:
    created, updated = utc(record.created_at), utc(record.updated_at)
    assert created is not None and updated is not None
    return V1Filter(
        metadata=APIResourceMeta(id=record.id, created_at=created, updated_at=updated),
        tenant_id=tenant_id,
        workflow_id=record.workflow_id or "",
        scope=record.scope,
        expression=record.expression,
        payload=json.loads(record.payload_json),
        is_declarative=record.is_declarative,
    )


def _checked(expression: str | None, scope: str | None, payload: JSONMap | None) -> str | None:
    """Refuse a bad filter before anything is stored; the payload as JSON."""
    if expression is not None:
        check_boolean(expression, "filter expression")
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise ValueError(f"a filter's scope must be a non-empty string, got {scope!r}")
    if payload is None:
        return None
    if not isinstance(payload, dict):
        raise ValueError(f"a filter's payload must be a dict, got {type(payload).__name__}")
    try:
        return json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a filter's payload must be JSON-serializable: {exc}") from exc


class FiltersClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def _create(
        self, workflow_id: str, expression: str, scope: str, payload_json: str
    ) -> V1Filter:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.create_filter(
            workflow_id, expression, scope, payload_json, engine.clock.time()
        )
        if record is None:
            raise FilterNotFoundError(f"no workflow with id {workflow_id!r}")
        return _filter(record, self._client.tenant_id)

    async def _get(self, filter_id: str) -> V1Filter:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.filter(filter_id)
        if record is None:
            raise FilterNotFoundError(f"no filter with id {filter_id!r}")
        return _filter(record, self._client.tenant_id)

    async def _list(
        self,
        limit: int | None,
        offset: int | None,
        workflow_ids: builtins.list[str] | None,
        scopes: builtins.list[str] | None,
    ) -> V1FilterList:
        engine = self._client._engine
        await engine.ensure_started()
        records, total = await engine.store.filters(workflow_ids, scopes, limit, offset or 0)
        return V1FilterList(
            rows=[_filter(r, self._client.tenant_id) for r in records],
            pagination=pagination(offset or 0, limit, total),
        )

    async def _update(self, filter_id: str, updates: V1UpdateFilterRequest) -> V1Filter:
        payload_json = _checked(updates.expression, updates.scope, updates.payload)
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.update_filter(
            filter_id, updates.expression, updates.scope, payload_json, engine.clock.time()
        )
        if record is None:
            raise FilterNotFoundError(f"no filter with id {filter_id!r}")
        return _filter(record, self._client.tenant_id)

    async def _delete(self, filter_id: str) -> V1Filter:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.delete_filter(filter_id)
        if record is None:
            raise FilterNotFoundError(f"no filter with id {filter_id!r}")
        return _filter(record, self._client.tenant_id)

    def create(
        self, workflow_id: str, expression: str, scope: str, payload: JSONMap | None = None
    ) -> V1Filter:
        """A filter of a workflow: events of `scope` start a run of it when `expression`
        (CEL over `input`, `additional_metadata`, `payload`, `event_key`, `event_id`) is
        true; the run sees `payload` as `ctx.filter_payload`."""
        payload_json = _checked(expression, scope, payload or {}) or "{}"
        return RUNTIME.call(self._create, workflow_id, expression, scope, payload_json)

    async def aio_create(
        self, workflow_id: str, expression: str, scope: str, payload: JSONMap | None = None
    ) -> V1Filter:
        payload_json = _checked(expression, scope, payload or {}) or "{}"
        return await RUNTIME.acall(self._create, workflow_id, expression, scope, payload_json)

    def get(self, filter_id: str) -> V1Filter:
        return RUNTIME.call(self._get, filter_id)

    async def aio_get(self, filter_id: str) -> V1Filter:
        return await RUNTIME.acall(self._get, filter_id)

    def list(
        self,
        limit: int | None = None,
        offset: int | None = None,
        workflow_ids: builtins.list[str] | None = None,
        scopes: builtins.list[str] | None = None,
    ) -> V1FilterList:
        return RUNTIME.call(self._list, limit, offset, workflow_ids, scopes)

    async def aio_list(
        self,
        limit: int | None = None,
        offset: int | None = None,
        workflow_ids: builtins.list[str] | None = None,
        scopes: builtins.list[str] | None = None,
    ) -> V1FilterList:
        return await RUNTIME.acall(self._list, limit, offset, workflow_ids, scopes)

    def update(self, filter_id: str, updates: V1UpdateFilterRequest) -> V1Filter:
        return RUNTIME.call(self._update, filter_id, updates)

    async def aio_update(self, filter_id: str, updates: V1UpdateFilterRequest) -> V1Filter:
        return await RUNTIME.acall(self._update, filter_id, updates)

    def delete(self, filter_id: str) -> V1Filter:
        return RUNTIME.call(self._delete, filter_id)

    async def aio_delete(self, filter_id: str) -> V1Filter:
        return await RUNTIME.acall(self._delete, filter_id)


class CELClient:
    """`hatchet.cel`: try an expression as a filter would see it."""

    def debug(
        self,
        expression: str,
        input: JSONMap,
        additional_metadata: JSONMap | None = None,
        filter_payload: JSONMap | None = None,
    ) -> CELEvaluationResult:
        """Evaluate `expression` with `input`, `additional_metadata` and `payload` (the
        filter payload): success with the bool it gave, or failure with why."""
        try:
            check_boolean(expression, "expression")
        except InvalidCELError as exc:
            return CELEvaluationResult(result=CELFailure(error=str(exc)))
        variables: dict[str, Any] = {
            "input": input,
            "additional_metadata": additional_metadata or {},
            "payload": filter_payload or {},
            "event_key": "",  # a filter sees them; here they are empty
            "event_id": "",
        }
        result = evaluate(expression, variables)
        if result.error is not None or result.value is None:
            return CELEvaluationResult(result=CELFailure(error=result.error or "no value"))
        return CELEvaluationResult(result=CELSuccess(output=result.value))

    async def aio_debug(
        self,
        expression: str,
        input: JSONMap,
        additional_metadata: JSONMap | None = None,
        filter_payload: JSONMap | None = None,
    ) -> CELEvaluationResult:
        return self.debug(expression, input, additional_metadata, filter_payload)
