"""The pages besides runs: workers, workflows, crons and schedules, events, rate limits
and queues."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hatchlite.cron import InvalidCronError, parse
from hatchlite.dashboard.app import Dashboard, dashboard_of
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import (
    ConcurrencySetting,
    CronWorkflows,
    CronWorkflowsMethod,
    Job,
    Step,
    Workflow,
)

PAGE_SIZE = 50
LIST_LIMIT = 500  # crons, schedules, rate limits shown at most


async def workers_page(request: Request) -> Response:
    d = dashboard_of(request)
    workers = (await d.hatchet.workers.aio_list()).rows or []
    return d.render(
        request,
        "workers.html",
        {"page": "workers", "title": "Workers", "workers": workers, "now": datetime.now(UTC)},
    )


@dataclass
class WorkflowView:
    """What the workflows page shows of one workflow: its registered definition
    (`workflows.get_version`) beside its crons and the workers serving it."""

    workflow: Workflow
    tasks: list[Step] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    declared_crons: list[str] = field(default_factory=list)
    api_crons: list[CronWorkflows] = field(default_factory=list)
    limits: list[ConcurrencySetting] = field(default_factory=list)
    sticky: str | None = None
    default_priority: int | None = None
    serving: list[str] = field(default_factory=list)


def _tasks(jobs: list[Job] | None) -> list[Step]:
    return [step for job in jobs or [] for step in job.steps]


async def _view(
    d: Dashboard, wf: Workflow, crons: list[CronWorkflows], serving: list[str]
) -> WorkflowView:
    view = WorkflowView(
        wf,
        tasks=_tasks(wf.jobs),
        api_crons=[c for c in crons if c.method != CronWorkflowsMethod.DEFAULT],
        serving=serving,
    )
    try:
        version = await d.hatchet.workflows.aio_get_version(wf.metadata.id)
    except WorkflowNotFoundError:  # deleted since listed, or never fully registered
        view.declared_crons = [c.cron for c in crons if c.method == CronWorkflowsMethod.DEFAULT]
        return view
    triggers = version.triggers
    view.tasks = _tasks(version.jobs) or view.tasks
    view.events = [
        e.event_key for e in (triggers.events if triggers else None) or [] if e.event_key
    ]
    view.declared_crons = [c.cron for c in (triggers.crons if triggers else None) or [] if c.cron]
    # Workflow-level limits first, then each task's.
    view.limits = sorted(version.v1_concurrency or [], key=lambda c: c.step_readable_id is not None)
    view.sticky = version.sticky
    view.default_priority = version.default_priority
    return view


async def workflows_page(request: Request) -> Response:
    d = dashboard_of(request)
    workflows = (await d.hatchet.workflows.aio_list()).rows or []
    workers = (await d.hatchet.workers.aio_list()).rows or []
    crons = (await d.hatchet.cron.aio_list(limit=LIST_LIMIT)).rows or []
    by_workflow: dict[str, list[CronWorkflows]] = {}
    for cron in crons:
        by_workflow.setdefault(cron.workflow_id, []).append(cron)
    serving: dict[str, list[str]] = {}
    for worker in workers:
        if worker.status != "INACTIVE":
            for registered in worker.registered_workflows or []:
                serving.setdefault(registered.id, []).append(worker.name)
    views = [
        await _view(d, wf, by_workflow.get(wf.metadata.id, []), serving.get(wf.metadata.id, []))
        for wf in workflows
    ]
    return d.render(
        request,
        "workflows.html",
        {
            "page": "workflows",
            "title": "Workflows",
            "workflows": workflows,
            "views": views,
            "chosen": request.query_params.get("trigger", ""),
        },
    )


def next_fire(expression: str, now: datetime) -> datetime | None:
    """The cron's next tick after `now`, in UTC (None for an expression that does not
    parse, which the engine would have refused)."""
    try:
        return datetime.fromtimestamp(parse(expression).next_after(now.timestamp()), UTC)
    except InvalidCronError:
        return None


async def schedules_page(request: Request) -> Response:
    d = dashboard_of(request)
    now = d.hatchet.clock.now()
    crons = (await d.hatchet.cron.aio_list(limit=LIST_LIMIT)).rows or []
    scheduled = (await d.hatchet.scheduled.aio_list(limit=LIST_LIMIT)).rows or []
    return d.render(
        request,
        "schedules.html",
        {
            "page": "schedules",
            "title": "Crons & schedules",
            "crons": [(c, next_fire(c.cron, now)) for c in crons],
            "scheduled": scheduled,
            "now": now,
        },
    )


async def events_page(request: Request) -> Response:
    d = dashboard_of(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        raise HTTPException(400, "page must be a number") from None
    key = request.query_params.get("key", "").strip()
    events = await d.hatchet.event.aio_list(
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, keys=[key] if key else None
    )
    return d.render(
        request,
        "events.html",
        {
            "page": "events",
            "title": "Events",
            "events": events.rows or [],
            "pagination": events.pagination,
            "key": key,
        },
    )


async def rate_limits_page(request: Request) -> Response:
    d = dashboard_of(request)
    limits = await d.hatchet.rate_limits.aio_list(limit=LIST_LIMIT)
    queues = await d.hatchet.metrics.aio_get_queue_metrics()
    stats = await d.hatchet.metrics.aio_get_task_stats()
    day = await d.hatchet.metrics.aio_get_task_metrics(
        since=d.hatchet.clock.now() - timedelta(days=1)
    )
    return d.render(
        request,
        "rate_limits.html",
        {
            "page": "limits",
            "title": "Rate limits & queues",
            "limits": limits,
            "queues": queues,
            "stats": stats,
            "day": day,
        },
    )


def routes() -> list[Route]:
    return [
        Route("/workers", workers_page, name="workers"),
        Route("/workflows", workflows_page, name="workflows"),
        Route("/schedules", schedules_page, name="schedules"),
        Route("/events", events_page, name="events"),
        Route("/rate-limits", rate_limits_page, name="rate_limits"),
    ]
