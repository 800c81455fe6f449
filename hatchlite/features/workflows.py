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
from hatchlite.models import (
    APIResourceMeta,
    ConcurrencySetting,
    Job,
    Step,
    Workflow,
    WorkflowConcurrency,
    WorkflowList,
    WorkflowTriggerCronRef,
    WorkflowTriggerEventRef,
    WorkflowTriggers,
    WorkflowVersion,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.scheduler.workers import action_id
from hatchlite.store.records import WorkflowShape
from hatchlite.store.workflows import WorkflowRecord
from hatchlite.types import duration_expr

if TYPE_CHECKING:
    from hatchlite.client import Hatchet

PausedBehavior = Literal["DROP", "QUEUE"]
_BEHAVIORS = ("DROP", "QUEUE")


class WorkflowNotFoundError(HatchliteError, ValueError):
    """No workflow has the given id (or name)."""


def _meta(record: WorkflowRecord, id_: str | None = None) -> APIResourceMeta:
    created, updated = utc(record.created_at), utc(record.updated_at)
    assert created is not None and updated is not None
    return APIResourceMeta(id=id_ or record.id, created_at=created, updated_at=updated)


def _workflow(
    record: WorkflowRecord, tenant_id: str, shape: WorkflowShape | None = None
) -> Workflow:
    return Workflow(
        metadata=_meta(record),
        name=record.name,
        description=record.description,
        is_paused=record.is_paused,
        tenant_id=tenant_id,
        jobs=_jobs(record, shape, tenant_id) if shape is not None else None,
    )


def _jobs(record: WorkflowRecord, shape: WorkflowShape, tenant_id: str) -> list[Job]:
    """The workflow's tasks as Hatchet lists them: one job whose steps are the tasks."""
    tasks = [*shape.tasks.values(), *([shape.on_failure] if shape.on_failure else [])]
    steps = [
        Step(
            metadata=_meta(record, f"{record.id}:{t.name}"),
            readable_id=t.name,
            tenant_id=tenant_id,
            job_id=record.id,
            action=action_id(shape.name, t.name),
            timeout=duration_expr(timedelta(seconds=t.execution_timeout)),
            is_durable=t.is_durable,
            slot_requests={"durable" if t.is_durable else "default": t.slot_cost},
            children=list(t.children),
            parents=list(t.parents),
        )
        for t in tasks
    ]
    return [
        Job(
            metadata=_meta(record),
            tenant_id=tenant_id,
            version_id=record.version or "",
            name=record.name,
            description=record.description,
            steps=steps,
        )
    ]


def _version(record: WorkflowRecord, shape: WorkflowShape, tenant_id: str) -> WorkflowVersion:
    limits = [
        ConcurrencySetting(max_runs=c.max_runs, limit_strategy=c.strategy, expression=c.expression)
        for c in shape.concurrency
    ] + [
        ConcurrencySetting(
            max_runs=c.max_runs,
            limit_strategy=c.strategy,
            expression=c.expression,
            step_readable_id=t.name,
        )
        for t in shape.tasks.values()
        for c in t.concurrency
    ]
    first = shape.concurrency[0] if shape.concurrency else None
    return WorkflowVersion(
        metadata=_meta(record),
        version=record.version or "",
        order=1,
        workflow_id=record.id,
        sticky=shape.sticky,
        default_priority=shape.default_priority,
        workflow=_workflow(record, tenant_id),
        concurrency=(
            WorkflowConcurrency(
                max_runs=first.max_runs,
                limit_strategy=first.strategy,
                get_concurrency_group=first.expression,
            )
            if first is not None
            else None
        ),
        triggers=WorkflowTriggers(
            workflow_version_id=record.id,
            tenant_id=tenant_id,
            events=[
                WorkflowTriggerEventRef(parent_id=record.id, event_key=k) for k in shape.on_events
            ],
            crons=[WorkflowTriggerCronRef(parent_id=record.id, cron=c) for c in shape.on_crons],
        ),
        jobs=_jobs(record, shape, tenant_id),
        v1_concurrency=limits or None,
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
        shapes = [await engine.store.registered_shape(r.name) for r in records]
        return WorkflowList(
            rows=[
                _workflow(r, self._client.tenant_id, shape)
                for r, shape in zip(records, shapes, strict=True)
            ],
            pagination=pagination(offset or 0, limit, total),
        )

    async def _get(self, workflow_id: str) -> Workflow:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.workflow(workflow_id)
        if record is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        shape = await engine.store.registered_shape(record.name)
        return _workflow(record, self._client.tenant_id, shape)

    async def _get_version(self, workflow_id: str, version: str | None) -> WorkflowVersion:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.workflow(workflow_id)
        shape = None if record is None else await engine.store.registered_shape(record.name)
        if record is None or shape is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        if version is not None and version != (record.version or ""):
            raise WorkflowNotFoundError(
                f"workflow {record.name!r} has no version {version!r} (its version is "
                f"{record.version!r}; hatchlite keeps the definition each run was made with, "
                f"not older versions' descriptions)"
            )
        return _version(record, shape, self._client.tenant_id)

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

    def get_version(self, workflow_id: str, version: str | None = None) -> WorkflowVersion:
        """The registered definition of a workflow: its tasks (`jobs[0].steps`, with
        parents), declared event and cron triggers, concurrency limits (workflow and
        task level, `v1_concurrency`), sticky strategy and default priority."""
        return RUNTIME.call(self._get_version, workflow_id, version)

    async def aio_get_version(
        self, workflow_id: str, version: str | None = None
    ) -> WorkflowVersion:
        return await RUNTIME.acall(self._get_version, workflow_id, version)

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
