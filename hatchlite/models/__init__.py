"""Hatchet's return models: what the runs, logs, workers, workflows, metrics and events
clients give back.

Class names, field names, types, optionality and aliases are those of Hatchet's REST API
(snake_case attributes, camelCase aliases; build and read them by either). Datetimes are
aware and in UTC. A compatibility layer will later map Hatchet's import paths
(`hatchet_sdk.clients.rest.models....`, `hatchet_sdk.features....`) onto these classes, so
each class exists exactly once; the shared enums come from `hatchlite.types`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, model_validator

from hatchlite.models.base import (
    APIResourceMeta,
    PaginationResponse,
    UTCDateTime,
    _RestModel,
)
from hatchlite.models.scheduling import (
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
from hatchlite.models.workers import (
    RecentStepRuns,
    RegisteredWorkflow,
    SemaphoreSlots,
    StepRunStatus,
    UpdateWorkerRequest,
    Worker,
    WorkerLabel,
    WorkerList,
    WorkerRuntimeInfo,
    WorkerRuntimeSDKs,
    WorkerSlotConfig,
    WorkerType,
)
from hatchlite.models.workflows import (
    ConcurrencySetting,
    Job,
    Step,
    Workflow,
    WorkflowConcurrency,
    WorkflowList,
    WorkflowTag,
    WorkflowTriggerCronRef,
    WorkflowTriggerEventRef,
    WorkflowTriggers,
    WorkflowVersion,
    WorkflowVersionMeta,
)
from hatchlite.types import JSONMap, RunStatus, V1TaskStatus

__all__ = [
    "APIResourceMeta",
    "BulkCancelReplayOpts",
    "ConcurrencySetting",
    "ConcurrencyStat",
    "CronWorkflows",
    "CronWorkflowsList",
    "CronWorkflowsMethod",
    "CronWorkflowsOrderByField",
    "DurableHistory",
    "DurableHistoryEntry",
    "Job",
    "PaginationResponse",
    "RecentStepRuns",
    "RegisteredWorkflow",
    "RunFilter",
    "ScheduledRunStatus",
    "ScheduledWorkflow",
    "ScheduledWorkflows",
    "ScheduledWorkflowsBulkDeleteResponse",
    "ScheduledWorkflowsBulkError",
    "ScheduledWorkflowsBulkUpdateItem",
    "ScheduledWorkflowsBulkUpdateResponse",
    "ScheduledWorkflowsList",
    "ScheduledWorkflowsMethod",
    "ScheduledWorkflowsOrderByField",
    "SemaphoreSlots",
    "Step",
    "StepRunStatus",
    "TaskMetrics",
    "TaskStat",
    "TaskStatusStat",
    "UpdateWorkerRequest",
    "V1BranchDurableTaskResponse",
    "V1Event",
    "V1EventList",
    "V1EventTriggeredRun",
    "V1EventWorkflowRunSummary",
    "V1LogLine",
    "V1LogLineLevel",
    "V1LogLineList",
    "V1RestoreTaskResponse",
    "V1TaskEvent",
    "V1TaskEventType",
    "V1TaskStatus",
    "V1TaskSummary",
    "V1TaskSummaryList",
    "V1WorkflowRun",
    "V1WorkflowRunDetails",
    "V1WorkflowType",
    "Worker",
    "WorkerLabel",
    "WorkerList",
    "WorkerRuntimeInfo",
    "WorkerRuntimeSDKs",
    "WorkerSlotConfig",
    "WorkerType",
    "Workflow",
    "WorkflowConcurrency",
    "WorkflowList",
    "WorkflowRunOrderByDirection",
    "WorkflowRunShapeItemForWorkflowRunDetails",
    "WorkflowRunStatus",
    "WorkflowTag",
    "WorkflowTriggerCronRef",
    "WorkflowTriggerEventRef",
    "WorkflowTriggers",
    "WorkflowVersion",
    "WorkflowVersionMeta",
]


# Runs and tasks


class V1WorkflowType(str, Enum):
    DAG = "DAG"
    TASK = "TASK"


class V1TaskEventType(str, Enum):
    REQUEUED_NO_WORKER = "REQUEUED_NO_WORKER"
    REQUEUED_RATE_LIMIT = "REQUEUED_RATE_LIMIT"
    SCHEDULING_TIMED_OUT = "SCHEDULING_TIMED_OUT"
    ASSIGNED = "ASSIGNED"
    STARTED = "STARTED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    REASSIGNED = "REASSIGNED"
    SLOT_RELEASED = "SLOT_RELEASED"
    TIMEOUT_REFRESHED = "TIMEOUT_REFRESHED"
    RETRIED_BY_USER = "RETRIED_BY_USER"
    SENT_TO_WORKER = "SENT_TO_WORKER"
    RATE_LIMIT_ERROR = "RATE_LIMIT_ERROR"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    SKIPPED = "SKIPPED"
    COULD_NOT_SEND_TO_WORKER = "COULD_NOT_SEND_TO_WORKER"
    WAITING_FOR_BATCH = "WAITING_FOR_BATCH"
    BATCH_FLUSHED = "BATCH_FLUSHED"
    DURABLE_EVICTED = "DURABLE_EVICTED"
    DURABLE_RESTORING = "DURABLE_RESTORING"


class V1TaskEvent(_RestModel):
    """One entry of a task's event history (`V1WorkflowRunDetails.task_events`)."""

    id: int
    task_id: str
    timestamp: UTCDateTime
    event_type: V1TaskEventType
    message: str
    error_message: str | None = None
    output: str | None = None  # JSON text, not a dict
    worker_id: str | None = None
    task_display_name: str | None = None
    retry_count: int | None = None
    attempt: int | None = None


