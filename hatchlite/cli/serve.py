"""`hatchlite worker`, `hatchlite run` and `hatchlite dashboard`."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from hatchlite.cli.common import (
    INTERRUPTED,
    RUN_FAILED,
    UserError,
    db_option,
    err,
    json_object,
    ms,
    opened,
    out,
    print_json,
    user_errors,
)
from hatchlite.client import Hatchet
from hatchlite.models import V1WorkflowRunDetails
from hatchlite.runnables import BaseWorkflow
from hatchlite.types import V1TaskStatus
from hatchlite.worker import Worker

# How often `hatchlite run` looks at its run while it waits (seconds).
POLL = 0.2
ENDED = (V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED)


def load_target(spec: str) -> Any:
    """`module` or `module:attr`, imported from the current directory first."""
    module_name, _, attr = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name)
            sys.path.insert(0, str(path.parent.resolve()))
            module_name = path.stem
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name.split(".")[0] or exc.name == module_name:
            raise UserError(f"no module named {module_name!r} (run from its directory)") from exc
        raise UserError(f"importing {module_name!r} failed: {exc}") from exc
    except SyntaxError as exc:
        raise UserError(
            f"importing {module_name!r} failed: {exc.msg} ({exc.filename}, line {exc.lineno})"
        ) from exc
    except Exception as exc:
        where = _where(exc)
        raise UserError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}{where}"
        ) from exc
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise UserError(f"module {module_name!r} has no attribute {attr!r}") from exc


def _where(exc: BaseException) -> str:
    """` (file, line N)` of the innermost frame of `exc`'s traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "" if tb is None else f" ({tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})"


def _worker_for(target: Any, name: str | None, slots: int | None) -> Worker:
    """A `Worker` object as it is; a workflow, a list of them, or a module's workflows
    served by a new worker of their client."""
    if isinstance(target, Worker):
        if slots is not None or name is not None:
            raise UserError("--slots and --name apply to workflows, not to a Worker object")
        return target
    if isinstance(target, BaseWorkflow):
        found: list[Any] = [target]
    elif isinstance(target, list | tuple):
        found = list(target)
    else:  # a module: every workflow it defines
        found = [v for v in vars(target).values() if isinstance(v, BaseWorkflow)]
    workflows = [w for w in found if isinstance(w, BaseWorkflow)]
    if not workflows or len(workflows) != len(found):
        raise UserError("nothing to serve: give a module, a Worker, or workflows")
    clients = {id(w._client): w._client for w in workflows}
    if len(clients) != 1:
        raise UserError("the workflows are defined on different Hatchet clients")
    client: Hatchet = next(iter(clients.values()))
    return client.worker(name or "hatchlite-worker", slots=slots, workflows=workflows)


@click.command()
@click.argument("target", metavar="MODULE[:ATTR]")
@click.option("--slots", type=click.IntRange(1), help="Task slots (default 100).")
@click.option("--name", help="The worker's name.")
@db_option
@user_errors
def worker(target: str, slots: int | None, name: str | None, db: str) -> None:
    """Serve a module's workflows (or the Worker, workflow or list MODULE:ATTR names)
    until SIGINT or SIGTERM, which stop it gracefully (as worker.start() does).

    The module's Hatchet() reads its database from HATCHLITE_DB, which --db sets."""
    os.environ["HATCHLITE_DB"] = db  # before the import: module-level Hatchet() reads it
    chosen = _worker_for(load_target(target), name, slots)
    serving = chosen._client.db
    if os.path.abspath(serving) != os.path.abspath(db):
        raise UserError(
            f"the module's Hatchet uses the database {serving}, not {db}: drop db= from "
            f"its Hatchet() (it then reads HATCHLITE_DB) or pass --db {serving}"
        )
    # hatchlite's own log lines (started, stopping, re-queued, ...) on standard error.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    chosen.start()


def _progress(details: V1WorkflowRunDetails) -> Table:
    grid = Table(title=f"run {details.run.metadata.id}", title_justify="left")
    for column in ("task", "status", "duration"):
        grid.add_column(column)
    for task in details.tasks:
        grid.add_row(task.display_name.rsplit("-", 1)[0], task.status.value, ms(task.duration))
    if not details.tasks:
        grid.add_row("(queued)", details.run.status.value, "")
    return grid


def _serving(client: Hatchet, name: str) -> bool:
    """Whether a running, unpaused worker serves workflow `name`."""
    prefix = f"{name.lower()}:"
    for row in client.workers.list().rows or []:
        if row.status == "ACTIVE" and any(a.startswith(prefix) for a in row.actions or []):
            return True
    return False


