"""Hatchet's models of workers (`hatchet.workers`)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from hatchlite.models.base import APIResourceMeta, PaginationResponse, UTCDateTime, _RestModel


class WorkerType(str, Enum):
    SELFHOSTED = "SELFHOSTED"
    MANAGED = "MANAGED"
    WEBHOOK = "WEBHOOK"


class WorkerRuntimeSDKs(str, Enum):
    GOLANG = "GOLANG"
    PYTHON = "PYTHON"
    TYPESCRIPT = "TYPESCRIPT"


class StepRunStatus(str, Enum):
    PENDING = "PENDING"
    PENDING_ASSIGNMENT = "PENDING_ASSIGNMENT"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CANCELLING = "CANCELLING"
    BACKOFF = "BACKOFF"


class WorkerLabel(_RestModel):
    """A label a worker carries (the REST model, not `hatchlite.types.WorkerLabel`)."""

    metadata: APIResourceMeta
    key: str
    value: str | None = None


class WorkerRuntimeInfo(_RestModel):
    sdk_version: str | None = None
    language: WorkerRuntimeSDKs | None = None
    language_version: str | None = None
    os: str | None = None
    runtime_extra: str | None = None


class WorkerSlotConfig(_RestModel):
    """Availability and limit of one slot type."""

    available: int | None = None
    limit: int


class SemaphoreSlots(_RestModel):
    """One slot of a worker that a task run holds."""

    step_run_id: str
    action_id: str
    started_at: UTCDateTime | None = None
    timeout_at: UTCDateTime | None = None
    workflow_run_id: str
    status: StepRunStatus | None = None


class RecentStepRuns(_RestModel):
    metadata: APIResourceMeta
    action_id: str
    status: StepRunStatus
    started_at: UTCDateTime | None = None
    finished_at: UTCDateTime | None = None
    cancelled_at: UTCDateTime | None = None
    workflow_run_id: str


class RegisteredWorkflow(_RestModel):
    id: str
    name: str


class Worker(_RestModel):
    """A worker as workers.list/get return it (not `hatchlite.Worker`, the one you start)."""

    metadata: APIResourceMeta
    name: str
    type: WorkerType
    last_heartbeat_at: UTCDateTime | None = None
    last_listener_established: UTCDateTime | None = None
    actions: list[str] | None = None
    registered_workflows: list[RegisteredWorkflow] | None = None
    slots: list[SemaphoreSlots] | None = None
    recent_step_runs: list[RecentStepRuns] | None = None
    status: Literal["ACTIVE", "INACTIVE", "PAUSED"] | None = None
    max_runs: int | None = None
    available_runs: int | None = None
    slot_config: dict[str, WorkerSlotConfig] | None = None
    dispatcher_id: str | None = None
    labels: list[WorkerLabel] | None = None
    webhook_url: str | None = None
    webhook_id: str | None = None
    runtime_info: WorkerRuntimeInfo | None = None


class WorkerList(_RestModel):
    pagination: PaginationResponse | None = None
    rows: list[Worker] | None = None


class UpdateWorkerRequest(_RestModel):
    """The change workers.update applies: pause or unpause a worker."""

    is_paused: bool | None = None
