"""`hatchet.event`: push events (they wake durable waits that match them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from hatchlite.context import current_context
from hatchlite.dag import check_priority
from hatchlite.exceptions import PayloadTooLargeError
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import EventIn
from hatchlite.types import JSONMap

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
        stored = (await self._client._engine.push_events(events)).events
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