class V1TaskSummary(_RestModel):
    """One task run (or a DAG run, with its tasks in `children`) as runs.list returns it."""

    metadata: APIResourceMeta
    action_id: str | None = None
    retry_count: int | None = None
    attempt: int | None = None
    additional_metadata: JSONMap | None = None
    children: list[V1TaskSummary] | None = None
    created_at: UTCDateTime
    display_name: str
    duration: int | None = None  # milliseconds
    error_message: str | None = None
    finished_at: UTCDateTime | None = None
    input: JSONMap
    num_spawned_children: int
    output: JSONMap
    status: V1TaskStatus
    started_at: UTCDateTime | None = None
    step_id: str | None = None
    task_external_id: str
    task_id: int
    task_inserted_at: UTCDateTime
    tenant_id: str
    type: V1WorkflowType
    workflow_id: str
    workflow_name: str | None = None
    workflow_run_external_id: str
    workflow_version_id: str | None = None
    workflow_config: JSONMap | None = None
    parent_task_external_id: str | None = None
    is_durable: bool | None = None
    is_evicted: bool | None = None  # a durable task evicted while it waits (RUNNING)


class V1TaskSummaryList(_RestModel):
    pagination: PaginationResponse
    rows: list[V1TaskSummary]


class V1WorkflowRun(_RestModel):
    """A workflow run as a whole: status, input, output and timing."""

    metadata: APIResourceMeta
    status: V1TaskStatus
    started_at: UTCDateTime | None = None
    finished_at: UTCDateTime | None = None
    duration: int | None = None  # milliseconds
    tenant_id: str
    additional_metadata: JSONMap | None = None
    display_name: str
    workflow_id: str
    output: JSONMap
    error_message: str | None = None
    workflow_version_id: str | None = None
    input: JSONMap
    created_at: UTCDateTime | None = None
    parent_task_external_id: str | None = None


class WorkflowRunShapeItemForWorkflowRunDetails(_RestModel):
    """One task of a run's DAG and the external ids of the tasks that depend on it."""

    task_external_id: str
    children_external_ids: list[str]
    task_name: str


class V1BranchDurableTaskResponse(_RestModel):
    """What `runs.reset_durable_task` returns: the task, the node its new branch starts
    at, and the new branch."""

    task_external_id: str
    node_id: int
    branch_id: int


class DurableHistoryEntry(BaseModel):
    """One durable call of a durable task run (`runs.get_durable_history`, a hatchlite
    extra): its node (1, 2, ... in call order) on a branch of the task's history."""

    branch_id: int
    node_id: int
    kind: str  # NOW, WAIT (a sleep or a wait for events), SPAWN (child runs), MEMO
    key: str
    status: str  # PENDING (a wait not over yet) or SATISFIED
    result: Any = None
    created_at: datetime
    satisfied_at: datetime | None = None
    current: bool  # on the task's current branch (else kept from before a reset)


class DurableHistory(BaseModel):
    """A durable task run's history: its current branch and every entry of every
    branch, by branch then node."""

    task_external_id: str
    current_branch: int
    entries: list[DurableHistoryEntry]


class V1RestoreTaskResponse(_RestModel):
    """What `runs.restore_task` returns: the evicted task was queued again."""

    requeued: bool


class V1WorkflowRunDetails(_RestModel):
    """What runs.get returns: the run, its tasks, their event history and the DAG shape."""

    run: V1WorkflowRun
    task_events: list[V1TaskEvent]
    shape: list[WorkflowRunShapeItemForWorkflowRunDetails]
    tasks: list[V1TaskSummary]
    workflow_config: JSONMap | None = None


class RunFilter(BaseModel):
    """Which runs a bulk cancel or replay applies to."""

    since: datetime
    until: datetime | None = None
    statuses: list[V1TaskStatus] | None = None
    workflow_ids: list[str] | None = None
    additional_metadata: dict[str, str] | None = None


