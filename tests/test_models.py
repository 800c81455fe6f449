"""Hatchet's return models: names, aliases, enums and validation as Hatchet has them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import hatchlite
import hatchlite.types
from hatchlite import models as m

TS = "2024-05-01T12:00:00Z"
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
UUID = "5f4d1c7e-0b8a-4a57-9a39-1d2c3b4a5e6f"
META = {"id": UUID, "createdAt": TS, "updatedAt": TS}
PAGE = {"current_page": 1, "next_page": 2, "num_pages": 3}

TASK_SUMMARY: dict[str, Any] = {
    "metadata": META,
    "actionId": "wf:task",
    "retryCount": 1,
    "attempt": 2,
    "additionalMetadata": {"k": "v"},
    "children": None,
    "createdAt": TS,
    "displayName": "task",
    "duration": 15,
    "errorMessage": None,
    "finishedAt": TS,
    "input": {"a": 1},
    "numSpawnedChildren": 0,
    "output": {"b": 2},
    "status": "COMPLETED",
    "startedAt": TS,
    "stepId": UUID,
    "taskExternalId": UUID,
    "taskId": 7,
    "taskInsertedAt": TS,
    "tenantId": "hatchlite",
    "type": "TASK",
    "workflowId": UUID,
    "workflowName": "wf",
    "workflowRunExternalId": UUID,
    "workflowVersionId": UUID,
    "workflowConfig": {},
    "parentTaskExternalId": None,
    "isDurable": False,
    "isEvicted": False,
}
TASK_EVENT = {
    "id": 1,
    "taskId": UUID,
    "timestamp": TS,
    "eventType": "FAILED",
    "message": "boom",
    "errorMessage": "boom",
    "output": '{"x": 1}',
    "workerId": UUID,
    "taskDisplayName": "task",
    "retryCount": 0,
    "attempt": 1,
}
WORKFLOW_RUN = {
    "metadata": META,
    "status": "RUNNING",
    "startedAt": TS,
    "finishedAt": None,
    "duration": None,
    "tenantId": "hatchlite",
    "additionalMetadata": {},
    "displayName": "wf",
    "workflowId": UUID,
    "output": {},
    "errorMessage": None,
    "workflowVersionId": UUID,
    "input": {"a": 1},
    "createdAt": TS,
    "parentTaskExternalId": UUID,
}
SHAPE = {"taskExternalId": UUID, "childrenExternalIds": [UUID], "taskName": "first"}
LOG_LINE = {
    "createdAt": TS,
    "message": "hello",
    "metadata": {},
    "retryCount": 0,
    "attempt": 1,
    "level": "INFO",
    "taskExternalId": UUID,
}
SLOT = {
    "stepRunId": UUID,
    "actionId": "wf:task",
    "startedAt": TS,
    "timeoutAt": TS,
    "workflowRunId": UUID,
    "status": "RUNNING",
}
RECENT = {
    "metadata": META,
    "actionId": "wf:task",
    "status": "SUCCEEDED",
    "startedAt": TS,
    "finishedAt": TS,
    "cancelledAt": None,
    "workflowRunId": UUID,
}
RUNTIME = {
    "sdkVersion": "0.1.0",
    "language": "PYTHON",
    "languageVersion": "3.11",
    "os": "linux",
    "runtimeExtra": "",
}
WORKER_LABEL = {"metadata": META, "key": "model", "value": "fancy"}
WORKER = {
    "metadata": META,
    "name": "worker",
    "type": "SELFHOSTED",
    "lastHeartbeatAt": TS,
    "lastListenerEstablished": TS,
    "actions": ["wf:task"],
    "registeredWorkflows": [{"id": UUID, "name": "wf"}],
    "slots": [SLOT],
    "recentStepRuns": [RECENT],
    "status": "ACTIVE",
    "maxRuns": 100,
    "availableRuns": 99,
    "slotConfig": {"default": {"available": 99, "limit": 100}},
    "dispatcherId": UUID,
    "labels": [WORKER_LABEL],
    "webhookUrl": None,
    "webhookId": None,
    "runtimeInfo": RUNTIME,
}
STEP = {
    "metadata": META,
    "readableId": "task",
    "tenantId": "hatchlite",
    "jobId": UUID,
    "action": "wf:task",
    "timeout": "60s",
    "isDurable": False,
    "slotRequests": {"default": 1},
    "children": [],
    "parents": [],
}
JOB = {
    "metadata": META,
    "tenantId": "hatchlite",
    "versionId": UUID,
    "name": "wf",
    "description": None,
    "steps": [STEP],
    "timeout": None,
}
VERSION_META = {"metadata": META, "version": "v1", "order": 1, "workflowId": UUID, "workflow": None}
WORKFLOW = {
    "metadata": META,
    "name": "wf",
    "description": "d",
    "isPaused": False,
    "versions": [VERSION_META],
    "tags": [{"name": "t", "color": "red"}],
    "jobs": [JOB],
    "tenantId": "hatchlite",
}
RUN_SUMMARY = {"running": 1, "queued": 2, "succeeded": 3, "failed": 4, "cancelled": 5}
TRIGGERED = {"workflowRunId": UUID, "filterId": None}
EVENT = {
    "metadata": META,
    "key": "user:create",
    "tenant": None,
    "tenantId": "hatchlite",
    "workflowRunSummary": RUN_SUMMARY,
    "additionalMetadata": {"k": "v"},
    "payload": {"n": 1},
    "scope": "s",
    "seenAt": TS,
    "triggeredRuns": [TRIGGERED],
    "triggeringWebhookName": None,
}
STATUS_STAT = {
    "total": 3,
    "queues": {"default": 3},
    "concurrency": [{"expression": "input.k", "type": "GROUP_ROUND_ROBIN", "keys": {"a": 1}}],
    "oldest": TS,
}

# Each REST model with a payload in Hatchet's JSON (the aliases are its keys, exactly).
REST_PAYLOADS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (m.APIResourceMeta, META),
    (m.PaginationResponse, PAGE),
    (m.V1TaskEvent, TASK_EVENT),
    (m.V1TaskSummary, TASK_SUMMARY),
    (m.V1TaskSummaryList, {"pagination": PAGE, "rows": [TASK_SUMMARY]}),
    (m.V1WorkflowRun, WORKFLOW_RUN),
    (m.WorkflowRunShapeItemForWorkflowRunDetails, SHAPE),
    (
        m.V1WorkflowRunDetails,
        {
            "run": WORKFLOW_RUN,
            "taskEvents": [TASK_EVENT],
            "shape": [SHAPE],
            "tasks": [TASK_SUMMARY],
            "workflowConfig": None,
        },
    ),
    (m.V1LogLine, LOG_LINE),
    (m.V1LogLineList, {"pagination": PAGE, "rows": [LOG_LINE]}),
    (m.WorkerLabel, WORKER_LABEL),
    (m.WorkerRuntimeInfo, RUNTIME),
    (m.WorkerSlotConfig, {"available": 1, "limit": 2}),
    (m.SemaphoreSlots, SLOT),
    (m.RecentStepRuns, RECENT),
    (m.RegisteredWorkflow, {"id": UUID, "name": "wf"}),
    (m.Worker, WORKER),
    (m.WorkerList, {"pagination": PAGE, "rows": [WORKER]}),
    (m.UpdateWorkerRequest, {"isPaused": True}),
    (m.WorkflowTag, {"name": "t", "color": "red"}),
    (m.Step, STEP),
    (m.Job, JOB),
    (m.WorkflowVersionMeta, VERSION_META),
    (m.Workflow, WORKFLOW),
    (m.WorkflowList, {"metadata": None, "rows": [WORKFLOW], "pagination": PAGE}),
    (m.V1EventWorkflowRunSummary, RUN_SUMMARY),
    (m.V1EventTriggeredRun, TRIGGERED),
    (m.V1Event, EVENT),
    (m.V1EventList, {"pagination": PAGE, "rows": [EVENT]}),
    (m.ConcurrencyStat, STATUS_STAT["concurrency"][0]),
    (m.TaskStatusStat, STATUS_STAT),
    (m.TaskStat, {"queued": STATUS_STAT, "running": None}),
]


@pytest.mark.parametrize(
    ("model", "payload"), REST_PAYLOADS, ids=lambda x: getattr(x, "__name__", "")
)
def test_rest_model_by_alias_and_by_name(model: type[BaseModel], payload: dict[str, Any]) -> None:
    by_alias = model.model_validate(payload)
    # Every field of Hatchet's model is present, under Hatchet's key, and nothing else.
    assert set(by_alias.model_dump(by_alias=True)) == set(payload)
    assert set(model.model_fields) == set(by_alias.model_dump())
    by_name = model(**by_alias.model_dump())
    assert by_name == by_alias


def test_dumped_keys_are_hatchets_aliases() -> None:
    summary = m.V1TaskSummary.model_validate(TASK_SUMMARY)
    assert list(summary.model_dump(by_alias=True)) == [
        "metadata",
        "actionId",
        "retryCount",
        "attempt",
        "additionalMetadata",
        "children",
        "createdAt",
        "displayName",
        "duration",
        "errorMessage",
        "finishedAt",
        "input",
        "numSpawnedChildren",
        "output",
        "status",
        "startedAt",
        "stepId",
        "taskExternalId",
        "taskId",
        "taskInsertedAt",
        "tenantId",
        "type",
        "workflowId",
        "workflowName",
        "workflowRunExternalId",
        "workflowVersionId",
        "workflowConfig",
        "parentTaskExternalId",
        "isDurable",
        "isEvicted",
    ]
    assert set(summary.metadata.model_dump(by_alias=True)) == {"id", "createdAt", "updatedAt"}
    details = m.V1WorkflowRunDetails.model_validate(REST_PAYLOADS[7][1])
    assert list(details.model_dump(by_alias=True)) == [
        "run",
        "taskEvents",
        "shape",
        "tasks",
        "workflowConfig",
    ]
    event = m.V1TaskEvent.model_validate(TASK_EVENT)
    assert event.model_dump(by_alias=True)["eventType"] is m.V1TaskEventType.FAILED
    assert list(m.Worker.model_validate(WORKER).model_dump(by_alias=True))[:6] == [
        "metadata",
        "name",
        "type",
        "lastHeartbeatAt",
        "lastListenerEstablished",
        "actions",
    ]
    # Hatchet's pagination keys are snake_case.
    assert m.PaginationResponse(current_page=1).model_dump(by_alias=True) == {
        "current_page": 1,
        "next_page": None,
        "num_pages": None,
    }


def test_values_by_attribute() -> None:
    summary = m.V1TaskSummary.model_validate(TASK_SUMMARY)
    assert summary.task_id == 7
    assert summary.status is hatchlite.V1TaskStatus.COMPLETED
    assert summary.type is m.V1WorkflowType.TASK
    assert summary.retry_count == 1 and summary.attempt == 2 and summary.is_durable is False
    worker = m.Worker.model_validate(WORKER)
    assert worker.status == "ACTIVE"
    assert worker.labels is not None and worker.labels[0].value == "fancy"
    assert worker.slot_config is not None and worker.slot_config["default"].limit == 100
    event = m.V1Event.model_validate(EVENT)
    assert event.payload == {"n": 1}
    assert event.triggered_runs == [m.V1EventTriggeredRun(workflow_run_id=UUID)]
    assert m.V1TaskEvent.model_validate(TASK_EVENT).output == '{"x": 1}'


def test_task_summary_nested_children() -> None:
    child = {**TASK_SUMMARY, "displayName": "first-1714564800"}
    dag = {**TASK_SUMMARY, "type": "DAG", "children": [child, {**child, "displayName": "second"}]}
    summary = m.V1TaskSummary.model_validate(dag)
    assert summary.type is m.V1WorkflowType.DAG
    assert summary.children is not None
    assert [c.display_name for c in summary.children] == ["first-1714564800", "second"]
    assert all(isinstance(c, m.V1TaskSummary) and c.children is None for c in summary.children)
    dumped = summary.model_dump(by_alias=True)
    assert dumped["children"][0]["taskExternalId"] == UUID
    assert dumped["children"][1]["displayName"] == "second"
    assert m.V1TaskSummary(**summary.model_dump()) == summary


def test_datetimes_are_aware_utc() -> None:
    meta = m.APIResourceMeta.model_validate(META)
    assert meta.created_at == T0 and meta.created_at.tzinfo is UTC
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 14, tzinfo=plus_two)
    converted = m.APIResourceMeta(id="x", created_at=local, updated_at="2024-05-01T14:00:00+02:00")
    assert converted.created_at == T0 and converted.created_at.tzinfo is UTC
    assert converted.updated_at.tzinfo is UTC and converted.updated_at.hour == 12
    summary = m.V1TaskSummary.model_validate(TASK_SUMMARY)
    for value in (summary.created_at, summary.started_at, summary.task_inserted_at):
        assert value is not None and value.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match="naive datetime"):
        m.APIResourceMeta(id="x", created_at=datetime(2024, 5, 1), updated_at=T0)
    with pytest.raises(ValidationError, match="naive datetime"):
        m.V1LogLine.model_validate({**LOG_LINE, "createdAt": "2024-05-01T12:00:00"})
    with pytest.raises(ValidationError, match="naive datetime"):
        meta.updated_at = datetime(2024, 5, 1)  # assignments are validated too


def test_enum_members_are_hatchets() -> None:
    assert [e.value for e in m.V1TaskEventType] == [
        "REQUEUED_NO_WORKER",
        "REQUEUED_RATE_LIMIT",
        "SCHEDULING_TIMED_OUT",
        "ASSIGNED",
        "STARTED",
        "FINISHED",
        "FAILED",
        "RETRYING",
        "CANCELLED",
        "TIMED_OUT",
        "REASSIGNED",
        "SLOT_RELEASED",
        "TIMEOUT_REFRESHED",
        "RETRIED_BY_USER",
        "SENT_TO_WORKER",
        "RATE_LIMIT_ERROR",
        "ACKNOWLEDGED",
        "CREATED",
        "QUEUED",
        "SKIPPED",
        "COULD_NOT_SEND_TO_WORKER",
        "WAITING_FOR_BATCH",
        "BATCH_FLUSHED",
        "DURABLE_EVICTED",
        "DURABLE_RESTORING",
    ]
    assert [e.value for e in m.V1WorkflowType] == ["DAG", "TASK"]
    assert [e.value for e in m.V1LogLineLevel] == ["DEBUG", "INFO", "WARN", "ERROR"]
    assert [e.value for e in m.WorkerType] == ["SELFHOSTED", "MANAGED", "WEBHOOK"]
    assert [e.value for e in m.WorkerRuntimeSDKs] == ["GOLANG", "PYTHON", "TYPESCRIPT"]
    assert [e.value for e in m.StepRunStatus] == [
        "PENDING",
        "PENDING_ASSIGNMENT",
        "ASSIGNED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "CANCELLING",
        "BACKOFF",
    ]
    for enum in (m.V1TaskEventType, m.V1WorkflowType, m.V1LogLineLevel, m.WorkerType):
        assert all(isinstance(e, str) and e == e.name for e in enum)


def test_shared_enums_are_hatchlites_own() -> None:
    assert m.V1TaskStatus is hatchlite.types.V1TaskStatus is hatchlite.V1TaskStatus
    field = m.V1WorkflowRun.model_fields["status"]
    assert field.annotation is hatchlite.V1TaskStatus
    # The REST WorkerLabel is a different model from the one hatchlite exports.
    assert hatchlite.WorkerLabel is hatchlite.types.WorkerLabel
    assert m.WorkerLabel is not hatchlite.WorkerLabel


def test_worker_status_is_one_of_hatchets_strings() -> None:
    for status in ("ACTIVE", "INACTIVE", "PAUSED", None):
        assert m.Worker.model_validate({**WORKER, "status": status}).status == status
    with pytest.raises(ValidationError):
        m.Worker.model_validate({**WORKER, "status": "HEALTHY"})
    assert m.UpdateWorkerRequest(is_paused=True).model_dump(by_alias=True) == {"isPaused": True}


def test_workflow_versions_point_back_to_workflows() -> None:
    nested = {**VERSION_META, "workflow": {**WORKFLOW, "versions": None}}
    meta = m.WorkflowVersionMeta.model_validate(nested)
    assert isinstance(meta.workflow, m.Workflow) and meta.workflow.tenant_id == "hatchlite"


def test_task_metrics_and_stats() -> None:
    metrics = m.TaskMetrics(cancelled=1, completed=2, failed=3, queued=4, running=5)
    assert metrics.model_dump() == {
        "cancelled": 1,
        "completed": 2,
        "failed": 3,
        "queued": 4,
        "running": 5,
    }
    with pytest.raises(ValidationError):
        m.TaskMetrics(cancelled=1, completed=2, failed=3, queued=4)  # type: ignore[call-arg]
    stat = m.TaskStat.model_validate({"queued": STATUS_STAT})
    assert stat.queued is not None and stat.queued.oldest == T0 and stat.running is None


def test_run_filter() -> None:
    f = m.RunFilter(since=T0, statuses=[hatchlite.V1TaskStatus.FAILED])
    assert f.until is None and f.workflow_ids is None and f.additional_metadata is None
    assert f.statuses == [hatchlite.V1TaskStatus.FAILED]
    assert set(f.model_dump(by_alias=True)) == {
        "since",
        "until",
        "statuses",
        "workflow_ids",
        "additional_metadata",
    }
    with pytest.raises(ValidationError):
        m.RunFilter()  # type: ignore[call-arg]


def test_bulk_cancel_replay_opts_needs_exactly_one() -> None:
    assert m.BulkCancelReplayOpts(ids=["a", "b"]).ids == ["a", "b"]
    filters = m.RunFilter(since=T0)
    assert m.BulkCancelReplayOpts(filters=filters).filters == filters
    with pytest.raises(ValueError, match="ids or filters must be set"):
        m.BulkCancelReplayOpts()
    with pytest.raises(ValueError, match="ids or filters must be set"):
        m.BulkCancelReplayOpts(ids=[])  # an empty list counts as unset, as in Hatchet
    with pytest.raises(ValueError, match="ids and filters cannot both be set"):
        m.BulkCancelReplayOpts(ids=["a"], filters=filters)
