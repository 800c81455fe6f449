"""The few Hatchet REST API calls that Hatchet's own examples make where its SDK has no
feature client method, served by hatchlite's clients: `with hatchet.runs.client() as
client: TaskApi(client).v1_task_restore(task=...)` restores an evicted durable task.
Hatchet's other REST API classes are not here (`hatchet_sdk.clients.rest.api` imports
of them say so)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.models import V1RestoreTaskResponse


class RestClient:
    """What `hatchet.runs.client()` gives: a context manager the REST API classes take."""

    def __init__(self, hatchet: Hatchet) -> None:
        self.hatchet = hatchet

    def __enter__(self) -> RestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class TaskApi:
    """Hatchet's `TaskApi`, for the calls its examples make."""

    def __init__(self, api_client: RestClient) -> None:
        if not isinstance(api_client, RestClient):
            raise TypeError("TaskApi takes the client of `with hatchet.runs.client() as client`")
        self.api_client = api_client

    def v1_task_restore(self, task: str) -> V1RestoreTaskResponse:
        """Restore an evicted durable task (`hatchet.runs.restore_task`)."""
        return self.api_client.hatchet.runs.restore_task(task)

    async def aio_v1_task_restore(self, task: str) -> V1RestoreTaskResponse:
        return await self.api_client.hatchet.runs.aio_restore_task(task)
