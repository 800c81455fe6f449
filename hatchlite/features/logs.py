"""`hatchet.logs`: the log lines of a task run (`ctx.log` and the `logging` records the
task emitted while it ran)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hatchlite.exceptions import RunNotFoundError
from hatchlite.features import summaries as views
from hatchlite.models import V1LogLineList
from hatchlite.scheduler.runtime import RUNTIME

if TYPE_CHECKING:
    from hatchlite.client import Hatchet

DEFAULT_LIMIT = 1000


def _epoch(value: datetime | None, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class LogsClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    async def _list(
        self, task_run_id: str, limit: int, since: float | None, until: float | None
    ) -> V1LogLineList:
        engine = self._client._engine
        await engine.ensure_started()
        if await engine.store.task_bundle(task_run_id) is None:
            raise RunNotFoundError(f"no task run with id {task_run_id!r}")
        records = await engine.store.logs(task_run_id, limit, since, until)
        return V1LogLineList(
            rows=[views.log_line(r) for r in records],
            pagination=views.pagination(0, limit, len(records)),
        )

    def _args(
        self, limit: int, since: datetime | None, until: datetime | None
    ) -> tuple[int, float | None, float | None]:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        start, end = _epoch(since, "since"), _epoch(until, "until")
        if start is not None and end is not None and start > end:
            raise ValueError("since is after until")
        return limit, start, end

    def list(
        self,
        task_run_id: str,
        limit: int = DEFAULT_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> V1LogLineList:
        """Log lines of a task run, oldest first, with level, attempt and time."""
        return RUNTIME.call(self._list, task_run_id, *self._args(limit, since, until))

    async def aio_list(
        self,
        task_run_id: str,
        limit: int = DEFAULT_LIMIT,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> V1LogLineList:
        return await RUNTIME.acall(self._list, task_run_id, *self._args(limit, since, until))