class BulkCancelReplayOpts(BaseModel):
    """Runs to cancel or replay: explicit `ids`, or `filters`; exactly one of them."""

    ids: list[str] | None = None
    filters: RunFilter | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BulkCancelReplayOpts:
        if not self.ids and not self.filters:
            raise ValueError("ids or filters must be set")
        if self.ids and self.filters:
            raise ValueError("ids and filters cannot both be set")
        return self


# Logs


class V1LogLineLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class V1LogLine(_RestModel):
    """One log line of a task run."""

    created_at: UTCDateTime
    message: str
    metadata: JSONMap
    retry_count: int | None = None
    attempt: int | None = None
    level: V1LogLineLevel | None = None
    task_external_id: str | None = None


class V1LogLineList(_RestModel):
    pagination: PaginationResponse | None = None
    rows: list[V1LogLine] | None = None


# Events


class V1EventWorkflowRunSummary(_RestModel):
    """How many runs an event triggered, by status."""

    running: int
    queued: int
    succeeded: int
    failed: int
    cancelled: int


class V1EventTriggeredRun(_RestModel):
    workflow_run_id: str
    filter_id: str | None = None


class V1Event(_RestModel):
    """A stored event as event.list/get return it (`payload` is a dict here)."""

    metadata: APIResourceMeta
    key: str
    tenant: JSONMap | None = None
    tenant_id: str
    workflow_run_summary: V1EventWorkflowRunSummary
    additional_metadata: JSONMap | None = None
    payload: JSONMap | None = None
    scope: str | None = None
    seen_at: UTCDateTime | None = None
    triggered_runs: list[V1EventTriggeredRun] | None = None
    triggering_webhook_name: str | None = None


class V1EventList(_RestModel):
    pagination: PaginationResponse | None = None
    rows: list[V1Event] | None = None


# Metrics


class TaskMetrics(BaseModel):
    """Task run counts by status over a time range (metrics.get_task_metrics)."""

    cancelled: int
    completed: int
    failed: int
    queued: int
    running: int


class ConcurrencyStat(_RestModel):
    expression: str | None = None
    type: str | None = None
    keys: dict[str, int] | None = None


class TaskStatusStat(_RestModel):
    total: int | None = None
    queues: dict[str, int] | None = None
    concurrency: list[ConcurrencyStat] | None = None
    oldest: UTCDateTime | None = None


class TaskStat(_RestModel):
    """Queued and running counts of one task (the values of metrics.get_task_stats)."""

    queued: TaskStatusStat | None = None
    running: TaskStatusStat | None = None


# -- SDK models of `runs.get_details` -------------------------------------------------------


class TaskRunDetail(BaseModel):
    """One task run of `WorkflowRunDetail` (Hatchet's `hatchet_sdk.clients.admin` model)."""

    external_id: str
    readable_id: str
    output: JSONMap | None = None
    error: str | None = None
    status: V1TaskStatus
    is_evicted: bool = False


class WorkflowRunDetail(BaseModel):
    """What `runs.get_details()` returns: the run and the task runs created so far."""

    external_id: str
    status: RunStatus
    input: JSONMap | None = None
    additional_metadata: JSONMap | None = None
    task_runs: dict[str, TaskRunDetail]
    done: bool = False


# -- filters and CEL --------------------------------------------------------------------------


class V1Filter(_RestModel):
    """An event filter of a workflow (`hatchet.filters`)."""

    metadata: APIResourceMeta
    tenant_id: str
    workflow_id: str
    scope: str
    expression: str
    payload: JSONMap
    is_declarative: bool | None = None


class V1FilterList(_RestModel):
    pagination: PaginationResponse | None = None
    rows: list[V1Filter] | None = None


class V1UpdateFilterRequest(_RestModel):
    """What `filters.update` changes (fields left None stay)."""

    expression: str | None = None
    scope: str | None = None
    payload: JSONMap | None = None


class CELSuccess(BaseModel):
    status: Literal["success"] = "success"
    output: bool


class CELFailure(BaseModel):
    status: Literal["failure"] = "failure"
    error: str


class CELEvaluationResult(BaseModel):
    """What `hatchet.cel.debug` returns."""

    result: CELSuccess | CELFailure


# Rate limits


class RateLimitOrderByField(str, Enum):
    KEY = "key"
    VALUE = "value"
    LIMITVALUE = "limitValue"


class RateLimitOrderByDirection(str, Enum):
    ASC = "asc"
    DESC = "desc"


class RateLimit(_RestModel):
    """A stored rate limit (REST model; the task-side `RateLimit` is hatchlite.RateLimit):
    `value` units are left of `limit_value` in the window that began at `last_refill`."""

    key: str
    tenant_id: str
    limit_value: int
    value: int
    window: str
    last_refill: datetime


class RateLimitList(_RestModel):
    pagination: PaginationResponse | None = None
    rows: list[RateLimit] | None = None
