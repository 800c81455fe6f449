"""Plain models and enums with Hatchet's names, fields and defaults."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta
from enum import Enum, IntEnum
from typing import Any, NewType

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JSONMap = dict[str, Any]
Duration = timedelta | str


class EmptyModel(BaseModel):
    """The input and output model of tasks that declare none."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Priority(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class V1TaskStatus(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class RunStatus(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @classmethod
    def from_v1_task_status(cls, status: V1TaskStatus) -> RunStatus:
        return cls(status.value)

    def to_v1_task_status(self) -> V1TaskStatus:
        return V1TaskStatus(self.value)


class StepType(str, Enum):
    DEFAULT = "default"
    ON_FAILURE = "on_failure"
    ON_SUCCESS = "on_success"


class ConcurrencyLimitStrategy(str, Enum):
    CANCEL_IN_PROGRESS = "CANCEL_IN_PROGRESS"
    DROP_NEWEST = "DROP_NEWEST"
    QUEUE_NEWEST = "QUEUE_NEWEST"
    GROUP_ROUND_ROBIN = "GROUP_ROUND_ROBIN"
    CANCEL_NEWEST = "CANCEL_NEWEST"


class ConcurrencyExpression(BaseModel):
    expression: str
    max_runs: int
    limit_strategy: ConcurrencyLimitStrategy = ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN
    name: str | None = None
    is_tenant_scoped: bool = False  # one tenant here: every limit is tenant-wide

    @field_validator("max_runs")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"max_runs must be positive, got {value}")
        return value

    @classmethod
    def from_int(cls, n: int) -> ConcurrencyExpression:
        return cls(
            expression="'constant'",
            max_runs=n,
            limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
        )


class RateLimitDuration(str, Enum):
    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class RateLimit(BaseModel):
    static_key: str | None = None
    dynamic_key: str | None = None
    units: str | int = 1
    limit: int | str | None = None
    duration: RateLimitDuration = RateLimitDuration.MINUTE

    @model_validator(mode="after")
    def _check_keys(self) -> RateLimit:
        if self.static_key and self.dynamic_key:
            raise ValueError("Cannot have both static key and dynamic key set")
        if self.dynamic_key and self.limit is None:
            raise ValueError("Dynamic key requires a limit to be set")
        return self


class StickyStrategy(str, Enum):
    SOFT = "SOFT"
    HARD = "HARD"


class WorkerLabelComparator(IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    GREATER_THAN = 2
    GREATER_THAN_OR_EQUAL = 3
    LESS_THAN = 4
    LESS_THAN_OR_EQUAL = 5


class DesiredWorkerLabel(BaseModel):
    key: str | None = None
    value: str | int
    required: bool = False
    weight: int | None = None
    comparator: WorkerLabelComparator | int | None = None


class WorkerLabel(BaseModel):
    key: str | None = None
    value: str | int


class EvictionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    ttl: timedelta | None
    allow_capacity_eviction: bool = True
    priority: int = 0


DEFAULT_EVICTION_POLICY = EvictionPolicy(ttl=timedelta(minutes=15))

BatchMemberId = NewType("BatchMemberId", str)
"""A batch member's key in a batch task's input and output dicts: its task run id."""


class BatchTaskConfig(BaseModel):
    """How a batch task batches (Hatchet's `BatchTaskConfig`)."""

    batch_max_size: int
    batch_max_interval: timedelta | None = None
    batch_group_key: str | None = None
    batch_group_max_runs: int | None = None
    broadcast_output: bool = False


class DefaultFilter(BaseModel):
    expression: str
    scope: str
    payload: JSONMap = Field(default_factory=dict)


class TaskDefaults(BaseModel):
    schedule_timeout: Duration | None = None
    execution_timeout: Duration | None = None
    priority: int | None = Field(default=None, ge=1, le=3)
    retries: int | None = None
    backoff_factor: float | None = None
    backoff_max_seconds: int | None = None


class TriggerWorkflowOptions(BaseModel):
    parent_id: str | None = None
    parent_step_run_id: str | None = None
    child_index: int | None = None
    child_key: str | None = None
    namespace: str | None = None
    additional_metadata: JSONMap = Field(default_factory=dict)
    priority: int | None = None
    desired_worker_id: str | None = None
    sticky: bool = False
    key: str | None = None
    desired_worker_label: list[DesiredWorkerLabel] | None = None


class ScheduleTriggerWorkflowOptions(BaseModel):
    parent_id: str | None = None
    parent_step_run_id: str | None = None
    child_index: int | None = None
    child_key: str | None = None
    namespace: str | None = None
    additional_metadata: JSONMap = Field(default_factory=dict)
    priority: int | None = None


class TTLBasedIdempotencyConfig(BaseModel):
    """One run per value of `key_expression` (CEL over `input` and
    `additional_metadata`) for `ttl` after it was triggered."""

    key_expression: str
    ttl: timedelta


class StatusBasedIdempotencyConfig(BaseModel):
    """One run per value of `key_expression` until that run ends (completed, cancelled
    or finally failed), for at most `fallback_ttl`."""

    key_expression: str
    fallback_ttl: timedelta


class WorkflowRunTriggerConfig(BaseModel):
    """One item of `run_many`, made by `create_bulk_run_item`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    workflow_name: str
    input: str | None = None
    options: TriggerWorkflowOptions = Field(default_factory=TriggerWorkflowOptions)
    key: str | None = None
    # hatchlite keeps the validated input as data too, so no JSON round trip is needed.
    input_data: JSONMap | None = Field(default=None, exclude=True)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def to_timedelta(value: Duration | int | float, what: str = "duration") -> timedelta:
    """Read a Hatchet duration: a timedelta, seconds, or a deprecated string like "5m"."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid {what}: {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"invalid {what} {value!r}: use a timedelta or a string like '30s', '5m', '1h'"
            )
        warnings.warn(
            "string durations are deprecated, use datetime.timedelta",
            DeprecationWarning,
            stacklevel=3,
        )
        unit_seconds = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return timedelta(seconds=sum(float(n) * unit_seconds[u] for n, u in parts))
    raise ValueError(f"invalid {what}: {value!r}")


def duration_expr(value: timedelta) -> str:
    """Hatchet's whole-unit rendering of a duration ("60s", "5m", "1h")."""
    seconds = int(value.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    if seconds:
        return f"{seconds}s"
    return "0h"
