"""Hatchet's return models built from stored records: task summaries, workflow runs,
run details with their task-event timeline, log lines, workers and workflows.

Pure functions (no I/O): the feature clients read records through the store and turn
them into models here, so the CLI and the dashboard get exactly what a user gets.

Task events come from the rows written in the same transactions as the state changes:
each attempt row gives its QUEUED, STARTED and end event (and RETRYING when it was
retried); the task run's own row gives its current attempt; other events (no worker,
retried by user, ...) are rows of their own.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from hatchlite.models import (
    APIResourceMeta,
    PaginationResponse,
    V1LogLine,
    V1LogLineLevel,
    V1TaskEvent,
    V1TaskEventType,
    V1TaskSummary,
    V1WorkflowRun,
    V1WorkflowRunDetails,
    V1WorkflowType,
    WorkflowRunShapeItemForWorkflowRunDetails,
)
from hatchlite.store import WorkflowShape
from hatchlite.store.views import (
    AttemptRecord,
    LogRecord,
    RunRecord,
    TaskEventRecord,
    TaskRecord,
)
from hatchlite.types import JSONMap, V1TaskStatus


def utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def public_status(status: str) -> V1TaskStatus:
    """Internal states shown as Hatchet's five (a suspended durable task is RUNNING)."""
    if status in ("WAITING", "PENDING"):
        return V1TaskStatus.RUNNING if status == "WAITING" else V1TaskStatus.QUEUED
    return V1TaskStatus(status)


def error_text(error_json: str | None) -> str | None:
    """`<type>: <message>` of a stored error."""
    if not error_json:
        return None
    try:
        data = json.loads(error_json)
    except ValueError:
        return error_json
    return f"{data.get('exc_type', 'Exception')}: {data.get('message', '')}"


def _json(text: str | None) -> JSONMap:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _duration(started: float | None, finished: float | None) -> int | None:
    if started is None or finished is None:
        return None
    return round((finished - started) * 1000)


def action_id(workflow_name: str, task_name: str) -> str:
    return f"{workflow_name.lower()}:{task_name}"


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """What building models needs besides the records."""

    tenant_id: str
    include_payloads: bool = True


# -- task summaries -----------------------------------------------------------------------


def task_summary(
    ctx: ViewOptions,
    task: TaskRecord,
    run: RunRecord,
    shape: WorkflowShape | None,
    spawned: int,
) -> V1TaskSummary:
    durable = None
    if shape is not None:
        try:
            durable = shape.task(task.task_name).is_durable
        except KeyError:
            durable = None
    return V1TaskSummary(
        metadata=APIResourceMeta(
            id=task.id,
            created_at=_utc(task.created_at),
            updated_at=_utc(task.finished_at or task.started_at or task.created_at),
        ),
        action_id=action_id(task.workflow_name, task.task_name),
        retry_count=task.retry_count,
        attempt=task.retry_count + 1,
        additional_metadata=json.loads(run.metadata_json),
        created_at=_utc(task.created_at),
        display_name=f"{task.task_name}-{int(task.created_at)}",
        duration=_duration(task.started_at, task.finished_at),
        error_message=error_text(task.error_json) if task.status == "FAILED" else None,
        finished_at=utc(task.finished_at),
        input=json.loads(run.input_json) if ctx.include_payloads else {},
        num_spawned_children=spawned,
        output=_json(task.output_json) if ctx.include_payloads else {},
        status=public_status(task.status),
        started_at=utc(task.started_at),
        task_external_id=task.id,
        task_id=task.seq,
        task_inserted_at=_utc(task.created_at),
        tenant_id=ctx.tenant_id,
        type=V1WorkflowType.DAG if run.is_dag else V1WorkflowType.TASK,
        workflow_id=run.workflow_id or "",
        workflow_name=run.workflow_name,
        workflow_run_external_id=run.id,
        parent_task_external_id=run.parent_task_run_id,
        is_durable=durable,
        is_evicted=task.status == "WAITING" if durable else None,
    )


def run_output(run: RunRecord, tasks: list[TaskRecord]) -> JSONMap:
    """A DAG's output is `{task_name: output}`; a single task's, its output."""
    if not run.is_dag:
        return _json(tasks[0].output_json) if tasks else {}
    return {t.task_name: _json(t.output_json) for t in tasks if t.status == "COMPLETED"}


