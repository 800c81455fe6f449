"""`hatchet.rate_limits`: create and change static rate limits, list every limit (static
and dynamic) with what is left of its window, and pause one."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hatchlite.exceptions import HatchliteError
from hatchlite.limits import WINDOWS
from hatchlite.models import (
    RateLimit,
    RateLimitOrderByDirection,
    RateLimitOrderByField,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.rate_limits import RateLimitRecord
from hatchlite.types import RateLimitDuration

if TYPE_CHECKING:
    from hatchlite.client import Hatchet

_WINDOW_NAMES = {seconds: duration.value.lower() for duration, seconds in WINDOWS.items()}


class RateLimitNotFoundError(HatchliteError, LookupError):
    """No rate limit has the given key."""


def as_timestamp(when: datetime) -> float:
    """An instant as epoch seconds; a naive datetime is UTC (as in Hatchet)."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _window(seconds: float) -> str:
    name = _WINDOW_NAMES.get(seconds)
    return f"1 {name}" if name else f"{seconds:g} seconds"


class RateLimitsClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    def _row(self, record: RateLimitRecord) -> RateLimit:
        return RateLimit(
            key=record.key,
            tenant_id=self._client.tenant_id,
            limit_value=record.limit_value,
            value=record.value,
            window=_window(record.window_seconds),
            last_refill=datetime.fromtimestamp(record.last_refill, UTC),
        )

    async def _put(self, key: str, limit: int, duration: RateLimitDuration) -> None:
        if not key:
            raise ValueError("a rate limit needs a key")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit < 2**63:
            raise ValueError(f"rate limit {key!r}: limit must be a positive int, got {limit!r}")
        window = WINDOWS[RateLimitDuration(duration)]
        engine = self._client._engine
        await engine.ensure_started()
        await engine.store.rate_limit_put(key, limit, window, engine.clock.time())
        engine.wake()  # a larger limit may let parked task runs go

    async def _list(
        self,
        offset: int | None,
        limit: int | None,
        search: str | None,
        order_by_field: RateLimitOrderByField | None,
        order_by_direction: RateLimitOrderByDirection | None,
    ) -> builtins.list[RateLimit]:
        engine = self._client._engine
        await engine.ensure_started()
        field = RateLimitOrderByField(order_by_field or RateLimitOrderByField.KEY)
        direction = RateLimitOrderByDirection(order_by_direction or RateLimitOrderByDirection.ASC)
        records, _ = await engine.store.rate_limits(
            search,
            field.value,
            direction is RateLimitOrderByDirection.DESC,
            offset or 0,
            limit,
            engine.clock.time(),
        )
        return [self._row(r) for r in records]

    async def _pause(self, key: str, until: datetime) -> datetime:
        engine = self._client._engine
        await engine.ensure_started()
        end = await engine.store.rate_limit_pause(key, as_timestamp(until))
        if end is None:
            raise RateLimitNotFoundError(f"no rate limit with key {key!r}")
        return datetime.fromtimestamp(end, UTC)

    def put(
        self, key: str, limit: int, duration: RateLimitDuration = RateLimitDuration.SECOND
    ) -> None:
        """Create or change the static limit `key`: `limit` units per `duration`."""
        RUNTIME.call(self._put, key, limit, duration)

    async def aio_put(
        self, key: str, limit: int, duration: RateLimitDuration = RateLimitDuration.SECOND
    ) -> None:
        await RUNTIME.acall(self._put, key, limit, duration)

    def list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        search: str | None = None,
        order_by_field: RateLimitOrderByField | None = None,
        order_by_direction: RateLimitOrderByDirection | None = None,
    ) -> builtins.list[RateLimit]:
        """Every rate limit (static, and dynamic ones tasks created), with the units
        left in its current window (a list, as Hatchet's SDK returns)."""
        return RUNTIME.call(self._list, offset, limit, search, order_by_field, order_by_direction)

    async def aio_list(
        self,
        offset: int | None = None,
        limit: int | None = None,
        search: str | None = None,
        order_by_field: RateLimitOrderByField | None = None,
        order_by_direction: RateLimitOrderByDirection | None = None,
    ) -> builtins.list[RateLimit]:
        return await RUNTIME.acall(
            self._list, offset, limit, search, order_by_field, order_by_direction
        )

    def pause(self, key: str, until: datetime) -> datetime:
        """Give no units of `key` until `until` (naive: UTC); a pause is never
        shortened. Returns when the pause ends."""
        return RUNTIME.call(self._pause, key, until)

    async def aio_pause(self, key: str, until: datetime) -> datetime:
        return await RUNTIME.acall(self._pause, key, until)
