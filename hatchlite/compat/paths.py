"""Where each `hatchet_sdk` name lives in hatchlite.

`MODULES` maps a `hatchet_sdk` module path to the names it offers; each name is found in
hatchlite by `OBJECTS` (explicit homes, for names whose home is ambiguous) or else in the
first of `SEARCH` that has it. A name hatchlite lacks is still listed when Hatchet has
it, so that importing it fails with a message rather than as a typo would.
`UNSUPPORTED` says why a name or a module is not there, and what to use instead.
"""

from __future__ import annotations

ROOT = "hatchet_sdk"
REST_MODELS = "hatchet_sdk.clients.rest.models"

# Modules searched in order for a name without an explicit home.
SEARCH = (
    "hatchlite",
    "hatchlite.types",
    "hatchlite.exceptions",
    "hatchlite.conditions",
    "hatchlite.context",
    "hatchlite.durable",
    "hatchlite.refs",
    "hatchlite.runnables",
    "hatchlite.worker",
    "hatchlite.serde",
    "hatchlite.contextvars",
    "hatchlite.client",
    "hatchlite.features.runs",
    "hatchlite.features.events",
    "hatchlite.features.filters",
    "hatchlite.features.cron",
    "hatchlite.features.scheduled",
    "hatchlite.features.rate_limits",
    "hatchlite.features.workers",
    "hatchlite.features.workflows",
    "hatchlite.features.metrics",
    "hatchlite.features.logs",
    "hatchlite.models",
)

# Names whose hatchlite home is not the first found by SEARCH.
OBJECTS: dict[str, str] = {
    # Top-level `hatchet_sdk.Workflow` is the REST model; the runnable is in
    # `hatchet_sdk.runnables.workflow` (see MODULE_OBJECTS).
    "Workflow": "hatchlite.models:Workflow",
    "WorkflowList": "hatchlite.models:WorkflowList",
    "PaginationResponse": "hatchlite.models:PaginationResponse",
    "APIResourceMeta": "hatchlite.models:APIResourceMeta",
    "WorkflowTag": "hatchlite.models:WorkflowTag",
    "WorkflowVersionMeta": "hatchlite.models:WorkflowVersionMeta",
    "WorkerList": "hatchlite.models:WorkerList",
    "Job": "hatchlite.models:Job",
    "StepRunStatus": "hatchlite.models:StepRunStatus",
    "WorkflowRunStatus": "hatchlite.models:WorkflowRunStatus",
    "CELEvaluationResult": "hatchlite.models:CELEvaluationResult",
    "CELSuccess": "hatchlite.models:CELSuccess",
    "CELFailure": "hatchlite.models:CELFailure",
    "TaskApi": "hatchlite.features.rest:TaskApi",
    "TaskMetrics": "hatchlite.models:TaskMetrics",
}

# Per-module exceptions to OBJECTS (the same name meaning another thing there).
MODULE_OBJECTS: dict[str, dict[str, str]] = {
    "hatchet_sdk.runnables.workflow": {"Workflow": "hatchlite.runnables:Workflow"},
    "hatchet_sdk.clients.events": {"Event": "hatchlite.features.events:Event"},
    "hatchet_sdk.worker.worker": {"Worker": "hatchlite.worker:Worker"},
    "hatchet_sdk.worker": {"Worker": "hatchlite.worker:Worker"},
}

_TOP = """
BulkCancelReplayOpts BulkPushEventOptions BulkPushEventWithMetadata
BulkTriggerIdempotencyCollisionError CELEvaluationResult CELFailure CELSuccess ClientConfig
ConcurrencyExpression ConcurrencyLimitStrategy Condition Context DedupeViolationError
DefaultFilter Depends DesiredWorkerLabel DurableContext EmptyModel EvictionPolicy
FailedTaskRunExceptionGroup Hatchet IdempotencyCollisionError NonDeterminismError
NonRetryableException OrGroup PaginationResponse ParentCondition Priority PushEventOptions
RateLimit RateLimitDuration RetryAfterException RunFilter RunStatus
ScheduleTriggerWorkflowOptions SleepCondition StatusBasedIdempotencyConfig StepRunStatus
StickyStrategy TTLBasedIdempotencyConfig Task TaskDefaults TaskRunError TaskRunRef
TriggerWorkflowOptions UserEventCondition V1TaskStatus Worker WorkerLabel
WorkerLabelComparator WorkerList WorkerStartOptions WorkerStatus Workflow WorkflowConfig
WorkflowList WorkflowRunRef WorkflowRunStatus WorkflowRunTriggerConfig WorkflowTag
WorkflowVersionMeta APIResourceMeta Job is_in_hatchet_serialization_context or_
Event EmbeddedHatchetConfig ClientTLSConfig HealthcheckConfig OpenTelemetryConfig
TenacityConfig RunEventListener SlotType StepRunEventType WorkflowRunEventType
WorkerContext EvictionNotSupportedError remove_null_unicode_character workflow
"""

