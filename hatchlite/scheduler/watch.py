"""Callers waiting for runs to end: one future per call, however many runs it waits for.

`run_many` of 20,000 runs used to make 20,000 futures, each with a done callback, and
gather them: objects the garbage collector had to walk again and again while the runs
ran. A `RunWatch` is one future and one list, filled in as results arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from hatchlite.store import RunResult

__all__ = ["RunWatch", "Watches"]


class RunWatch:
    """The results of `run_ids`, in that order (an id may repeat), once all have ended."""

    __slots__ = ("_places", "_results", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, run_ids: list[str]) -> None:
        self.future: asyncio.Future[list[RunResult]] = loop.create_future()
        self._results: list[RunResult | None] = [None] * len(run_ids)
        self._places: dict[str, list[int]] = {}  # the runs still to end
        for place, run_id in enumerate(run_ids):
            self._places.setdefault(run_id, []).append(place)

    @property
    def pending(self) -> Iterable[str]:
        return self._places.keys()

    def deliver(self, run_id: str, result: RunResult) -> None:
        places = self._places.pop(run_id, None)
        if places is None or self.future.done():
            return
        for place in places:
            self._results[place] = result
        if not self._places:
            self.future.set_result(self._results)  # type: ignore[arg-type]  # all filled

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class Watches:
    """Every `RunWatch` of an engine, by the runs it still waits for."""

    def __init__(self) -> None:
        self._by_run: dict[str, list[RunWatch]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_run)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._by_run

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_run)

    def run_ids(self) -> list[str]:
        return list(self._by_run)

    def add(self, loop: asyncio.AbstractEventLoop, run_ids: list[str]) -> RunWatch:
        watch = RunWatch(loop, run_ids)
        for run_id in watch.pending:
            self._by_run.setdefault(run_id, []).append(watch)
        watch.future.add_done_callback(lambda _: self._drop(watch))
        return watch

    def _drop(self, watch: RunWatch) -> None:
        """A watch that ended early (cancelled, failed) stops waiting for the rest."""
        for run_id in list(watch.pending):
            watches = self._by_run.get(run_id)
            if watches is None:
                continue
            if watch in watches:
                watches.remove(watch)
            if not watches:
                del self._by_run[run_id]

    def deliver(self, results: dict[str, RunResult]) -> None:
        by_run = self._by_run
        for run_id, result in results.items():
            watches = by_run.pop(run_id, None)
            if watches is not None:
                for watch in watches:
                    watch.deliver(run_id, result)

    def fail(self, exc: BaseException) -> None:
        for watches in list(self._by_run.values()):
            for watch in watches:
                watch.fail(exc)
