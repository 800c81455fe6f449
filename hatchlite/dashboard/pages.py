"""The pages besides runs: workers, workflows, crons and schedules, events, rate limits
and queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hatchlite.cron import InvalidCronError, parse
from hatchlite.dashboard.app import dashboard_of
from hatchlite.models import CronWorkflows, Worker

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


def _tasks_served(workers: list[Worker]) -> dict[str, list[str]]:
    """Task names by lower-cased workflow name, from the action ids (`workflow:task`)
    of the workers that serve them."""
    tasks: dict[str, set[str]] = {}
    for worker in workers:
        for action in worker.actions or []:
            workflow, _, task = action.partition(":")
            tasks.setdefault(workflow, set()).add(task)
    return {wf: sorted(names) for wf, names in tasks.items()}


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
            for wf in worker.registered_workflows or []:
                serving.setdefault(wf.id, []).append(worker.name)
    return d.render(
        request,
        "workflows.html",
        {
            "page": "workflows",
            "title": "Workflows",
            "workflows": workflows,
            "tasks": _tasks_served(workers),
            "crons": by_workflow,
            "serving": serving,
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
