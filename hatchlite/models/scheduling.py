"""Hatchet's models of crons and one-time schedules (`hatchet.cron`, `hatchet.scheduled`,
`Workflow.schedule`)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from hatchlite.models.base import APIResourceMeta, PaginationResponse, UTCDateTime, _RestModel
from hatchlite.types import JSONMap


class WorkflowRunOrderByDirection(str, Enum):
    ASC = "ASC"
    DESC = "DESC"


class WorkflowRunStatus(str, Enum):
    """The status of the run a schedule made (Hatchet's v0 run statuses)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"
    BACKOFF = "BACKOFF"


# -- crons --------------------------------------------------------------------------


class CronWorkflowsMethod(str, Enum):
    """DEFAULT: declared with `on_crons`; API: created with `create_cron`."""

    DEFAULT = "DEFAULT"
    API = "API"


class CronWorkflowsOrderByField(str, Enum):
    NAME = "name"
    CREATEDAT = "createdAt"


class CronWorkflows(_RestModel):
    metadata: APIResourceMeta
    tenant_id: str
    workflow_version_id: str
    workflow_id: str
    workflow_name: str
    cron: str
    name: str | None = None
    input: JSONMap | None = None
    additional_metadata: JSONMap | None = None
    enabled: bool
    method: CronWorkflowsMethod
    priority: int | None = Field(default=None, ge=1, le=3)


class CronWorkflowsList(_RestModel):
    rows: list[CronWorkflows] | None = None
    pagination: PaginationResponse | None = None


# -- one-time schedules -------------------------------------------------------------


class ScheduledWorkflowsMethod(str, Enum):
    DEFAULT = "DEFAULT"
    API = "API"


class ScheduledWorkflowsOrderByField(str, Enum):
    TRIGGERAT = "triggerAt"
    CREATEDAT = "createdAt"


class ScheduledRunStatus(str, Enum):
    """SCHEDULED until it fires; then the status of the run it made."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"
    SCHEDULED = "SCHEDULED"


class ScheduledWorkflows(_RestModel):
    metadata: APIResourceMeta
    tenant_id: str
    workflow_version_id: str
    workflow_id: str
    workflow_name: str
    trigger_at: UTCDateTime
    input: JSONMap | None = None
    additional_metadata: JSONMap | None = None
    workflow_run_created_at: UTCDateTime | None = None
    workflow_run_name: str | None = None
    workflow_run_status: WorkflowRunStatus | None = None
    workflow_run_id: str | None = None
    method: ScheduledWorkflowsMethod
    priority: int | None = Field(default=None, ge=1, le=3)


class ScheduledWorkflowsList(_RestModel):
    rows: list[ScheduledWorkflows] | None = None
    pagination: PaginationResponse | None = None


class ScheduledWorkflowsBulkError(_RestModel):
    id: str | None = None
    error: str


class ScheduledWorkflowsBulkDeleteResponse(_RestModel):
    deleted_ids: list[str]
    errors: list[ScheduledWorkflowsBulkError]


class ScheduledWorkflowsBulkUpdateItem(_RestModel):
    id: str
    trigger_at: UTCDateTime


class ScheduledWorkflowsBulkUpdateResponse(_RestModel):
    updated_ids: list[str]
    errors: list[ScheduledWorkflowsBulkError]


# -- what `Workflow.schedule` returns (a protobuf message in Hatchet's SDK) -----------


class ScheduledWorkflow(BaseModel):
    """One scheduled run: its id (as `hatchet.scheduled.get` takes) and when it fires."""

    model_config = ConfigDict(frozen=True)

    id: str
    trigger_at: UTCDateTime


class WorkflowVersion(BaseModel):
    """The workflow's version and the schedules just created. hatchlite keeps no
    separate versions: `id` is the workflow's id and `version` its declared version."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: UTCDateTime
    updated_at: UTCDateTime
    version: str
    order: int
    workflow_id: str
    scheduled_workflows: list[ScheduledWorkflow]
