"""hatchlite: Hatchet's workflow programming model, embedded, on SQLite.

The public names are Hatchet's (`from hatchlite import Hatchet, Context, ...`).
"""

from hatchlite.client import ClientConfig, Hatchet
from hatchlite.clock import Clock, TestClock
from hatchlite.conditions import (
    Condition,
    OrGroup,
    ParentCondition,
    SleepCondition,
    UserEventCondition,
    or_,
)
from hatchlite.context import Context
from hatchlite.dag import Task, WorkflowConfig
from hatchlite.durable import DurableContext, SleepResult
from hatchlite.exceptions import (
    DedupeViolationError,
    FailedTaskRunExceptionGroup,
    HatchliteError,
    IdempotencyCollisionError,
    IllegalTaskOutputError,
    InputValidationError,
    InvalidDefinitionError,
    LifespanSetupError,
    LoopAlreadyRunningError,
    NonDeterminismError,
    NonRetryableException,
    RunNotFoundError,
    TaskRunError,
)
from hatchlite.features.events import (
    BulkPushEventOptions,
    BulkPushEventWithMetadata,
    Event,
    PushEventOptions,
)
from hatchlite.features.runs import BulkCancelReplayOpts, TaskRunDetail, WorkflowRunDetail
from hatchlite.refs import TaskRunRef, WorkflowRunRef
from hatchlite.runnables import BaseWorkflow, Standalone, Workflow
from hatchlite.types import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    DefaultFilter,
    DesiredWorkerLabel,
    EmptyModel,
    EvictionPolicy,
    Priority,
    RateLimit,
    RateLimitDuration,
    RunStatus,
    ScheduleTriggerWorkflowOptions,
    StickyStrategy,
    TaskDefaults,
    TriggerWorkflowOptions,
    V1TaskStatus,
    WorkerLabel,
    WorkerLabelComparator,
    WorkflowRunTriggerConfig,
)
from hatchlite.worker import Worker, WorkerStartOptions, WorkerStatus

__all__ = [
    "BaseWorkflow",
    "BulkCancelReplayOpts",
    "BulkPushEventOptions",
    "BulkPushEventWithMetadata",
    "ClientConfig",
    "Clock",
    "ConcurrencyExpression",
    "ConcurrencyLimitStrategy",
    "Condition",
    "Context",
    "DedupeViolationError",
    "DefaultFilter",
    "DesiredWorkerLabel",
    "DurableContext",
    "EmptyModel",
    "Event",
    "EvictionPolicy",
    "FailedTaskRunExceptionGroup",
    "Hatchet",
    "HatchliteError",
    "IdempotencyCollisionError",
    "IllegalTaskOutputError",
    "InputValidationError",
    "InvalidDefinitionError",
    "LifespanSetupError",
    "LoopAlreadyRunningError",
    "NonDeterminismError",
    "NonRetryableException",
    "OrGroup",
    "ParentCondition",
    "Priority",
    "PushEventOptions",
    "RateLimit",
    "RateLimitDuration",
    "RunNotFoundError",
    "RunStatus",
    "ScheduleTriggerWorkflowOptions",
    "SleepCondition",
    "SleepResult",
    "Standalone",
    "StickyStrategy",
    "Task",
    "TaskDefaults",
    "TaskRunDetail",
    "TaskRunError",
    "TaskRunRef",
    "TestClock",
    "TriggerWorkflowOptions",
    "UserEventCondition",
    "V1TaskStatus",
    "Worker",
    "WorkerLabel",
    "WorkerLabelComparator",
    "WorkerStartOptions",
    "WorkerStatus",
    "Workflow",
    "WorkflowConfig",
    "WorkflowRunDetail",
    "WorkflowRunRef",
    "WorkflowRunTriggerConfig",
    "or_",
]
