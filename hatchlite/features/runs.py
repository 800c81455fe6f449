"""`hatchet.runs`: read and cancel runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hatchlite.exceptions import RunNotFoundError
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import RunResult
from hatchlite.types import JSONMap, RunStatus, V1TaskStatus

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.refs import WorkflowRunRef


class TaskRunDetail(BaseModel):
    external_id: str
    readable_id: str
    output: JSONMap | None = None
    error: str | None = None
    status: V1TaskStatus
    is_evicted: bool = False


class WorkflowRunDetail(BaseModel):
    external_id: str
    status: RunStatus
    input: JSONMap | None = None
    additional_metadata: JSONMap | None = None
    task_runs: dict[str, TaskRunDetail]
    done: bool = False


class BulkCancelReplayOpts(BaseModel):
    ids: list[str] | None = None
    filters: Any = None


def _public_status(status: str) -> V1TaskStatus:
    return V1TaskStatus.RUNNING if status == "WAITING" else V1TaskStatus(status)


class RunsClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def _details(self, workflow_run_id: str) -> tuple[RunResult, str, str]:
        engine = self._client._engine
        await engine.ensure_started()
        found = await engine.store.results([workflow_run_id])
        data = await engine.store.run_data(workflow_run_id)
        if workflow_run_id not in found or data is None:
            raise RunNotFoundError(f"no workflow run with id {workflow_run_id!r}")
        return found[workflow_run_id], data[0], data[1]

    async def aio_get_details(self, external_id: str) -> WorkflowRunDetail:
        """Status, input, metadata and the task runs created so far of one run."""
        result, input_json, meta_json = await RUNTIME.acall(self._details, external_id)
        return _detail(result, input_json, meta_json)

    def get_details(self, external_id: str) -> WorkflowRunDetail:
        result, input_json, meta_json = RUNTIME.call(self._details, external_id)
        return _detail(result, input_json, meta_json)

    async def aio_get_status(self, workflow_run_id: str) -> V1TaskStatus:
        return (await self.aio_get_details(workflow_run_id)).status.to_v1_task_status()

    def get_status(self, workflow_run_id: str) -> V1TaskStatus:
        return self.get_details(workflow_run_id).status.to_v1_task_status()

    async def aio_cancel(self, run_id: str) -> None:
        """Cancel a workflow run (or one task run): running tasks are stopped, pending
        ones never start. Child runs it spawned are not cancelled (as in Hatchet)."""
        await RUNTIME.acall(self._client._engine.cancel, [run_id])

    def cancel(self, run_id: str) -> None:
        RUNTIME.call(self._client._engine.cancel, [run_id])

    async def aio_bulk_cancel(self, opts: BulkCancelReplayOpts) -> None:
        await RUNTIME.acall(self._client._engine.cancel, list(opts.ids or []))

    def bulk_cancel(self, opts: BulkCancelReplayOpts) -> None:
        RUNTIME.call(self._client._engine.cancel, list(opts.ids or []))

    def get_run_ref(self, workflow_run_id: str) -> WorkflowRunRef:
        from hatchlite.refs import WorkflowRunRef

        return WorkflowRunRef(workflow_run_id, self._client)

    def get_result(self, run_id: str) -> dict[str, Any]:
        return self.get_run_ref(run_id).result()

    async def aio_get_result(self, run_id: str) -> dict[str, Any]:
        return await self.get_run_ref(run_id).aio_result()


def _detail(result: RunResult, input_json: str, meta_json: str) -> WorkflowRunDetail:
    from hatchlite.exceptions import TaskRunError

    status = RunStatus(_public_status(result.status).value)
    return WorkflowRunDetail(
        external_id=result.run_id,
        status=status,
        input=json.loads(input_json) if input_json else None,
        additional_metadata=json.loads(meta_json) if meta_json else None,
        task_runs={
            t.task_name: TaskRunDetail(
                external_id=t.task_id,
                readable_id=t.task_name,
                output=json.loads(t.output_json) if t.output_json else None,
                error=TaskRunError.from_json(t.error_json).serialize() if t.error_json else None,
                status=_public_status(t.status),
            )
            for t in result.tasks
            if t.status != "PENDING"
        },
        done=result.status in ("COMPLETED", "FAILED", "CANCELLED"),
    )
