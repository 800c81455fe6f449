"""Run refs and result shapes: what `run()`/`aio_run()` and refs return, as Hatchet's
`ref.result()` (poll) and `ref.aio_result()` (event) give them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Generic, Literal

from hatchlite.dag import R, TWorkflowInput
from hatchlite.exceptions import FailedTaskRunExceptionGroup, TaskRunError
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import RunResult

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.runnables import Standalone

ResultMode = Literal["poll", "event"]


def format_workflow_result(
    result: RunResult, mode: ResultMode, durable_parent: bool = False
) -> dict[str, Any]:
    """A DAG's result dict, as `ref.result()` (poll) or `ref.aio_result()` (event) gives it.
    Inside a durable task, a failed or cancelled child raises its `TaskRunError`."""
    if result.status == "FAILED":
        errors = [
            TaskRunError.from_json(t.error_json, t.task_id)
            for t in result.tasks
            if t.status == "FAILED" and t.error_json
        ]
        if durable_parent and errors:
            raise errors[0]
        raise FailedTaskRunExceptionGroup(f"Workflow run {result.run_id} failed.", errors)
    if durable_parent and result.status == "CANCELLED":
        raise TaskRunError("task was cancelled", "TaskRunError", "", result.run_id)
    if mode == "poll":
        if result.status == "CANCELLED":
            raise ValueError(f"Workflow run {result.run_id} was cancelled.")
        return {
            t.task_name: json.loads(t.output_json) if t.output_json else None
            for t in result.tasks
            if t.status != "PENDING"
        }
    return {t.task_name: json.loads(t.output_json) for t in result.tasks if t.output_json}


class WorkflowRunRef:
    """A handle on a triggered workflow run."""

    def __init__(self, workflow_run_id: str, client: Hatchet) -> None:
        self.workflow_run_id = workflow_run_id
        self._client = client

    def __str__(self) -> str:
        return self.workflow_run_id

    def __repr__(self) -> str:
        return f"WorkflowRunRef({self.workflow_run_id!r})"

    async def _wait(self) -> RunResult:
        engine = self._client._engine
        if self._client._auto_worker:  # a script waiting for earlier runs executes them
            await engine.ensure_started()
            await engine.ensure_implicit_worker()
        return (await engine.wait_existing([self.workflow_run_id]))[0]

    def result(self) -> dict[str, Any]:
        """Block until the run ends: `{task_name: output}`; raises on failure or cancel."""
        return format_workflow_result(RUNTIME.call(self._wait), "poll")

    async def aio_result(self) -> dict[str, Any]:
        """Wait until the run ends: `{task_name: output}` of tasks with output; raises on
        failure, returns normally for a cancelled run."""
        return format_workflow_result(await RUNTIME.acall(self._wait), "event")


class TaskRunRef(Generic[TWorkflowInput, R]):
    """A handle on a triggered standalone task run."""

    def __init__(self, standalone: Standalone[TWorkflowInput, R], ref: WorkflowRunRef) -> None:
        self._standalone = standalone
        self._ref = ref

    @property
    def workflow_run_id(self) -> str:
        return self._ref.workflow_run_id

    def __str__(self) -> str:
        return self.workflow_run_id

    def __repr__(self) -> str:
        return f"TaskRunRef({self.workflow_run_id!r})"

    def result(self) -> R:
        return self._standalone._result(RUNTIME.call(self._ref._wait), "poll", False)

    async def aio_result(self) -> R:
        return self._standalone._result(await RUNTIME.acall(self._ref._wait), "event", False)
