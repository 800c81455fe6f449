"""`BaseWorkflow`: what workflows and standalone tasks share — triggering, waiting, and the
workflow as a stored row (its id, runs, pause, schedules, crons, filters).

Every run method is written once, as a coroutine that runs on the engine loop
(`_trigger`); the sync and `aio_` names (in `workflow.py`) are thin bridges to it. The
input is validated and the parent task (for child runs) captured in the caller's
thread, before anything reaches the engine.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hatchlite.context import Context
from hatchlite.dag import (
    TWorkflowInput,
    WorkflowConfig,
    WorkflowDefinition,
    check_priority,
)
from hatchlite.dag.site import Site, definition_site
from hatchlite.exceptions import (
    BulkTriggerIdempotencyCollisionError,
    IdempotencyCollisionError,
    PayloadTooLargeError,
)
from hatchlite.features.scheduled import workflow_version
from hatchlite.features.scheduling import instant
from hatchlite.features.workflows import PausedBehavior
from hatchlite.ids import new_id
from hatchlite.limits import key_run
from hatchlite.models import CronWorkflows, V1Filter, V1TaskSummary
from hatchlite.models.scheduling import WorkflowVersion
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import NewRun, RunResult
from hatchlite.store.routing import Routing, label_specs
from hatchlite.store.schedules import NewSchedule
from hatchlite.types import (
    JSONMap,
    ScheduleTriggerWorkflowOptions,
    TriggerWorkflowOptions,
    V1TaskStatus,
    WorkflowRunTriggerConfig,
)

if TYPE_CHECKING:
    from hatchlite.client import Hatchet


class _Item:
    """One validated trigger, ready for the engine."""

    __slots__ = (
        "child_index",
        "child_key",
        "input_json",
        "key",
        "metadata",
        "priority",
        "route",
    )

    def __init__(
        self,
        input_json: str,
        metadata: JSONMap,
        priority: int,
        child_key: str | None,
        child_index: int | None,
        key: str | None,
    ) -> None:
        self.input_json = input_json
        self.metadata = metadata
        self.priority = priority
        self.child_key = child_key
        self.child_index = child_index
        self.key = key
        self.route: _Route = (False, None, None)


class BaseWorkflow(WorkflowDefinition[TWorkflowInput]):
    """What workflows and standalone tasks share: triggering and waiting."""

    def __init__(self, config: WorkflowConfig, client: Hatchet, site: Site | None = None) -> None:
        self._client = client  # first: the definition's checks read its config
        super().__init__(config, site or definition_site())

    @property
    def client(self) -> Hatchet:
        return self._client

    def config_namespace(self) -> Callable[[str], str]:
        return self._client.config.apply_namespace

    def max_payload_bytes(self) -> int:
        return self._client.config.grpc_max_send_message_length

    def captures_logs(self) -> bool:
        return not self._client.config.disable_log_capture

    @property
    def service_name(self) -> str:
        return self.name.lower()

    def create_bulk_run_item(
        self,
        input: TWorkflowInput | None = None,
        key: str | None = None,
        options: TriggerWorkflowOptions | None = None,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        desired_worker_id: str | None = None,
        sticky: bool = False,
        desired_worker_labels: Any = None,
    ) -> WorkflowRunTriggerConfig:
        """One item for `run_many`; the input is validated now."""
        input_json = self.validate_input(input)
        if options is None:  # the common case, without a copy of default options
            label_specs(desired_worker_labels, f"workflow {self.name!r}: desired_worker_labels")
            return WorkflowRunTriggerConfig(
                workflow_name=self.name,
                input=input_json,
                options=TriggerWorkflowOptions(
                    child_key=child_key,
                    additional_metadata=dict(additional_metadata or {}),
                    priority=check_priority(priority, self.name),
                    desired_worker_id=desired_worker_id,
                    sticky=sticky,
                    desired_worker_label=desired_worker_labels or None,
                ),
                key=key,
            )
        opts = options
        labels = desired_worker_labels or opts.desired_worker_label
        label_specs(labels, f"workflow {self.name!r}: desired_worker_labels")  # checked now
        return WorkflowRunTriggerConfig(
            workflow_name=self.name,
            input=input_json,
            options=TriggerWorkflowOptions(
                **{
                    **opts.model_dump(),
                    "child_key": child_key if child_key is not None else opts.child_key,
                    "additional_metadata": {
                        **opts.additional_metadata,
                        **(additional_metadata or {}),
                    },
                    "priority": check_priority(
                        priority if priority is not None else opts.priority, self.name
                    ),
                    "desired_worker_id": desired_worker_id or opts.desired_worker_id,
                    "sticky": sticky or opts.sticky,
                    "desired_worker_label": labels,
                }
            ),
            key=key,
        )

    # -- the core (runs on the engine loop) ---------------------------------------

    def _item(
        self,
        input: Any,
        options: TriggerWorkflowOptions | None,
        child_key: str | None,
        additional_metadata: JSONMap | None,
        priority: int | None,
        key: str | None = None,
        route: _Route = (False, None, None),
    ) -> _Item:
        opts = options or TriggerWorkflowOptions()
        meta = {
            **self.config.default_additional_metadata,
            **opts.additional_metadata,
            **(additional_metadata or {}),
        }
        try:
            meta_json = json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"additional_metadata must be JSON-serializable: {exc}") from exc
        PayloadTooLargeError.check(
            meta_json, self.max_payload_bytes(), f"the additional_metadata of a {self.name!r} run"
        )
        prio = check_priority(priority if priority is not None else opts.priority, self.name)
        item = _Item(
            self.validate_input(input),
            meta,
            prio if prio is not None else int(self.config.default_priority),
            child_key if child_key is not None else opts.child_key,
            opts.child_index,
            key or opts.key,
        )
        sticky, worker_id, labels = route
        item.route = (
            sticky or opts.sticky,
            worker_id or opts.desired_worker_id,
            labels or opts.desired_worker_label,
        )
        label_specs(item.route[2], f"workflow {self.name!r}: desired_worker_labels")
        return item

    def _item_from_config(self, config: WorkflowRunTriggerConfig) -> _Item:
        opts = config.options
        input_json = config.input if config.input is not None else self.validate_input(None)
        meta = {**self.config.default_additional_metadata, **opts.additional_metadata}
        priority = check_priority(opts.priority, self.name)
        item = _Item(
            input_json,
            meta,
            priority if priority is not None else int(self.config.default_priority),
            opts.child_key,
            opts.child_index,
            config.key,
        )
        item.route = (opts.sticky, opts.desired_worker_id, opts.desired_worker_label)
        label_specs(item.route[2], f"workflow {self.name!r}: desired_worker_labels")
        return item

    async def _trigger(
        self, items: list[_Item], parent: Context | None, wait: bool, bulk: bool = False
    ) -> list[str] | list[RunResult]:
        """Create runs; return their ids, or (wait=True) their results once they end."""
        from hatchlite.durable import DurableContext

        engine = self._client._engine
        if isinstance(parent, DurableContext):
            # A durable parent records the spawn, so a replay does not spawn again, and
            # waits for the children as a durable wait (it may be evicted meanwhile).
            indexed = sum(1 for item in items if item.child_index is None)
            ids = await parent.spawn(
                self.name, lambda: self._create(items, parent, bulk=bulk), indexed
            )
            if not wait:
                return ids
            return await parent._suspended(engine.wait_existing(ids), children=ids)
        if not wait:
            return await self._create(items, parent, bulk=bulk)
        run_ids = [new_id() for _ in items]
        await engine.ensure_started()
        watch = engine.watch(run_ids)
        try:
            ids = await self._create(items, parent, run_ids, bulk=bulk)
        except BaseException:
            watch.cancel()
            raise
        if ids == run_ids:
            return await watch
        # Some were child runs spawned before: wait for those instead.
        watch.cancel()
        return await engine.wait_existing(ids)

    async def _create(
        self,
        items: list[_Item],
        parent: Context | None,
        run_ids: list[str] | None = None,
        *,
        bulk: bool = False,
    ) -> list[str]:
        """Insert the runs (one transaction); returns their ids — for a child that
        exists already (same parent task and key or index), the existing run's id.

        A run whose idempotency key is held is not created: a single trigger raises
        IdempotencyCollisionError; a bulk one (`bulk`) creates the others and then
        raises BulkTriggerIdempotencyCollisionError."""
        client = self._client
        engine = client._engine
        engine.defined.check_current(self)
        await engine.ensure_started()
        if client._auto_worker:
            await engine.ensure_implicit_worker()
        shape = self.shape()
        runs: list[NewRun] = []
        for n, item in enumerate(items):
            run_id = run_ids[n] if run_ids else new_id()
            task_ids = (
                {name: new_id() for name in shape.tasks}
                if shape.is_dag
                else {next(iter(shape.tasks)): run_id}
            )
            run = NewRun(
                run_id,
                self.name,
                item.input_json,
                "",
                item.priority,
                task_ids,
                trigger_key=item.key,
                shape=shape,
            )
            meta = item.metadata
            if parent is not None:
                meta = {**parent.additional_metadata, **meta}
                run.parent_workflow_run_id = parent.workflow_run_id
                run.parent_task_run_id = parent.task_run_id
                run.child_key = item.child_key
                run.child_index = (
                    item.child_index if item.child_index is not None else parent.next_spawn_index()
                )
            run.metadata_json = json.dumps(meta) if meta else "{}"
            run.routing_json = _routing(item.route, parent, self.name)
            # Evaluated here, on the caller's side: a key that fails refuses the trigger.
            key_run(shape, run)
            runs.append(run)
        triggered = await engine.trigger([self], runs)
        collisions = [
            IdempotencyCollisionError(
                f"workflow {self.name!r}: idempotency key {run.idempotency_key!r} is held by "
                f"run {t.run_id}; no run was created",
                existing_run_external_id=t.run_id,
            )
            for run, t in zip(runs, triggered, strict=True)
            if t.collided
        ]
        if collisions and not bulk:
            raise collisions[0]
        if collisions:
            created = [t.run_id for t in triggered if not t.collided]
            raise BulkTriggerIdempotencyCollisionError(
                f"workflow {self.name!r}: {len(collisions)} of {len(runs)} runs hit held "
                f"idempotency keys and were not created; {len(created)} were",
                successful_workflow_run_external_ids=created,
                collisions=collisions,
            )
        return [t.run_id for t in triggered]

    # -- the workflow as a stored row: id, runs, pause ------------------------------------

    async def _id(self) -> str:
        engine = self._client._engine
        await engine.ensure_started()
        await engine.register([self])
        record = await engine.store.workflow_by_name(self.name)
        if record is None:
            raise ValueError(f"workflow {self.name!r} is not registered")
        return record.id

    @property
    def id(self) -> str:
        """The workflow's stored id (what `runs.list(workflow_ids=...)` takes); reading
        it registers the workflow if it is not (also after a delete)."""
        return RUNTIME.call(self._id)

    def list_runs(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int | None = None,
        statuses: list[V1TaskStatus] | None = None,
        additional_metadata: dict[str, str] | None = None,
        worker_id: str | None = None,
        parent_task_external_id: str | None = None,
        only_tasks: bool = False,
        triggering_event_external_id: str | None = None,
    ) -> list[V1TaskSummary]:
        """This workflow's runs (see `hatchet.runs.list`)."""
        return self._client.runs.list(
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            statuses=statuses,
            additional_metadata=additional_metadata,
            worker_id=worker_id,
            parent_task_external_id=parent_task_external_id,
            only_tasks=only_tasks,
            triggering_event_external_id=triggering_event_external_id,
            workflow_ids=[self.id],
        ).rows

    async def aio_list_runs(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int | None = None,
        statuses: list[V1TaskStatus] | None = None,
        additional_metadata: dict[str, str] | None = None,
        worker_id: str | None = None,
        parent_task_external_id: str | None = None,
        only_tasks: bool = False,
        triggering_event_external_id: str | None = None,
    ) -> list[V1TaskSummary]:
        workflow_id = await RUNTIME.acall(self._id)
        page = await self._client.runs.aio_list(
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            statuses=statuses,
            additional_metadata=additional_metadata,
            worker_id=worker_id,
            parent_task_external_id=parent_task_external_id,
            only_tasks=only_tasks,
            triggering_event_external_id=triggering_event_external_id,
            workflow_ids=[workflow_id],
        )
        return page.rows

    def pause(
        self,
        queue_ttl: timedelta,
        paused_workflow_cron_run_queue_behavior: PausedBehavior = "QUEUE",
        paused_workflow_scheduled_run_queue_behavior: PausedBehavior = "QUEUE",
    ) -> None:
        """Pause this workflow (see `hatchet.workflows.pause`)."""
        self._client.workflows.pause(
            self.id,
            queue_ttl,
            paused_workflow_cron_run_queue_behavior,
            paused_workflow_scheduled_run_queue_behavior,
        )

    async def aio_pause(
        self,
        queue_ttl: timedelta,
        paused_workflow_cron_run_queue_behavior: PausedBehavior = "QUEUE",
        paused_workflow_scheduled_run_queue_behavior: PausedBehavior = "QUEUE",
    ) -> None:
        await self._client.workflows.aio_pause(
            await RUNTIME.acall(self._id),
            queue_ttl,
            paused_workflow_cron_run_queue_behavior,
            paused_workflow_scheduled_run_queue_behavior,
        )

    async def _schedule(
        self,
        run_ats: list[datetime],
        input: Any,
        options: ScheduleTriggerWorkflowOptions | None,
        child_key: str | None,
        additional_metadata: JSONMap | None,
        priority: int | None,
    ) -> WorkflowVersion:
        opts = options or ScheduleTriggerWorkflowOptions()
        meta = {**opts.additional_metadata, **(additional_metadata or {})}
        try:
            meta_json = json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"additional_metadata must be JSON-serializable: {exc}") from exc
        prio = check_priority(priority if priority is not None else opts.priority, self.name)
        schedules = [
            NewSchedule(
                self.name,
                instant(run_at, "run_at"),
                "",
                meta_json,
                prio,
                "API",
                opts.parent_id,
                opts.parent_step_run_id,
                opts.child_index,
                child_key if child_key is not None else opts.child_key,
            )
            for run_at in run_ats
        ]
        scheduled = self._client.scheduled
        workflow_id, ids = await scheduled.create_many(self.name, schedules, input)
        return workflow_version(
            workflow_id,
            self.config.version,
            self._client._engine.clock.time(),
            [(i, s.trigger_at) for i, s in zip(ids, schedules, strict=True)],
        )

    def schedule(
        self,
        run_at: datetime,
        input: TWorkflowInput | None = None,
        options: ScheduleTriggerWorkflowOptions | None = None,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
    ) -> WorkflowVersion:
        """Run this workflow once at `run_at` (UTC; a naive datetime is read as UTC). The
        schedule is stored: `hatchet.scheduled` lists, moves and deletes it."""
        return RUNTIME.call(
            self._schedule, [run_at], input, options, child_key, additional_metadata, priority
        )

    async def aio_schedule(
        self,
        run_at: datetime,
        input: TWorkflowInput | None = None,
        options: ScheduleTriggerWorkflowOptions | None = None,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
    ) -> WorkflowVersion:
        return await RUNTIME.acall(
            self._schedule, [run_at], input, options, child_key, additional_metadata, priority
        )

    def create_cron(
        self,
        cron_name: str,
        expression: str,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
    ) -> CronWorkflows:
        """A cron running this workflow at each tick of `expression` (see
        `hatchet.cron.create`); its name is unique for this workflow."""
        return RUNTIME.call(
            self._client.cron.create_for,
            self.name,
            cron_name,
            expression,
            input,
            additional_metadata,
            priority,
        )

    async def aio_create_cron(
        self,
        cron_name: str,
        expression: str,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
    ) -> CronWorkflows:
        return await RUNTIME.acall(
            self._client.cron.create_for,
            self.name,
            cron_name,
            expression,
            input,
            additional_metadata,
            priority,
        )

    def create_filter(
        self, expression: str, scope: str, payload: JSONMap | None = None
    ) -> V1Filter:
        """An event filter of this workflow (see `hatchet.filters.create`)."""
        return self._client.filters.create(self.id, expression, scope, payload)

    async def aio_create_filter(
        self, expression: str, scope: str, payload: JSONMap | None = None
    ) -> V1Filter:
        workflow_id = await RUNTIME.acall(self._id)
        return await self._client.filters.aio_create(workflow_id, expression, scope, payload)

    def unpause(self) -> None:
        self._client.workflows.unpause(self.id)

    async def aio_unpause(self) -> None:
        await self._client.workflows.aio_unpause(await RUNTIME.acall(self._id))

    def delete(self) -> None:
        """Remove this workflow's registration (see `hatchet.workflows.delete`)."""
        self._client.workflows.delete(self.id)

    async def aio_delete(self) -> None:
        await self._client.workflows.aio_delete(await RUNTIME.acall(self._id))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return RUNTIME.call(functools.partial(fn, *args))

    async def _acall(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await RUNTIME.acall(functools.partial(fn, *args))


_Route = tuple[bool, str | None, Any]  # sticky, desired_worker_id, desired_worker_labels


def _routing(route: _Route, parent: Context | None, name: str) -> str | None:
    """A trigger's routing as stored with its run: `sticky=True` keeps a child run to
    its parent's worker (softly); a run with no parent, to the worker of its first task."""
    sticky, worker_id, labels = route
    if not (sticky or worker_id or labels):
        return None
    if sticky and worker_id is None and parent is not None:
        worker_id = parent.worker_id
    specs = label_specs(labels, f"workflow {name!r}: desired_worker_labels")
    return Routing("SOFT" if sticky else None, worker_id, specs).to_json()


def _durable(parent: Context | None) -> bool:
    from hatchlite.durable import DurableContext

    return isinstance(parent, DurableContext)