def run_error(tasks: list[TaskRecord]) -> str | None:
    errors = [error_text(t.error_json) for t in tasks if t.status == "FAILED" and t.error_json]
    return "\n".join(e for e in errors if e) or None


def run_summary(
    ctx: ViewOptions,
    run: RunRecord,
    tasks: list[TaskRecord],
    shape: WorkflowShape | None,
    spawned: dict[str, int],
) -> V1TaskSummary:
    """One row of `runs.list()` (not `only_tasks`): the run, with its tasks as children
    when it is a DAG. A single-task run's id is its task's id."""
    children = [task_summary(ctx, t, run, shape, spawned.get(t.id, 0)) for t in tasks]
    single = children[0] if children and not run.is_dag else None
    updated = run.finished_at or run.started_at or run.created_at
    return V1TaskSummary(
        metadata=APIResourceMeta(
            id=run.id, created_at=_utc(run.created_at), updated_at=_utc(updated)
        ),
        action_id=single.action_id if single else None,
        retry_count=single.retry_count if single else None,
        attempt=single.attempt if single else None,
        additional_metadata=json.loads(run.metadata_json),
        children=children if run.is_dag else None,
        created_at=_utc(run.created_at),
        display_name=f"{run.workflow_name}-{int(run.created_at)}",
        duration=_duration(run.started_at, run.finished_at),
        error_message=run_error(tasks),
        finished_at=utc(run.finished_at),
        input=json.loads(run.input_json) if ctx.include_payloads else {},
        num_spawned_children=sum(spawned.get(t.id, 0) for t in tasks),
        output=run_output(run, tasks) if ctx.include_payloads else {},
        status=public_status(run.status),
        started_at=utc(run.started_at),
        task_external_id=run.id,
        task_id=single.task_id if single else 0,
        task_inserted_at=_utc(run.created_at),
        tenant_id=ctx.tenant_id,
        type=V1WorkflowType.DAG if run.is_dag else V1WorkflowType.TASK,
        workflow_id=run.workflow_id or "",
        workflow_name=run.workflow_name,
        workflow_run_external_id=run.id,
        parent_task_external_id=run.parent_task_run_id,
        is_durable=single.is_durable if single else None,
        is_evicted=single.is_evicted if single else None,
    )


def workflow_run(ctx: ViewOptions, run: RunRecord, tasks: list[TaskRecord]) -> V1WorkflowRun:
    return V1WorkflowRun(
        metadata=APIResourceMeta(
            id=run.id,
            created_at=_utc(run.created_at),
            updated_at=_utc(run.finished_at or run.started_at or run.created_at),
        ),
        status=public_status(run.status),
        started_at=utc(run.started_at),
        finished_at=utc(run.finished_at),
        duration=_duration(run.started_at, run.finished_at),
        tenant_id=ctx.tenant_id,
        additional_metadata=json.loads(run.metadata_json),
        display_name=f"{run.workflow_name}-{int(run.created_at)}",
        workflow_id=run.workflow_id or "",
        output=run_output(run, tasks),
        error_message=run_error(tasks),
        input=json.loads(run.input_json),
        created_at=_utc(run.created_at),
        parent_task_external_id=run.parent_task_run_id,
    )


def run_details(
    ctx: ViewOptions,
    run: RunRecord,
    tasks: list[TaskRecord],
    all_tasks: list[TaskRecord],
    shape: WorkflowShape | None,
    spawned: dict[str, int],
    attempts: list[AttemptRecord],
    extra_events: list[TaskEventRecord],
) -> V1WorkflowRunDetails:
    """`runs.get()`: the run, its tasks (those created, as Hatchet shows them), its
    task-event timeline and its shape."""
    return V1WorkflowRunDetails(
        run=workflow_run(ctx, run, tasks),
        tasks=[task_summary(ctx, t, run, shape, spawned.get(t.id, 0)) for t in tasks],
        task_events=timeline(tasks, attempts, extra_events),
        shape=shape_items(all_tasks, shape),
    )