MODULES: dict[str, tuple[str, ...]] = {
    ROOT: tuple(_TOP.split()),
    "hatchet_sdk.hatchet": ("Hatchet",),
    "hatchet_sdk.config": ("ClientConfig", "ClientTLSConfig", "HealthcheckConfig"),
    "hatchet_sdk.context": ("Context", "DurableContext"),
    "hatchet_sdk.context.context": ("Context", "DurableContext", "SleepResult"),
    "hatchet_sdk.context.worker_context": ("WorkerContext",),
    "hatchet_sdk.conditions": (
        "Action",
        "Condition",
        "OrGroup",
        "ParentCondition",
        "SleepCondition",
        "UserEventCondition",
        "or_",
    ),
    "hatchet_sdk.exceptions": (
        "BulkTriggerIdempotencyCollisionError",
        "DedupeViolationError",
        "FailedTaskRunExceptionGroup",
        "IdempotencyCollisionError",
        "IllegalTaskOutputError",
        "InvalidDependencyError",
        "LifespanSetupError",
        "LoopAlreadyRunningError",
        "NonDeterminismError",
        "NonRetryableException",
        "RetryAfterException",
        "TaskRunError",
        "EvictionNotSupportedError",
    ),
    "hatchet_sdk.labels": ("DesiredWorkerLabel", "WorkerLabel"),
    "hatchet_sdk.rate_limit": ("RateLimit", "RateLimitDuration"),
    "hatchet_sdk.serde": ("HATCHET_PYDANTIC_SENTINEL", "is_in_hatchet_serialization_context"),
    "hatchet_sdk.workflow_run": ("WorkflowRunRef",),
    "hatchet_sdk.clients": (),
    "hatchet_sdk.clients.admin": (
        "RunStatus",
        "ScheduleTriggerWorkflowOptions",
        "TaskRunDetail",
        "TriggerWorkflowOptions",
        "WorkflowRunDetail",
        "WorkflowRunTriggerConfig",
    ),
    "hatchet_sdk.clients.events": (
        "BulkPushEventOptions",
        "BulkPushEventWithMetadata",
        "Event",
        "EventClient",
        "PushEventOptions",
    ),
    "hatchet_sdk.clients.listeners": (),
    "hatchet_sdk.clients.listeners.run_event_listener": (
        "RunEventListener",
        "StepRunEventType",
        "WorkflowRunEventType",
    ),
    "hatchet_sdk.clients.rest": (),
    "hatchet_sdk.clients.rest.api.task_api": ("TaskApi",),
    "hatchet_sdk.features": (),
    "hatchet_sdk.features.runs": ("BulkCancelReplayOpts", "RunFilter", "RunsClient"),
    "hatchet_sdk.features.cel": ("CELClient", "CELEvaluationResult", "CELFailure", "CELSuccess"),
    "hatchet_sdk.features.cron": ("CronClient",),
    "hatchet_sdk.features.scheduled": ("ScheduledClient",),
    "hatchet_sdk.features.filters": ("FiltersClient",),
    "hatchet_sdk.features.logs": ("LogsClient",),
    "hatchet_sdk.features.metrics": ("MetricsClient", "TaskMetrics"),
    "hatchet_sdk.features.rate_limits": ("RateLimitsClient",),
    "hatchet_sdk.features.workers": ("WorkersClient",),
    "hatchet_sdk.features.workflows": ("WorkflowsClient",),
    "hatchet_sdk.runnables": (),
    "hatchet_sdk.runnables.contextvars": (
        "ctx_action_key",
        "ctx_additional_metadata",
        "ctx_step_run_id",
        "ctx_task_retry_count",
        "ctx_worker_id",
        "ctx_workflow_run_id",
        "workflow_spawn_indices",
    ),
    "hatchet_sdk.runnables.eviction": ("EvictionPolicy",),
    "hatchet_sdk.runnables.task": ("Depends", "Task"),
    "hatchet_sdk.runnables.types": (
        "BatchMemberId",
        "BatchTaskConfig",
        "DefaultFilter",
        "EmptyModel",
        "StepType",
        "TaskDefaults",
        "WorkflowConfig",
    ),
    "hatchet_sdk.runnables.workflow": (
        "BaseWorkflow",
        "MCPProvider",
        "Standalone",
        "TaskRunRef",
        "Workflow",
    ),
    "hatchet_sdk.types": (),
    "hatchet_sdk.types.concurrency": ("ConcurrencyExpression", "ConcurrencyLimitStrategy"),
    "hatchet_sdk.types.idempotency": ("StatusBasedIdempotencyConfig", "TTLBasedIdempotencyConfig"),
    "hatchet_sdk.types.trigger": (
        "BulkPushEventOptions",
        "BulkPushEventWithMetadata",
        "PushEventOptions",
        "ScheduleTriggerWorkflowOptions",
        "TriggerWorkflowOptions",
        "WorkflowRunTriggerConfig",
    ),
    "hatchet_sdk.types.labels": ("DesiredWorkerLabel", "WorkerLabel", "WorkerLabelComparator"),
    "hatchet_sdk.types.priority": ("Priority",),
    "hatchet_sdk.types.rate_limit": ("RateLimit", "RateLimitDuration"),
    "hatchet_sdk.types.sticky": ("StickyStrategy",),
    "hatchet_sdk.worker": ("Worker", "WorkerStartOptions", "WorkerStatus"),
    "hatchet_sdk.worker.worker": ("Worker", "WorkerStartOptions", "WorkerStatus"),
    # Packages only: their submodules are the REST models.
    REST_MODELS: (),
}

