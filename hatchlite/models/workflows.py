"""Hatchet's models of registered workflows (`hatchet.workflows`): the workflow, its
version with tasks, triggers and concurrency limits."""

from __future__ import annotations

from hatchlite.models.base import APIResourceMeta, PaginationResponse, _RestModel
from hatchlite.types import JSONMap


class WorkflowTag(_RestModel):
    name: str
    color: str


class Step(_RestModel):
    """One task of a registered workflow version."""

    metadata: APIResourceMeta
    readable_id: str
    tenant_id: str
    job_id: str
    action: str
    timeout: str | None = None
    is_durable: bool | None = None
    slot_requests: dict[str, int] | None = None
    children: list[str] | None = None
    parents: list[str] | None = None


class Job(_RestModel):
    metadata: APIResourceMeta
    tenant_id: str
    version_id: str
    name: str
    description: str | None = None
    steps: list[Step]
    timeout: str | None = None


class WorkflowVersionMeta(_RestModel):
    metadata: APIResourceMeta
    version: str
    order: int
    workflow_id: str
    workflow: Workflow | None = None


class Workflow(_RestModel):
    """A registered workflow as workflows.list/get return it (not the runnable `Workflow`)."""

    metadata: APIResourceMeta
    name: str
    description: str | None = None
    is_paused: bool | None = None
    versions: list[WorkflowVersionMeta] | None = None
    tags: list[WorkflowTag] | None = None
    jobs: list[Job] | None = None
    tenant_id: str


WorkflowVersionMeta.model_rebuild()


class WorkflowTriggerEventRef(_RestModel):
    parent_id: str | None = None
    event_key: str | None = None


class WorkflowTriggerCronRef(_RestModel):
    parent_id: str | None = None
    cron: str | None = None


class WorkflowTriggers(_RestModel):
    """A workflow version's declared triggers: event keys and crons (`on_events`,
    `on_crons`)."""

    metadata: APIResourceMeta | None = None
    workflow_version_id: str | None = None
    tenant_id: str | None = None
    events: list[WorkflowTriggerEventRef] | None = None
    crons: list[WorkflowTriggerCronRef] | None = None


class WorkflowConcurrency(_RestModel):
    max_runs: int
    limit_strategy: str
    get_concurrency_group: str


class ConcurrencySetting(_RestModel):
    """One concurrency limit of a workflow (no `step_readable_id`) or of one of its tasks."""

    max_runs: int
    limit_strategy: str
    expression: str
    step_readable_id: str | None = None


class WorkflowVersion(_RestModel):
    """What `workflows.get_version` returns: the registered definition of a workflow,
    its tasks (`jobs[0].steps`), triggers and concurrency limits."""

    metadata: APIResourceMeta
    version: str
    order: int
    workflow_id: str
    sticky: str | None = None
    default_priority: int | None = None
    workflow: Workflow | None = None
    concurrency: WorkflowConcurrency | None = None
    triggers: WorkflowTriggers | None = None
    schedule_timeout: str | None = None
    jobs: list[Job] | None = None
    workflow_config: JSONMap | None = None
    v1_concurrency: list[ConcurrencySetting] | None = None
    input_json_schema: JSONMap | None = None


class WorkflowList(_RestModel):
    metadata: APIResourceMeta | None = None
    rows: list[Workflow] | None = None
    pagination: PaginationResponse | None = None
