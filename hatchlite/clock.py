"""The one object that reads the time.

Every deadline (backoff, timeouts, durable sleeps, crons, schedules) is an absolute
UTC instant stored as epoch seconds and compared with `clock.time()`. The engine asks
the clock how long to wait in real seconds; a test clock answers "until I move", and
moves when a test advances it (or by itself when the engine is idle, if asked to).
"""

from __future__ import annotations

import threading
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """The wall clock."""

    def time(self) -> float:
        """Now, as epoch seconds."""
        return _time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def real_delay(self, deadline: float) -> float | None:
        """Real seconds to wait for `deadline` to pass; None means wait until woken."""
        return max(0.0, deadline - self.time())

    def subscribe(self, callback: Callable[[], None]) -> None:
        """`callback` is called (from any thread) whenever the time jumps."""

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        pass

    def idle(self, next_deadline: float | None) -> None:
        """The engine has nothing to do until `next_deadline`."""


SYSTEM_CLOCK = Clock()
# A deadline this far out means "never": a test clock does not jump to it.
_LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


class TestClock(Clock):
    """A clock that moves only when told to: `advance()`, `set()`, or, with
    `auto_advance=True`, by jumping to the next deadline whenever the engine is idle.

    Pass it as `Hatchet(clock=TestClock())`; sleeps, backoffs and timeouts of any
    length then take no real time.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = False) -> None:
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("TestClock start must be timezone-aware")
        self._now = start.timestamp()
        self.auto_advance = auto_advance
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        return self._now

    def real_delay(self, deadline: float) -> float | None:
        return 0.0 if deadline <= self._now else None

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by `delta` (a timedelta or seconds) and return the new now."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("a TestClock only moves forward")
        with self._lock:
            self._now += seconds
        self._notify()
        return self.now()

    def set(self, when: datetime) -> None:
        """Move the clock to `when` (not backwards)."""
        if when.tzinfo is None:
            raise ValueError("TestClock.set needs a timezone-aware datetime")
        with self._lock:
            if when.timestamp() < self._now:
                raise ValueError("a TestClock only moves forward")
            self._now = when.timestamp()
        self._notify()

    def subscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def idle(self, next_deadline: float | None) -> None:
        if not self.auto_advance or next_deadline is None or next_deadline >= _LATEST:
            return
        with self._lock:
            if next_deadline <= self._now:
                return
            self._now = next_deadline
        self._notify()

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()
