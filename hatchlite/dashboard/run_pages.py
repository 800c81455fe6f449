"""The runs page (filters, pages, counts by status) and the run detail page (the DAG,
each task's input, output, error, attempts, logs and children, the task-event timeline,
stream chunks)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hatchlite.client import Hatchet
from hatchlite.dashboard.app import dashboard_of
from hatchlite.dashboard.graph import layout
from hatchlite.exceptions import RunNotFoundError
from hatchlite.models import DurableHistory, V1LogLine, V1TaskSummary
from hatchlite.types import V1TaskStatus

PAGE_SIZE = 50
STATUSES = [s.value for s in V1TaskStatus]
# The time-range presets of the runs page; the longest stays within the 7 days past
# which `runs.list` warns that a listing may be slow.
RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(days=1),
    "3d": timedelta(days=3),
    "7d": timedelta(days=7, seconds=-1),
}
DEFAULT_RANGE = "24h"
STREAM_WAIT = 0.1  # seconds to gather a running run's stream chunks so far
LOG_LIMIT = 500
CHILD_WINDOW = timedelta(days=7, seconds=-1)  # children listed: created within this


def _utc(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{what} must be a date and time (UTC), got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class RunFilters:
    """The runs page's query string, checked."""

    statuses: list[V1TaskStatus] = field(default_factory=list)
    workflow_id: str = ""
    range: str = DEFAULT_RANGE
    since: datetime | None = None
    until: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    metadata_text: str = ""
    page: int = 1

    @classmethod
    def parse(cls, params: QueryParams, now: datetime) -> RunFilters:
        f = cls(workflow_id=params.get("workflow", ""), metadata_text=params.get("meta", ""))
        for status in params.getlist("status"):
            if status not in STATUSES:
                raise HTTPException(400, f"unknown status {status!r} (one of {STATUSES})")
            f.statuses.append(V1TaskStatus(status))
        f.range = params.get("range") or DEFAULT_RANGE
        if f.range not in (*RANGES, "custom"):
            raise HTTPException(400, f"unknown time range {f.range!r}")
        if f.range == "custom":
            f.since = _utc(params["since"], "since") if params.get("since") else None
            f.until = _utc(params["until"], "until") if params.get("until") else None
            if f.since and f.until and f.since > f.until:
                raise HTTPException(400, "since is after until")
        elif f.range != DEFAULT_RANGE:  # the default: runs.list's own (a day back)
            f.since = now - RANGES[f.range]
        for pair in filter(None, (p.strip() for p in f.metadata_text.split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise HTTPException(400, f"metadata filter must be key=value, got {pair!r}")
            f.metadata[key.strip()] = value.strip()
        try:
            f.page = max(1, int(params.get("page", "1")))
        except ValueError:
            raise HTTPException(400, "page must be a number") from None
        return f

    def list_args(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "statuses": self.statuses or None,
            "workflow_ids": [self.workflow_id] if self.workflow_id else None,
            "additional_metadata": self.metadata or None,
            "include_payloads": False,
        }

    def query(self, status: str = "", **changes: Any) -> str:
        """This page's query string with `changes` (for links), with only `status`."""
        chosen = [status] if status else [s.value for s in self.statuses]
        items: list[tuple[str, str]] = [("status", s) for s in chosen]
        values = {
            "workflow": self.workflow_id,
            "range": self.range if self.range != DEFAULT_RANGE else "",
            "since": self.since.strftime("%Y-%m-%dT%H:%M")
            if self.range == "custom" and self.since
            else "",
            "until": self.until.strftime("%Y-%m-%dT%H:%M") if self.until else "",
            "meta": self.metadata_text,
            "page": str(self.page) if self.page > 1 else "",
        }
        values.update({k: str(v) for k, v in changes.items()})
        items += [(k, v) for k, v in values.items() if v and not (k == "page" and v == "1")]
        return urlencode(items)


async def _count(hatchet: Hatchet, args: dict[str, Any], status: V1TaskStatus) -> int:
    """How many runs match, by one one-row page (the page count is the total)."""
    one = await hatchet.runs.aio_list(**{**args, "statuses": [status]}, limit=1)
    return (one.pagination.num_pages or 0) if one.rows else 0


async def runs_page(request: Request) -> Response:
    d = dashboard_of(request)
    f = RunFilters.parse(request.query_params, d.hatchet.clock.now())
    args = f.list_args()
    try:
        page = await d.hatchet.runs.aio_list(
            **args, offset=(f.page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    shown = f.statuses or list(V1TaskStatus)
    counts = dict(
        zip(shown, await asyncio.gather(*(_count(d.hatchet, args, s) for s in shown)), strict=True)
    )
    workflows = (await d.hatchet.workflows.aio_list()).rows or []
    return d.render(
        request,
        "runs.html",
        {
            "page": "runs",
            "title": "Runs",
            "runs": page.rows,
            "pagination": page.pagination,
            "counts": counts,
            "filters": f,
            "statuses": STATUSES,
            "ranges": list(RANGES),
            "workflows": workflows,
            "notice": request.query_params.get("notice", ""),
        },
    )


def task_name(task: V1TaskSummary) -> str:
    return (task.action_id or "").partition(":")[2] or task.display_name


async def _stream(hatchet: Hatchet, run_id: str, wait: float) -> list[str]:
    """The run's stream chunks so far (all of them once it has ended)."""
    chunks: list[str] = []

    async def gather() -> None:
        async for chunk in hatchet.runs.subscribe_to_stream(run_id):
            chunks.append(chunk)

    with contextlib.suppress(TimeoutError):  # still running: what is there so far
        await asyncio.wait_for(gather(), wait)
    return chunks


async def _logs(hatchet: Hatchet, tasks: list[V1TaskSummary]) -> dict[str, list[V1LogLine]]:
    pages = await asyncio.gather(
        *(hatchet.logs.aio_list(t.task_external_id, limit=LOG_LIMIT) for t in tasks)
    )
    return {t.task_external_id: p.rows or [] for t, p in zip(tasks, pages, strict=True)}


async def _children(
    hatchet: Hatchet, tasks: list[V1TaskSummary], created: datetime
) -> dict[str, list[V1TaskSummary]]:
    """The child runs each task spawned (those created within a week of the run)."""
    spawning = [t for t in tasks if t.num_spawned_children]
    pages = await asyncio.gather(
        *(
            hatchet.runs.aio_list(
                parent_task_external_id=t.task_external_id,
                since=created - timedelta(seconds=1),
                until=created + CHILD_WINDOW,
                limit=PAGE_SIZE,
                include_payloads=False,
            )
            for t in spawning
        )
    )
    return {t.task_external_id: p.rows for t, p in zip(spawning, pages, strict=True)}


async def _histories(hatchet: Hatchet, tasks: list[V1TaskSummary]) -> dict[str, DurableHistory]:
    """The durable history (every branch) of each durable task."""
    durable = [t for t in tasks if t.is_durable]
    found = await asyncio.gather(
        *(hatchet.runs.aio_get_durable_history(t.task_external_id) for t in durable)
    )
    return {t.task_external_id: h for t, h in zip(durable, found, strict=True)}


async def _parent_run(hatchet: Hatchet, parent_task_id: str | None) -> str | None:
    if not parent_task_id:
        return None
    try:
        return (await hatchet.runs.aio_get_task_run(parent_task_id)).workflow_run_external_id
    except RunNotFoundError:  # purged
        return None


async def run_page(request: Request) -> Response:
    d = dashboard_of(request)
    run_id = request.path_params["run_id"]
    try:
        details = await d.hatchet.runs.aio_get(run_id)
        summary = await d.hatchet.runs.aio_get_details(run_id)
    except RunNotFoundError:
        raise HTTPException(404, f"no workflow run with id {run_id!r}") from None
    run, tasks = details.run, details.tasks
    created = run.created_at or run.metadata.created_at
    finished = run.status in (V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED)
    logs, histories, children, parent_run, chunks = await asyncio.gather(
        _logs(d.hatchet, tasks),
        _histories(d.hatchet, tasks),
        _children(d.hatchet, tasks, created),
        _parent_run(d.hatchet, run.parent_task_external_id),
        _stream(d.hatchet, run_id, 5.0 if finished else STREAM_WAIT),
    )
    names = {item.task_external_id: item.task_name for item in details.shape}
    errors = {tr.external_id: tr.error for tr in summary.task_runs.values() if tr.error}
    return d.render(
        request,
        "run.html",
        {
            "page": "runs",
            "title": run.display_name,
            "run": run,
            "workflow_name": next((t.workflow_name for t in tasks if t.workflow_name), None)
            or run.display_name.rsplit("-", 1)[0],
            "tasks": tasks,
            "names": {
                t.task_external_id: names.get(t.task_external_id) or task_name(t) for t in tasks
            },
            "graph": layout(details.shape, tasks),
            "events": details.task_events,
            "errors": errors,
            "logs": logs,
            "histories": histories,
            "children": children,
            "parent_run": parent_run,
            "chunks": chunks,
            "finished": finished,
        },
    )


def routes() -> list[Route]:
    return [
        Route("/", runs_page, name="runs"),
        Route("/runs/{run_id}", run_page, name="run"),
    ]