# The REST models hatchlite has, by class name: `hatchet_sdk.clients.rest.models.<snake
# case of the name>` holds the class. (Others of Hatchet's ~400 REST models are absent.)
_REST = """
APIResourceMeta PaginationResponse CronWorkflows CronWorkflowsList CronWorkflowsMethod
CronWorkflowsOrderByField ScheduledRunStatus ScheduledWorkflows
ScheduledWorkflowsBulkDeleteResponse ScheduledWorkflowsBulkError
ScheduledWorkflowsBulkUpdateItem ScheduledWorkflowsBulkUpdateResponse ScheduledWorkflowsList
ScheduledWorkflowsMethod ScheduledWorkflowsOrderByField WorkflowRunOrderByDirection
WorkflowRunStatus V1WorkflowType V1TaskEventType V1TaskEvent V1TaskSummary V1TaskSummaryList
V1WorkflowRun WorkflowRunShapeItemForWorkflowRunDetails V1WorkflowRunDetails V1LogLineLevel
V1LogLine V1LogLineList WorkerType StepRunStatus WorkerLabel WorkerRuntimeInfo
WorkerSlotConfig SemaphoreSlots RecentStepRuns RegisteredWorkflow Worker WorkerList
UpdateWorkerRequest WorkflowTag Step Job WorkflowVersionMeta Workflow WorkflowList
V1EventWorkflowRunSummary V1EventTriggeredRun V1Event V1EventList ConcurrencyStat
TaskStatusStat TaskStat V1Filter V1FilterList V1UpdateFilterRequest RateLimitOrderByField
RateLimitOrderByDirection RateLimit RateLimitList WorkerRuntimeSDKs V1BranchDurableTaskResponse
V1RestoreTaskResponse WorkflowVersion WorkflowTriggers WorkflowTriggerEventRef
WorkflowTriggerCronRef WorkflowConcurrency ConcurrencySetting
"""
REST_CLASSES: dict[str, str] = {name: f"hatchlite.models:{name}" for name in _REST.split()}
REST_CLASSES["V1TaskStatus"] = "hatchlite.types:V1TaskStatus"
# Module names that do not follow the snake-case rule.
REST_MODULE_NAMES = {"WorkerRuntimeSDKs": "worker_runtime_sdks"}

_NO_OTEL = "hatchlite has no OpenTelemetry instrumentation; remove it when running on hatchlite"
_NO_REST = (
    "hatchlite has no REST API clients; use the feature clients on `Hatchet` (hatchet.runs, "
    "hatchet.workers, hatchet.workflows, hatchet.logs, ...)"
)

UNSUPPORTED: dict[str, str] = {
    "hatchet_sdk.opentelemetry": _NO_OTEL,
    "hatchet_sdk.clients.rest.api": _NO_REST,
    "hatchet_sdk.clients.rest.api_client": _NO_REST,
    "hatchet_sdk.contracts": "hatchlite has no gRPC contracts: it runs in the process",
    "hatchet_sdk.features.webhooks": "webhooks need Hatchet's server; hatchlite has none",
    "hatchet_sdk.features.tenant": "hatchlite has one tenant and no tenant API",
    "MCPProvider": "hatchlite has no MCP tools (Workflow.mcp_tool)",
    "Event": (
        "top-level Event is Hatchet's legacy REST event model, which hatchlite lacks: "
        "for a push result import Event from hatchet_sdk.clients.events; for events read "
        "back, hatchet.event.list/get return V1Event"
    ),
    "EmbeddedHatchetConfig": "hatchlite is embedded already: Hatchet.from_embedded() needs no config",
    "ClientTLSConfig": "hatchlite has no network connection: TLS settings do not apply",
    "HealthcheckConfig": "hatchlite workers have no healthcheck port",
    "OpenTelemetryConfig": _NO_OTEL,
    "TenacityConfig": "hatchlite makes no network calls to retry",
    "RunEventListener": "stream with hatchet.runs.subscribe_to_stream instead",
    "StepRunEventType": "hatchlite has no run event listener; stream with subscribe_to_stream",
    "WorkflowRunEventType": "hatchlite has no run event listener; poll runs or await results",
    "SlotType": "not supported yet",
    "WorkerContext": "use ctx.worker on the task's Context",
    "EvictionNotSupportedError": "hatchlite always supports durable eviction (it is never raised)",
    "remove_null_unicode_character": "not supported yet",
    "workflow": "the `workflow` submodule alias is not supported; import from hatchet_sdk",
}
