"""`hatchet.workers`: every worker process that served this database, and pausing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from hatchlite.exceptions import HatchliteError
from hatchlite.features.summaries import utc
from hatchlite.models import (
    APIResourceMeta,
    RegisteredWorkflow,
    UpdateWorkerRequest,
    Worker,
    WorkerLabel,
    WorkerList,
    WorkerSlotConfig,
    WorkerType,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.workers import WorkerRecord

if TYPE_CHECKING:
    from hatchlite.client import Hatchet


class WorkerNotFoundError(HatchliteError, ValueError):
    """No worker has the given id."""


def _worker(record: WorkerRecord, known: dict[str, RegisteredWorkflow]) -> Worker:
    """`known`: the registered workflows by lower-cased name (action ids lower-case it)."""
    status: Literal["ACTIVE", "INACTIVE", "PAUSED"] = record.status  # type: ignore[assignment]
    workflows = sorted({action.split(":", 1)[0] for action in record.actions})
    return Worker(
        metadata=APIResourceMeta(
            id=record.id, created_at=utc(record.started_at), updated_at=utc(record.heartbeat_at)
        ),
        name=record.name,
        type=WorkerType.SELFHOSTED,
        last_heartbeat_at=utc(record.heartbeat_at),
        actions=list(record.actions),
        # A deleted workflow has no id any more: its action name stands in.
        registered_workflows=[
            known.get(name) or RegisteredWorkflow(id=name, name=name) for name in workflows
        ],
        status=status,
        max_runs=record.slots,
        available_runs=record.free_slots,  # at its last heartbeat
        slot_config={
            "default": WorkerSlotConfig(limit=record.slots),
            "durable": WorkerSlotConfig(limit=record.durable_slots),
        },
        labels=[
            WorkerLabel(
                metadata=APIResourceMeta(
                    id=f"{record.id}:{key}",
                    created_at=utc(record.started_at),
                    updated_at=utc(record.started_at),
                ),
                key=key,
                value=str(value),
            )
            for key, value in record.labels.items()
        ],
    )


class WorkersClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def _known(self) -> dict[str, RegisteredWorkflow]:
        records, _ = await self._client._engine.store.workflows(None, None, 0)
        return {r.name.lower(): RegisteredWorkflow(id=r.id, name=r.name) for r in records}

    async def _list(self) -> WorkerList:
        engine = self._client._engine
        await engine.ensure_started()
        known = await self._known()
        return WorkerList(rows=[_worker(r, known) for r in await engine.store.workers(time.time())])

    async def _get(self, worker_id: str) -> Worker:
        engine = self._client._engine
        await engine.ensure_started()
        record = await engine.store.worker(worker_id, time.time())
        if record is None:
            raise WorkerNotFoundError(f"no worker with id {worker_id!r}")
        return _worker(record, await self._known())

    async def _update(self, worker_id: str, opts: UpdateWorkerRequest) -> Worker:
        engine = self._client._engine
        if opts.is_paused is not None and not await engine.pause_worker(worker_id, opts.is_paused):
            raise WorkerNotFoundError(f"no worker with id {worker_id!r}")
        return await self._get(worker_id)

    def list(self) -> WorkerList:
        """Every worker that served this database: running ones (ACTIVE, or PAUSED when
        paused or draining after a stop signal) first, then stopped ones (INACTIVE)."""
        return RUNTIME.call(self._list)

    async def aio_list(self) -> WorkerList:
        return await RUNTIME.acall(self._list)

    def get(self, worker_id: str) -> Worker:
        return RUNTIME.call(self._get, worker_id)

    async def aio_get(self, worker_id: str) -> Worker:
        return await RUNTIME.acall(self._get, worker_id)

    def update(self, worker_id: str, opts: UpdateWorkerRequest) -> Worker:
        """`UpdateWorkerRequest(is_paused=True)` pauses a worker (of any process): it
        takes no new tasks and finishes those it runs."""
        return RUNTIME.call(self._update, worker_id, opts)

    async def aio_update(self, worker_id: str, opts: UpdateWorkerRequest) -> Worker:
        return await RUNTIME.acall(self._update, worker_id, opts)

    def pause(self, worker_id: str) -> Worker:
        return self.update(worker_id, UpdateWorkerRequest(is_paused=True))

    async def aio_pause(self, worker_id: str) -> Worker:
        return await self.aio_update(worker_id, UpdateWorkerRequest(is_paused=True))

    def unpause(self, worker_id: str) -> Worker:
        return self.update(worker_id, UpdateWorkerRequest(is_paused=False))

    async def aio_unpause(self, worker_id: str) -> Worker:
        return await self.aio_update(worker_id, UpdateWorkerRequest(is_paused=False))
