"""Callers' triggers, written by the engine's next step.

A trigger waits for the next step, which writes its runs first in its transaction, each
trigger in a savepoint of its own (`Store._triggers_txn`), and then claims them for the
local workers: one commit and one trip to the database thread fewer between a trigger
and the start of its first task than a job of its own would take. A trigger is written
in a job of its own when the engine's step loop is not running (closing) or its steps
are failing, so that no caller waits for a step that does not come.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from hatchlite.exceptions import EngineClosedError
from hatchlite.store import NewRun, TriggerOutcome, TriggerRequest
from hatchlite.store.records import TickResult

if TYPE_CHECKING:
    from hatchlite.scheduler.engine import Engine

_Pending = tuple[list[NewRun], set[str], "asyncio.Future[TriggerOutcome]"]


class StepTriggers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.failing = False  # the last step failed: write triggers on their own
        self._pending: list[_Pending] = []
        self._alone: set[asyncio.Task[None]] = set()

    async def submit(self, runs: list[NewRun], unchecked: set[str]) -> TriggerOutcome:
        """Write `runs` (`unchecked`: workflows to look for a live worker of)."""
        engine = self.engine
        main = engine._main
        if main is None or main.done() or self.failing:
            return await self._write(runs, unchecked)
        assert engine.loop is not None
        future: asyncio.Future[TriggerOutcome] = engine.loop.create_future()
        self._pending.append((runs, unchecked, future))
        engine.wake()
        return await future  # `done` does the rest

    def take(self) -> tuple[list[_Pending], list[TriggerRequest]]:
        """The triggers for this step: to hand to `done`, and to the store."""
        taken, self._pending = self._pending, []
        return taken, [(runs, unchecked) for runs, unchecked, _ in taken]

    def done(self, taken: list[_Pending], tick: asyncio.Future[TickResult]) -> None:
        """The step's job ended: each trigger it took gets its outcome (or the error
        that rolled the job back), whether or not its caller still waits."""
        if tick.cancelled():
            error: BaseException | None = EngineClosedError(
                f"the engine for {self.engine.path} stopped during a trigger"
            )
        else:
            error = tick.exception()
        for n, (*_, future) in enumerate(taken):
            outcome = error if error is not None else tick.result().triggered[n]
            if not isinstance(outcome, BaseException):
                self.engine._after_trigger(outcome, claimed=True)
            if future.done():
                continue  # the caller gave up waiting
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def step_failed(self) -> None:
        """A step failed: triggers it did not take are written on their own, as new ones
        are until a step succeeds."""
        self.failing = True
        untaken, self._pending = self._pending, []
        for runs, unchecked, future in untaken:
            self._write_for(runs, unchecked, future)

    async def _write(self, runs: list[NewRun], unchecked: set[str]) -> TriggerOutcome:
        """A trigger in a job of its own."""
        engine = self.engine
        outcome = await engine.store.trigger(
            runs, engine.clock.time(), check_served=unchecked, wall=time.time()
        )
        engine._after_trigger(outcome)
        return outcome

    def _write_for(
        self, runs: list[NewRun], unchecked: set[str], future: asyncio.Future[TriggerOutcome]
    ) -> None:
        async def write() -> None:
            try:
                outcome = await self._write(runs, unchecked)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                return
            if not future.done():
                future.set_result(outcome)

        assert self.engine.loop is not None
        task = self.engine.loop.create_task(write())
        self._alone.add(task)
        task.add_done_callback(self._alone.discard)