def shape_items(
    tasks: list[TaskRecord], shape: WorkflowShape | None
) -> list[WorkflowRunShapeItemForWorkflowRunDetails]:
    ids = {t.task_name: t.id for t in tasks}
    items = []
    for task in tasks:
        children: tuple[str, ...] = ()
        if shape is not None and task.task_name in shape.tasks:
            children = shape.tasks[task.task_name].children
        items.append(
            WorkflowRunShapeItemForWorkflowRunDetails(
                task_external_id=task.id,
                children_external_ids=[ids[c] for c in children if c in ids],
                task_name=task.task_name,
            )
        )
    return items


# -- the task-event timeline ------------------------------------------------------------

_END_EVENTS = {
    "COMPLETED": V1TaskEventType.FINISHED,
    "FAILED": V1TaskEventType.FAILED,
    "TIMED_OUT": V1TaskEventType.TIMED_OUT,
    "CANCELLED": V1TaskEventType.CANCELLED,
    "REASSIGNED": V1TaskEventType.REASSIGNED,
    "SCHEDULING_TIMED_OUT": V1TaskEventType.SCHEDULING_TIMED_OUT,
}
_MESSAGES = {
    V1TaskEventType.QUEUED: "Task queued",
    V1TaskEventType.STARTED: "Task started",
    V1TaskEventType.FINISHED: "Task completed",
    V1TaskEventType.FAILED: "Task failed",
    V1TaskEventType.TIMED_OUT: "Task timed out",
    V1TaskEventType.CANCELLED: "Task cancelled",
    V1TaskEventType.REASSIGNED: "Task reassigned: its worker stopped or is gone",
    V1TaskEventType.SCHEDULING_TIMED_OUT: "Task was not started within its schedule timeout",
    V1TaskEventType.RETRYING: "Task will be retried",
    V1TaskEventType.RETRIED_BY_USER: "Task replayed by user",
}


@dataclass(slots=True)
class _Event:
    at: float
    type: V1TaskEventType
    task: TaskRecord
    retry_count: int
    worker_id: str | None = None
    error_json: str | None = None
    message: str | None = None
    output_json: str | None = None
    own: bool = False  # stored as a task event row (not derived from the attempts)


def _task_timeline(
    task: TaskRecord, attempts: list[AttemptRecord], replays: set[int]
) -> list[_Event]:
    events: list[_Event] = []
    retried_to = task.retry_count  # retries the task run has had so far
    for index, a in enumerate(attempts):
        if a.queued_at is not None:
            events.append(_Event(a.queued_at, V1TaskEventType.QUEUED, task, a.retry_count))
        if a.started_at is not None:
            events.append(
                _Event(a.started_at, V1TaskEventType.STARTED, task, a.retry_count, a.worker_id)
            )
        end = _END_EVENTS.get(a.status, V1TaskEventType.FAILED)
        last = index == len(attempts) - 1
        events.append(
            _Event(
                a.finished_at,
                end,
                task,
                a.retry_count,
                a.worker_id,
                a.error_json,
                output_json=task.output_json if end is V1TaskEventType.FINISHED and last else None,
            )
        )
        retried = any(b.retry_count > a.retry_count for b in attempts[index + 1 :]) or (
            retried_to > a.retry_count
        )
        if a.status in ("FAILED", "TIMED_OUT") and retried and a.retry_count + 1 not in replays:
            events.append(_Event(a.finished_at, V1TaskEventType.RETRYING, task, a.retry_count))
    current_done = bool(attempts) and (
        attempts[-1].retry_count == task.retry_count and attempts[-1].status != "REASSIGNED"
    )
    if not current_done and task.status != "PENDING":
        if task.queued_at is not None:
            events.append(_Event(task.queued_at, V1TaskEventType.QUEUED, task, task.retry_count))
        if task.status in ("RUNNING", "WAITING") and task.started_at is not None:
            events.append(
                _Event(
                    task.started_at,
                    V1TaskEventType.STARTED,
                    task,
                    task.retry_count,
                    task.worker_id,
                )
            )
        if task.status == "CANCELLED" and task.finished_at is not None:
            events.append(
                _Event(task.finished_at, V1TaskEventType.CANCELLED, task, task.retry_count)
            )
    return events


