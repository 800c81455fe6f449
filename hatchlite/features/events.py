"""`hatchet.event`: push events (they wake durable waits that match them)."""

from __future__ import annotations

import builtins
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from hatchlite.context import current_context
from hatchlite.dag import check_priority
from hatchlite.exceptions import HatchliteError, PayloadTooLargeError
from hatchlite.features.summaries import pagination
from hatchlite.models import (
    APIResourceMeta,
    V1Event,
    V1EventList,
    V1EventTriggeredRun,
    V1EventWorkflowRunSummary,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import EventIn
from hatchlite.store.events import EventQuery, EventRecord
from hatchlite.types import JSONMap, V1TaskStatus

if TYPE_CHECKING:
    from hatchlite.client import Hatchet


class Event(BaseModel):
    """The result of a push (Hatchet's `hatchet_sdk.clients.events.Event`): payload and
    metadata as JSON text."""

    tenant_id: str
    event_id: str
    key: str
    payload: str
    seen_at: datetime
    additional_metadata: str | None = None
    scope: str | None = None


class PushEventOptions(BaseModel):
    additional_metadata: JSONMap = Field(default_factory=dict)
    namespace: str | None = None
    priority: int | None = None
    scope: str | None = None


class BulkPushEventWithMetadata(BaseModel):
    key: str = ""
    payload: JSONMap = Field(default_factory=dict)
    additional_metadata: JSONMap = Field(default_factory=dict)
    priority: int | None = None
    scope: str | None = None


class BulkPushEventOptions(BaseModel):
    namespace: str | None = None


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {what} must be JSON-serializable: {exc}") from exc


class EventClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    def _prepare(
        self,
        event_key: str,
        payload: JSONMap,
        options: PushEventOptions | None,
        additional_metadata: JSONMap | None,
        priority: int | None,
        scope: str | None,
    ) -> EventIn:
        opts = options or PushEventOptions()
        if not isinstance(event_key, str) or not event_key:
            raise ValueError(f"an event key must be a non-empty string, got {event_key!r}")
        if not isinstance(payload, dict):
            raise ValueError(
                f"the payload of event {event_key!r} must be a dict (a JSON object), got "
                f"{type(payload).__name__}"
            )
        key = self._client.config.apply_namespace(event_key, opts.namespace)
        meta = {**opts.additional_metadata, **(additional_metadata or {})}
        ctx = current_context.get()
        if ctx is not None:  # pushed from inside a task: say which
            meta.setdefault("hatchet__source_workflow_run_id", ctx.workflow_run_id)
            meta.setdefault("hatchet__source_step_run_id", ctx.task_run_id)
        limit = self._client.config.grpc_max_send_message_length
        payload_json, meta_json = _json(payload, "payload"), _json(meta, "additional_metadata")
        PayloadTooLargeError.check(payload_json, limit, f"the payload of event {key!r}")
        PayloadTooLargeError.check(meta_json, limit, f"the additional_metadata of event {key!r}")
        return (
            key,
            payload_json,
            meta_json,
            scope if scope is not None else opts.scope,
            check_priority(priority if priority is not None else opts.priority, f"event {key!r}"),
        )

    async def _push(self, events: list[EventIn]) -> list[Event]:
        engine = self._client._engine
        if self._client._auto_worker:  # a script's events start its own workflows' runs
            await engine.ensure_started()
            await engine.ensure_implicit_worker()
        stored = (await engine.push_events(events)).events
        return [
            Event(
                tenant_id=self._client.tenant_id,
                event_id=one.id,
                key=one.key,
                payload=one.payload_json,
                seen_at=datetime.fromtimestamp(one.created_at, UTC),
                additional_metadata=one.metadata_json,
                scope=one.scope,
            )
            for one in stored
        ]

    def push(
        self,
        event_key: str,
        payload: JSONMap,
        options: PushEventOptions | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        scope: str | None = None,
    ) -> Event:
        """Store an event: it starts the runs of workflows listening to its key (through
        their filters), and meets the conditions (of durable waits and of tasks' wait_for,
        skip_if, cancel_if) that match its key, scope and expression."""
        prepared = self._prepare(event_key, payload, options, additional_metadata, priority, scope)
        return RUNTIME.call(self._push, [prepared])[0]

    async def aio_push(
        self,
        event_key: str,
        payload: JSONMap,
        options: PushEventOptions | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        scope: str | None = None,
    ) -> Event:
        prepared = self._prepare(event_key, payload, options, additional_metadata, priority, scope)
        return (await RUNTIME.acall(self._push, [prepared]))[0]

    def _prepare_bulk(
        self, events: list[BulkPushEventWithMetadata], options: BulkPushEventOptions | None
    ) -> list[EventIn]:
        opts = PushEventOptions(namespace=options.namespace if options else None)
        return [
            self._prepare(e.key, e.payload, opts, e.additional_metadata, e.priority, e.scope)
            for e in events
        ]

    def bulk_push(
        self,
        events: list[BulkPushEventWithMetadata],
        options: BulkPushEventOptions | None = None,
    ) -> list[Event]:
        """Store several events in one transaction; returns them in order."""
        return RUNTIME.call(self._push, self._prepare_bulk(events, options))

    async def aio_bulk_push(
        self,
        events: list[BulkPushEventWithMetadata],
        options: BulkPushEventOptions | None = None,
    ) -> list[Event]:
        return await RUNTIME.acall(self._push, self._prepare_bulk(events, options))

    # -- reading events back ------------------------------------------------------------

    async def _list(self, query: EventQuery) -> V1EventList:
        engine = self._client._engine
        await engine.ensure_started()
        page = await engine.store.events(query)
        return V1EventList(
            rows=[
                _v1_event(e, page.runs.get(e.id, []), self._client.tenant_id) for e in page.events
            ],
            pagination=pagination(query.offset, query.limit, page.total),
        )

    async def _get(self, event_id: str) -> V1Event:
        engine = self._client._engine
        await engine.ensure_started()
        page = await engine.store.event(event_id)
        if not page.events:
            raise EventNotFoundError(f"no event with id {event_id!r}")
        event = page.events[0]
        return _v1_event(event, page.runs.get(event.id, []), self._client.tenant_id)

    def _query(self, args: dict[str, Any]) -> EventQuery:
        """The query of a `list` call's arguments (its `locals()`)."""
        offset, limit = args["offset"], args["limit"]
        if offset is not None and offset < 0:
            raise ValueError(f"offset must be 0 or more, got {offset}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        since, until = _epoch(args["since"]), _epoch(args["until"])
        if since is not None and until is not None and since > until:
            raise ValueError("since is after until")
        keys = args["keys"]
        return EventQuery(
            keys=[self._client.config.apply_namespace(k) for k in keys] if keys else None,
            since=since,
            until=until,
            workflow_ids=args["workflow_ids"],
            workflow_run_statuses=[V1TaskStatus(s).value for s in args["workflow_run_statuses"]]
            if args["workflow_run_statuses"]
            else None,
            event_ids=args["event_ids"],
            additional_metadata={
                str(k): str(v) for k, v in (args["additional_metadata"] or {}).items()
            },
            scopes=args["scopes"],
            offset=offset or 0,
            limit=50 if limit is None else limit,
        )

    def list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        keys: builtins.list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        workflow_ids: builtins.list[str] | None = None,
        workflow_run_statuses: builtins.list[V1TaskStatus] | None = None,
        event_ids: builtins.list[str] | None = None,
        additional_metadata: dict[str, str] | None = None,
        scopes: builtins.list[str] | None = None,
    ) -> V1EventList:
        """Pushed events, newest first (50 a page), with the runs each started."""
        return RUNTIME.call(self._list, self._query(locals()))

    async def aio_list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        keys: builtins.list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        workflow_ids: builtins.list[str] | None = None,
        workflow_run_statuses: builtins.list[V1TaskStatus] | None = None,
        event_ids: builtins.list[str] | None = None,
        additional_metadata: dict[str, str] | None = None,
        scopes: builtins.list[str] | None = None,
    ) -> V1EventList:
        return await RUNTIME.acall(self._list, self._query(locals()))

    def get(self, event_id: str) -> V1Event:
        return RUNTIME.call(self._get, event_id)

    async def aio_get(self, event_id: str) -> V1Event:
        return await RUNTIME.acall(self._get, event_id)


class EventNotFoundError(HatchliteError, ValueError):
    """No event has the given id."""


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


_SUMMARY = {
    "RUNNING": "running",
    "QUEUED": "queued",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
}


def _v1_event(
    event: EventRecord, runs: list[tuple[str, str | None, str]], tenant_id: str
) -> V1Event:
    counts = dict.fromkeys(_SUMMARY.values(), 0)
    for _, _, status in runs:
        counts[_SUMMARY.get(status, "running")] += 1
    seen = datetime.fromtimestamp(event.created_at, UTC)
    return V1Event(
        metadata=APIResourceMeta(id=event.id, created_at=seen, updated_at=seen),
        key=event.key,
        tenant_id=tenant_id,
        workflow_run_summary=V1EventWorkflowRunSummary(**counts),
        additional_metadata=json.loads(event.metadata_json),
        payload=json.loads(event.payload_json),
        scope=event.scope,
        seen_at=seen,
        triggered_runs=[
            V1EventTriggeredRun(workflow_run_id=run_id, filter_id=filter_id)
            for run_id, filter_id, _ in runs
        ],
    )
