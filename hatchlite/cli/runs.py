"""`hatchlite runs ...`: list, show, cancel, replay, logs, purge."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.text import Text

from hatchlite.cli.common import (
    UserError,
    common,
    duration,
    err,
    ms,
    opened,
    out,
    print_json,
    table,
    user_errors,
    when,
)
from hatchlite.client import Hatchet
from hatchlite.models import V1WorkflowRunDetails
from hatchlite.types import V1TaskStatus

STATUSES = [s.value for s in V1TaskStatus]


@click.group()
def runs() -> None:
    """Read and operate workflow runs."""


def workflow_id(client: Hatchet, name: str) -> str:
    """The id of the registered workflow `name` (a UserError-worthy LookupError if none)."""
    found = client.workflows.list(workflow_name=name).rows or []
    if not found:
        raise LookupError(f"no workflow named {name!r} on {client.db}")
    return found[0].metadata.id


def since_time(text: str | None) -> datetime | None:
    """`--since`: an ISO date or time, or a duration before now (`2h`, `1d`)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) - duration(text, "--since")
    return moment if moment.tzinfo else moment.astimezone()


@runs.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES, False))
@click.option("--workflow", help="Only runs of this workflow.")
@click.option(
    "--since", help="Created since: an ISO time, or a duration before now (7d). Default: 1d."
)
@click.option("--metadata", "metadata", multiple=True, help="key=value of additional metadata.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, type=click.IntRange(0))
@common
@user_errors
def list_runs(
    statuses: tuple[str, ...],
    workflow: str | None,
    since: str | None,
    metadata: tuple[str, ...],
    limit: int,
    offset: int,
    db: str,
    as_json: bool,
) -> None:
    """Runs, newest first."""
    pairs: dict[str, str] = {}
    for item in metadata:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--metadata {item!r} is not key=value")
        pairs[key] = value
    with opened(db) as client:
        ids = [workflow_id(client, workflow)] if workflow else None
        found = client.runs.list(
            since=since_time(since),
            statuses=[V1TaskStatus(s.upper()) for s in statuses] or None,
            workflow_ids=ids,
            additional_metadata=pairs or None,
            limit=limit,
            offset=offset,
            include_payloads=as_json,
        )
    rows = found.rows or []
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["run id", "workflow", "status", "created", "duration"],
        [
            (
                r.workflow_run_external_id,
                r.workflow_name,
                r.status.value,
                when(r.created_at),
                ms(r.duration),
            )
            for r in rows
        ],
    )


def _task_rows(details: V1WorkflowRunDetails) -> list[tuple[Any, ...]]:
    return [
        (
            t.display_name.rsplit("-", 1)[0],
            t.task_external_id,
            t.status.value + (" (evicted)" if t.is_evicted else ""),
            t.attempt,
            ms(t.duration),
            t.error_message or "",
        )
        for t in details.tasks
    ]


@runs.command("show")
@click.argument("run_id")
@common
@user_errors
def show(run_id: str, db: str, as_json: bool) -> None:
    """One run: status, tasks, input, output, error."""
    with opened(db) as client:
        details = client.runs.get(run_id)
    if as_json:
        print_json(details)
        return
    run = details.run
    name = details.tasks[0].workflow_name if details.tasks else None
    out.print(Text(name or run.display_name, style="bold") + Text(f"  {run.metadata.id}"))
    out.print(
        f"status {run.status.value}   created {when(run.created_at)}   "
        f"duration {ms(run.duration) or '-'}",
        highlight=False,
    )
    table(
        None, ["task", "task run id", "status", "attempt", "duration", "error"], _task_rows(details)
    )
    out.print("input  " + json.dumps(run.input), highlight=False, markup=False)
    if run.status is V1TaskStatus.COMPLETED:
        out.print("output " + json.dumps(run.output), highlight=False, markup=False)
    if run.error_message:
        out.print("error  " + run.error_message, highlight=False, markup=False)


@runs.command("cancel")
@click.argument("run_ids", nargs=-1, required=True)
@common
@user_errors
def cancel(run_ids: tuple[str, ...], db: str, as_json: bool) -> None:
    """Cancel runs (or task runs) by id."""
    with opened(db) as client:
        statuses = {run_id: client.runs.get_status(run_id) for run_id in run_ids}  # known?
        ended = (V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED)
        going = tuple(r for r in run_ids if statuses[r] not in ended)
        for run_id in going:
            client.runs.cancel(run_id)
    finished = {r: statuses[r].value for r in run_ids if r not in going}
    if as_json:
        print_json({"cancelled": list(going), "already_finished": finished})
        return
    _done("cancelled", going, as_json)
    for run_id, status in finished.items():
        out.print(f"{run_id} had already ended ({status}): nothing to cancel")


@runs.command("replay")
@click.argument("run_ids", nargs=-1, required=True)
@common
@user_errors
def replay(run_ids: tuple[str, ...], db: str, as_json: bool) -> None:
    """Run finished runs (or task runs) again: failed and cancelled tasks and what
    follows them; an evicted durable task is queued again at once."""
    with opened(db) as client:
        for run_id in run_ids:
            client.runs.replay(run_id)
    _done("replayed", run_ids, as_json)


def _done(what: str, run_ids: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        print_json({what: list(run_ids)})
    else:
        for run_id in run_ids:
            out.print(f"{what} {run_id}", highlight=False)


@runs.command("logs")
@click.argument("run_id")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1))
@common
@user_errors
def logs(run_id: str, limit: int, db: str, as_json: bool) -> None:
    """Log lines of a run's tasks, oldest first."""
    with opened(db) as client:
        details = client.runs.get(run_id)
        lines = []
        for task in details.tasks:
            for line in client.logs.list(task.task_external_id, limit=limit).rows or []:
                lines.append((task.display_name.rsplit("-", 1)[0], line))
    lines.sort(key=lambda item: item[1].created_at)
    if as_json:
        print_json([{"task": name, **line.model_dump(mode="json")} for name, line in lines])
        return
    for name, line in lines:
        level = line.level.value if line.level else "INFO"
        out.print(
            f"{when(line.created_at)} {name} [{level}] {line.message}",
            highlight=False,
            markup=False,
        )


@runs.command("purge")
@click.option("--older-than", required=True, help="Finished longer ago than this (30d, 12h).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["COMPLETED", "FAILED", "CANCELLED"], False),
)
@click.option("--no-vacuum", is_flag=True, help="Keep the freed pages in the file.")
@common
@user_errors
def purge(
    older_than: str, statuses: tuple[str, ...], no_vacuum: bool, db: str, as_json: bool
) -> None:
    """Delete finished runs (and old events) for good."""
    age = duration(older_than, "--older-than")
    with opened(db) as client:
        deleted = client.runs.purge(
            older_than=age,
            statuses=[V1TaskStatus(s.upper()) for s in statuses] or None,
            vacuum=not no_vacuum,
        )
    if as_json:
        print_json({"deleted": deleted})
    else:
        err.print(f"deleted {deleted} runs and events", highlight=False)