def timeline(
    tasks: list[TaskRecord],
    attempts: list[AttemptRecord],
    extra_events: list[TaskEventRecord],
) -> list[V1TaskEvent]:
    """Every task event of `tasks`, oldest first (each task's own events in the order
    they happened, even at equal instants), numbered from 1."""
    by_task: dict[str, list[AttemptRecord]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_run_id, []).append(attempt)
    extras: dict[str, list[TaskEventRecord]] = {}
    for extra in extra_events:
        extras.setdefault(extra.task_run_id, []).append(extra)
    per_task: list[list[_Event]] = []
    for task in tasks:
        own = extras.get(task.id, [])
        replays = {e.retry_count for e in own if e.event_type == "RETRIED_BY_USER"}
        events = _task_timeline(task, by_task.get(task.id, []), replays)
        # A cancel that said why (a concurrency limit) stands for the attempt's CANCELLED.
        explained = {e.retry_count for e in own if e.event_type == "CANCELLED"}
        if explained:
            events = [
                e
                for e in events
                if not (e.type is V1TaskEventType.CANCELLED and e.retry_count in explained)
            ]
        for extra in own:
            _place(
                events,
                _Event(
                    extra.created_at,
                    V1TaskEventType(extra.event_type),
                    task,
                    extra.retry_count,
                    extra.worker_id,
                    message=extra.message,
                    own=True,
                ),
            )
        per_task.append(events)
    merged = heapq.merge(*per_task, key=lambda e: e.at)
    return [_task_event(number, e) for number, e in enumerate(merged, start=1)]


def _place(events: list[_Event], extra: _Event) -> None:
    """Put an event of its own row where it belongs among the derived ones: a replay
    just before the attempt it queued, a cancel after that attempt's last event,
    anything else after that attempt's QUEUED and the events before it in time (an
    eviction comes after the start it interrupted)."""
    if extra.type is V1TaskEventType.CANCELLED:
        last = max(
            (i for i, e in enumerate(events) if e.retry_count == extra.retry_count), default=-1
        )
        events.insert(last + 1 if last >= 0 else len(events), extra)
        return
    for index, event in enumerate(events):
        if event.type is V1TaskEventType.QUEUED and event.retry_count == extra.retry_count:
            if extra.type is V1TaskEventType.RETRIED_BY_USER:
                events.insert(index, extra)
                return
            at = index + 1
            while (
                at < len(events)
                and events[at].retry_count == extra.retry_count
                and (events[at].at < extra.at or (events[at].own and events[at].at == extra.at))
            ):
                at += 1
            events.insert(at, extra)
            return
    events.append(extra)


def _task_event(number: int, event: _Event) -> V1TaskEvent:
    return V1TaskEvent(
        id=number,
        task_id=event.task.id,
        timestamp=_utc(event.at),
        event_type=event.type,
        message=event.message or _MESSAGES.get(event.type, event.type.value),
        error_message=error_text(event.error_json),
        output=event.output_json,
        worker_id=event.worker_id,
        task_display_name=f"{event.task.task_name}-{int(event.task.created_at)}",
        retry_count=event.retry_count,
        attempt=event.retry_count + 1,
    )


# -- logs -------------------------------------------------------------------------------

_LOG_LEVELS = {"DEBUG", "INFO", "WARN", "ERROR"}


def log_line(record: LogRecord) -> V1LogLine:
    return V1LogLine(
        created_at=_utc(record.created_at),
        message=record.message,
        metadata={},
        retry_count=record.retry_count,
        attempt=record.retry_count + 1,
        level=V1LogLineLevel(record.level) if record.level in _LOG_LEVELS else None,
        task_external_id=record.task_run_id,
    )


def pagination(offset: int, limit: int | None, total: int) -> PaginationResponse:
    """Hatchet's page numbers (1-based) for an offset/limit window."""
    if not limit:
        return PaginationResponse(current_page=1, next_page=None, num_pages=1)
    current = offset // limit + 1
    pages = max(1, -(-total // limit))
    return PaginationResponse(
        current_page=current, next_page=current + 1 if current < pages else None, num_pages=pages
    )
