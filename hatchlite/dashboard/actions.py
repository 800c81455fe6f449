"""The dashboard's actions, POST only: cancel, replay, trigger, pause and unpause,
restore an evicted task, purge old runs. Each checks the form's CSRF token (the guard
has already refused cross-site and read-only requests), calls one public API and
redirects (303) to the page that shows the result. Bad input changes nothing: 404 for
what does not exist, 400 with the reason for the rest."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hatchlite.dashboard.app import dashboard_of
from hatchlite.dashboard.security import check_form
from hatchlite.exceptions import HatchliteError, RunNotFoundError
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.types import V1TaskStatus

FINISHED = ("COMPLETED", "FAILED", "CANCELLED")


async def _form(request: Request) -> FormData:
    form = await request.form()
    check_form(request, form)
    return form


def _redirect(request: Request, path: str) -> Response:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(base + path, status_code=303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _number(form: FormData, name: str, what: str) -> float:
    try:
        value = float(_text(form, name))
    except ValueError:
        raise HTTPException(400, f"{what} must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise HTTPException(400, f"{what} must be 0 or more")
    return value


def _json_object(text: str, what: str) -> dict[str, Any] | None:
    """A JSON object from a form field (None when the field is empty)."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise HTTPException(400, f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise HTTPException(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


async def cancel(request: Request) -> Response:
    await _form(request)
    run_id = request.path_params["run_id"]
    try:
        await dashboard_of(request).hatchet.runs.aio_cancel(run_id)
    except RunNotFoundError:
        raise HTTPException(404, f"no workflow run with id {run_id!r}") from None
    return _redirect(request, f"/runs/{quote(run_id)}")


async def replay(request: Request) -> Response:
    await _form(request)
    run_id = request.path_params["run_id"]
    try:
        await dashboard_of(request).hatchet.runs.aio_replay(run_id)
    except RunNotFoundError:
        raise HTTPException(404, f"no workflow run with id {run_id!r}") from None
    except (HatchliteError, ValueError) as error:
        raise HTTPException(400, str(error)) from None
    return _redirect(request, f"/runs/{quote(run_id)}")


async def restore(request: Request) -> Response:
    await _form(request)
    task_id = request.path_params["task_id"]
    runs = dashboard_of(request).hatchet.runs
    try:
        run_id = (await runs.aio_get_task_run(task_id)).workflow_run_external_id
        await runs.aio_restore_task(task_id)
    except RunNotFoundError:
        raise HTTPException(404, f"no task run with id {task_id!r}") from None
    except (HatchliteError, ValueError) as error:  # RestoreError: not evicted
        raise HTTPException(400, str(error)) from None
    return _redirect(request, f"/runs/{quote(run_id)}")


async def trigger(request: Request) -> Response:
    form = await _form(request)
    name = _text(form, "workflow").strip()
    if not name:
        raise HTTPException(400, "choose a workflow to trigger")
    payload = _json_object(_text(form, "input"), "the input") or {}
    metadata = _json_object(_text(form, "metadata"), "the additional metadata")
    try:
        created = await dashboard_of(request).hatchet.runs.aio_create(name, payload, metadata)
    except LookupError as error:  # UnknownWorkflowError
        raise HTTPException(404, str(error)) from None
    except (HatchliteError, ValueError, TypeError) as error:  # InputValidationError, ...
        raise HTTPException(400, str(error)) from None
    return _redirect(request, f"/runs/{quote(created.run.metadata.id)}")


async def _set_paused(request: Request, paused: bool) -> Response:
    form = await _form(request)
    workflow_id = request.path_params["workflow_id"]
    workflows = dashboard_of(request).hatchet.workflows
    try:
        if paused:
            ttl = (
                _number(form, "queue_ttl_hours", "the queue TTL")
                if form.get("queue_ttl_hours")
                else 24.0
            )
            await workflows.aio_pause(workflow_id, queue_ttl=timedelta(hours=ttl))
        else:
            await workflows.aio_unpause(workflow_id)
    except WorkflowNotFoundError:
        raise HTTPException(404, f"no workflow with id {workflow_id!r}") from None
    except OverflowError:
        raise HTTPException(400, "the queue TTL is too long") from None
    return _redirect(request, "/workflows")


async def pause(request: Request) -> Response:
    return await _set_paused(request, True)


async def unpause(request: Request) -> Response:
    return await _set_paused(request, False)


async def purge(request: Request) -> Response:
    form = await _form(request)
    days = _number(form, "older_than_days", "the age in days")
    statuses = [s for s in form.getlist("status") if isinstance(s, str)]
    unknown = [s for s in statuses if s not in FINISHED]
    if unknown:
        raise HTTPException(400, f"only finished runs can be purged, not {', '.join(unknown)}")
    try:
        deleted = await dashboard_of(request).hatchet.runs.aio_purge(
            timedelta(days=days), statuses=[V1TaskStatus(s) for s in statuses] or None
        )
    except (OverflowError, ValueError) as error:
        raise HTTPException(400, str(error)) from None
    notice = f"Purged {deleted} runs and events finished more than {days:g} days ago."
    return _redirect(request, "/?" + urlencode({"notice": notice}))


def routes() -> list[Route]:
    post = ["POST"]
    return [
        Route("/runs/{run_id}/cancel", cancel, methods=post, name="cancel"),
        Route("/runs/{run_id}/replay", replay, methods=post, name="replay"),
        Route("/tasks/{task_id}/restore", restore, methods=post, name="restore"),
        Route("/workflows/{workflow_id}/pause", pause, methods=post, name="pause"),
        Route("/workflows/{workflow_id}/unpause", unpause, methods=post, name="unpause"),
        Route("/trigger", trigger, methods=post, name="trigger"),
        Route("/purge", purge, methods=post, name="purge"),
    ]