@click.command()
@click.argument("workflow")
@click.option("--input", "input_text", help="The input, a JSON object.")
@click.option("--input-file", type=click.File("r"), help="A file with the input (JSON).")
@click.option("--metadata", help="Additional metadata, a JSON object.")
@click.option("--no-wait", is_flag=True, help="Print the run id and return at once.")
@click.option("--timeout", type=click.FloatRange(0), help="Stop waiting after this many seconds.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of progress.")
@user_errors
def run(
    workflow: str,
    input_text: str | None,
    input_file: Any,
    metadata: str | None,
    no_wait: bool,
    timeout: float | None,
    db: str,
    as_json: bool,
) -> None:
    """Trigger WORKFLOW by name and, unless --no-wait, show its tasks until it ends;
    exit 0 when it completed, 1 when it failed or was cancelled."""
    if input_text is not None and input_file is not None:
        raise UserError("give --input or --input-file, not both")
    body = json_object(input_file.read() if input_file else input_text, "the input")
    meta = json_object(metadata, "--metadata")
    with opened(db) as client:
        found = client.workflows.list(workflow_name=workflow).rows or []
        if not found:
            raise UserError(f"no workflow named {workflow!r} on {db}")
        if found[0].is_paused and not no_wait:
            raise UserError(
                f"workflow {workflow!r} is paused: `hatchlite workflows unpause {workflow}`, "
                f"or pass --no-wait to queue the run until then"
            )
        if not no_wait and not _serving(client, workflow):
            raise UserError(
                f"no running worker serves workflow {workflow!r} on {db}: start one with "
                f"`hatchlite worker MODULE --db {db}`, or pass --no-wait to queue the run"
            )
        run_id = client.runs.create(workflow, body, additional_metadata=meta).run.metadata.id
        if no_wait:
            print_json({"run_id": run_id}) if as_json else out.print(run_id, highlight=False)
            return
        try:
            details = _wait(client, run_id, timeout, live=not as_json)
        except KeyboardInterrupt:
            err.print(
                f"stopped waiting; run {run_id} goes on (cancel it with "
                f"`hatchlite runs cancel {run_id}`)"
            )
            raise SystemExit(INTERRUPTED) from None
    status = details.run.status
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "status": status.value,
                "output": details.run.output if status is V1TaskStatus.COMPLETED else None,
                "error": details.run.error_message,
            }
        )
    elif status is V1TaskStatus.COMPLETED:
        out.print_json(data=details.run.output)
    else:
        err.print(
            f"run {run_id} {status.value.lower()}"
            + (f": {details.run.error_message}" if details.run.error_message else ""),
            highlight=False,
            markup=False,
        )
    if status in (V1TaskStatus.FAILED, V1TaskStatus.CANCELLED):
        raise SystemExit(RUN_FAILED)
    if status not in ENDED:
        raise SystemExit(RUN_FAILED)  # --timeout passed


def _wait(client: Hatchet, run_id: str, timeout: float | None, live: bool) -> V1WorkflowRunDetails:
    deadline = None if timeout is None else time.monotonic() + timeout
    details = client.runs.get(run_id)
    display = Live(_progress(details), console=err, transient=False) if live else None
    try:
        if display is not None:
            display.start()
        while details.run.status not in ENDED:
            if deadline is not None and time.monotonic() >= deadline:
                err.print(f"still {details.run.status.value} after {timeout} s", highlight=False)
                break
            time.sleep(POLL)
            details = client.runs.get(run_id)
            if display is not None:
                display.update(_progress(details))
    finally:
        if display is not None:
            display.stop()
            if not err.is_terminal:
                err.line()  # the last frame ends its line in a log too
    return details


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8800, show_default=True, type=click.IntRange(1, 65535))
@click.option("--read-only", is_flag=True, help="Refuse every action (cancel, replay, ...).")
@click.option("--token", envvar="HATCHLITE_DASHBOARD_TOKEN", help="Required by every request.")
@user_errors
def dashboard(db: str, host: str, port: int, read_only: bool, token: str | None) -> None:
    """Serve the dashboard for the database (needs `pip install 'hatchlite[dashboard]'`)."""
    from hatchlite.operate import open_existing

    open_existing(db).close()  # a missing or foreign file is refused before serving
    try:
        from hatchlite.dashboard import serve as serve_dashboard

        serve_dashboard(db=db, host=host, port=port, read_only=read_only, token=token)
    except ImportError as exc:
        raise UserError(
            f"the dashboard needs its extra: pip install 'hatchlite[dashboard]' ({exc})"
        ) from exc
