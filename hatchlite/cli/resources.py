"""`hatchlite events|cron|scheduled|workers|workflows ...`."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from hatchlite.cli.common import (
    common,
    duration,
    json_object,
    opened,
    out,
    print_json,
    table,
    user_errors,
    when,
)
from hatchlite.cli.runs import workflow_id
from hatchlite.cron import parse


def next_fire(expression: str) -> datetime | None:
    """When a cron expression fires next (None if it does not parse)."""
    try:
        return datetime.fromtimestamp(parse(expression).next_after(time.time()), UTC)
    except ValueError:
        return None


# -- events ---------------------------------------------------------------------


@click.group()
def events() -> None:
    """Push and list events."""


@events.command("push")
@click.argument("key")
@click.option("--payload", default="{}", show_default=True, help="The payload, a JSON object.")
@click.option("--metadata", help="Additional metadata, a JSON object.")
@click.option("--scope", help="The event's scope (for filters).")
@common
@user_errors
def push(
    key: str, payload: str, metadata: str | None, scope: str | None, db: str, as_json: bool
) -> None:
    """Push an event: it starts the workflows that listen to KEY and meets the waits
    for it."""
    body = json_object(payload, "--payload")
    meta = json_object(metadata, "--metadata")
    with opened(db) as client:
        event = client.event.push(key, body, additional_metadata=meta, scope=scope)
    if as_json:
        print_json(event)
    else:
        out.print(f"pushed {event.key} {event.event_id}", highlight=False)


@events.command("list")
@click.option("--key", "keys", multiple=True, help="Only events with this key.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@common
@user_errors
def list_events(keys: tuple[str, ...], limit: int, db: str, as_json: bool) -> None:
    """Pushed events, newest first, with the runs each started."""
    with opened(db) as client:
        rows = client.event.list(keys=list(keys) or None, limit=limit).rows or []
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["event id", "key", "scope", "pushed", "runs started"],
        [
            (
                e.metadata.id,
                e.key,
                e.scope,
                when(e.metadata.created_at),
                len(e.triggered_runs or []),
            )
            for e in rows
        ],
    )


# -- crons and schedules ---------------------------------------------------------------


@click.group()
def cron() -> None:
    """List and delete crons."""


@cron.command("list")
@click.option("--workflow", help="Only crons of this workflow.")
@common
@user_errors
def list_crons(workflow: str | None, db: str, as_json: bool) -> None:
    """Crons, with their next fire time."""
    with opened(db) as client:
        if workflow:
            workflow_id(client, workflow)  # an unknown workflow is an error
        rows = client.cron.list(workflow_name=workflow, limit=1000).rows or []
    if as_json:
        print_json(
            [{**c.model_dump(mode="json"), "next_fire": _iso(next_fire(c.cron))} for c in rows]
        )
        return
    table(
        None,
        ["cron id", "name", "workflow", "expression", "next fire", "from"],
        [
            (
                c.metadata.id,
                c.name,
                c.workflow_name,
                c.cron,
                when(next_fire(c.cron)),
                c.method.value,
            )
            for c in rows
        ],
    )


@cron.command("delete")
@click.argument("cron_id")
@common
@user_errors
def delete_cron(cron_id: str, db: str, as_json: bool) -> None:
    """Delete a cron made with create_cron (declared ones come back with their code)."""
    with opened(db) as client:
        client.cron.get(cron_id)  # an unknown id is an error
        client.cron.delete(cron_id)
    _said("deleted", cron_id, as_json)


@click.group()
def scheduled() -> None:
    """List and delete one-time schedules."""


@scheduled.command("list")
@click.option("--workflow", help="Only schedules of this workflow.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@common
@user_errors
def list_scheduled(workflow: str | None, limit: int, db: str, as_json: bool) -> None:
    """One-time schedules, latest first."""
    with opened(db) as client:
        ids = workflow_id(client, workflow) if workflow else None
        rows = client.scheduled.list(workflow_id=ids, limit=limit).rows or []
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["schedule id", "workflow", "fires at", "run status", "run id"],
        [
            (
                s.metadata.id,
                s.workflow_name,
                when(s.trigger_at),
                s.workflow_run_status.value if s.workflow_run_status else "",
                s.workflow_run_id,
            )
            for s in rows
        ],
    )


@scheduled.command("delete")
@click.argument("scheduled_id")
@common
@user_errors
def delete_scheduled(scheduled_id: str, db: str, as_json: bool) -> None:
    """Delete a one-time schedule."""
    with opened(db) as client:
        client.scheduled.get(scheduled_id)  # an unknown id is an error
        client.scheduled.delete(scheduled_id)
    _said("deleted", scheduled_id, as_json)


# -- workers and workflows --------------------------------------------------------------


@click.group()
def workers() -> None:
    """List workers."""


@workers.command("list")
@common
@user_errors
def list_workers(db: str, as_json: bool) -> None:
    """Workers that run or ran on this database."""
    with opened(db) as client:
        rows = client.workers.list().rows or []
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["worker id", "name", "status", "slots free/total", "last heartbeat", "workflows"],
        [
            (
                w.metadata.id,
                w.name,
                w.status,
                f"{'' if w.available_runs is None else w.available_runs}/{w.max_runs}",
                when(w.last_heartbeat_at),
                ", ".join(sorted({a.split(":")[0] for a in w.actions or []})),
            )
            for w in rows
        ],
    )


@click.group()
def workflows() -> None:
    """List, pause and unpause workflows."""


@workflows.command("list")
@common
@user_errors
def list_workflows(db: str, as_json: bool) -> None:
    """Workflows registered on this database."""
    with opened(db) as client:
        rows = client.workflows.list().rows or []
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["workflow id", "name", "paused", "tasks"],
        [
            (
                w.metadata.id,
                w.name,
                "yes" if w.is_paused else "",
                ", ".join(s.readable_id for j in w.jobs or [] for s in j.steps),
            )
            for w in rows
        ],
    )


@workflows.command("pause")
@click.argument("name")
@click.option(
    "--queue-ttl",
    default="1d",
    show_default=True,
    help="Queued runs waiting longer than this while paused are cancelled.",
)
@common
@user_errors
def pause(name: str, queue_ttl: str, db: str, as_json: bool) -> None:
    """Stop starting NAME's task runs (they stay queued) until unpaused."""
    ttl = duration(queue_ttl, "--queue-ttl")
    with opened(db) as client:
        workflow = client.workflows.pause(workflow_id(client, name), ttl)
    _said("paused", workflow.name, as_json)


@workflows.command("unpause")
@click.argument("name")
@common
@user_errors
def unpause(name: str, db: str, as_json: bool) -> None:
    """Start NAME's queued task runs again."""
    with opened(db) as client:
        workflow = client.workflows.unpause(workflow_id(client, name))
    _said("unpaused", workflow.name, as_json)


def _said(what: str, name: str, as_json: bool) -> None:
    if as_json:
        print_json({what: name})
    else:
        out.print(f"{what} {name}", highlight=False)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
