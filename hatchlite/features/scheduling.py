"""What crons (`hatchet.cron`, features/cron.py) and one-time schedules
(`hatchet.scheduled`, features/scheduled.py) share: their workflow, input and times.

A cron or schedule names its workflow; it fires in a process with a worker serving
that workflow (see hatchlite/store/schedules.py). The input is validated against the
workflow's `input_validator` when the cron or schedule is created, if this process
defines the workflow; nothing is stored when it does not validate.

Times are UTC. A naive `datetime` is read as UTC (as Hatchet's documentation says; its
SDK logs "assuming UTC"), with a warning.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hatchlite.features.summaries import utc
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import (
    APIResourceMeta,
)
from hatchlite.types import JSONMap

if TYPE_CHECKING:
    from hatchlite.scheduler.engine import Engine

logger = logging.getLogger("hatchlite")


def instant(when: datetime, what: str) -> float:
    """A datetime as epoch seconds; a naive one is read as UTC (with a warning)."""
    if not isinstance(when, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        logger.warning("%s %s is naive; assuming UTC", what, when.isoformat())
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def json_map(value: Any, what: str) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from exc


async def target_workflow(engine: Engine, workflow_name: str, input: Any) -> tuple[str, str]:
    """The stored workflow's id, and the input as JSON (validated when this process
    defines the workflow): raises if there is no such workflow."""
    await engine.ensure_started()
    workflow = engine.defined.get(workflow_name)
    if workflow is not None:
        input_json = workflow.validate_input(input)
        await engine.register([workflow])
    else:
        input_json = json_map(input, "input")
    record = await engine.store.workflow_by_name(workflow_name)
    if record is None:
        raise WorkflowNotFoundError(missing_workflow(workflow_name, engine, workflow is not None))
    return record.id, input_json


def missing_workflow(workflow_name: str, engine: Engine, defined: bool) -> str:
    if defined:
        return f"workflow {workflow_name!r} was deleted from {engine.path}"
    return f"no workflow named {workflow_name!r} is defined here or registered on {engine.path}"


def resource_meta(record_id: str, created: float, updated: float) -> APIResourceMeta:
    made, changed = utc(created), utc(updated)
    assert made is not None and changed is not None
    return APIResourceMeta(id=record_id, created_at=made, updated_at=changed)


def text_map(metadata: JSONMap | None) -> dict[str, str] | None:
    return None if not metadata else {str(k): str(v) for k, v in metadata.items()}
