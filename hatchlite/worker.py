"""`Worker`: serves the workflows it was given on a pool of slots.

`start()` blocks until SIGINT/SIGTERM (or `stop()`), then stops taking tasks, waits
for running ones (up to `shutdown_grace` seconds), runs the lifespan teardown and
returns. A second signal exits at once; tasks left running are re-queued by the
next worker (their lease lapses).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from enum import Enum
from types import FrameType
from typing import TYPE_CHECKING, Any

from hatchlite.exceptions import LifespanSetupError, LoopAlreadyRunningError
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.scheduler.workers import DEFAULT_DURABLE_SLOTS, DEFAULT_SLOTS, LocalWorker

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.runnables import BaseWorkflow

logger = logging.getLogger("hatchlite")

LifespanFn = Callable[[], AsyncGenerator[Any, Any]]


class WorkerStatus(Enum):
    INITIALIZED = 1
    STARTING = 2
    HEALTHY = 3
    UNHEALTHY = 4


@dataclass
class WorkerStartOptions:
    loop: asyncio.AbstractEventLoop | None = None


class Worker:
    def __init__(
        self,
        name: str,
        client: Hatchet,
        *,
        slots: int | None = None,
        durable_slots: int | None = None,
        labels: dict[str, str | int] | None = None,
        workflows: list[BaseWorkflow[Any]] | None = None,
        lifespan: LifespanFn | None = None,
        shutdown_grace: float | None = 60.0,
    ) -> None:
        from hatchlite.runnables import BaseWorkflow

        self.name = name
        self._client = client
        self._slots = slots
        self._durable_slots = durable_slots
        self.labels = _checked_labels(name, labels or {})
        self._lifespan = lifespan
        self.shutdown_grace = shutdown_grace
        self._workflows: list[BaseWorkflow[Any]] = []
        for wf in workflows or []:
            if not isinstance(wf, BaseWorkflow):
                raise TypeError(
                    f"worker {name!r}: workflows must be Workflow or Standalone objects, "
                    f"got {type(wf).__name__}"
                )
            self.register_workflow(wf)
        self._status = WorkerStatus.INITIALIZED
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._signals = 0
        self._local: LocalWorker | None = None

    # -- registration -----------------------------------------------------------

    def register_workflow(self, workflow: BaseWorkflow[Any]) -> None:
        if not workflow.tasks:
            raise ValueError(
                f"failed to register workflow: {workflow.name}. Workflows must have at least "
                f"one task registered before registering"
            )
        workflow.shape()  # validate now
        if workflow not in self._workflows:
            self._workflows.append(workflow)

    def register_workflows(self, workflows: list[BaseWorkflow[Any]]) -> None:
        for workflow in workflows:
            self.register_workflow(workflow)

    @property
    def workflows(self) -> list[BaseWorkflow[Any]]:
        return list(self._workflows)

    @property
    def status(self) -> WorkerStatus:
        return self._status

    @property
    def id(self) -> str | None:
        return self._local.id if self._local else None

    def _slot_counts(self) -> tuple[int, int]:
        tasks = [t for wf in self._workflows for t in wf.all_tasks]
        slots = self._slots
        if slots is None:
            slots = DEFAULT_SLOTS if any(not t.is_durable for t in tasks) else 0
        durable = self._durable_slots
        if durable is None:
            durable = DEFAULT_DURABLE_SLOTS if any(t.is_durable for t in tasks) else 0
        return slots, durable

    # -- running -----------------------------------------------------------------

    def start(self, options: WorkerStartOptions | None = None) -> None:
        """Serve until SIGINT/SIGTERM or `stop()`; blocks the calling thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise LoopAlreadyRunningError(
                "worker.start() blocks and cannot run inside an event loop; "
                "use `await worker.aio_start()` there"
            )
        self._check_startable()
        previous = self._install_signal_handlers()
        try:
            # Wait in short slices: a signal delivered to another thread only sets a flag,
            # and the main thread runs Python's handler when it next wakes up.
            future = RUNTIME.submit(self._serve)
            while True:
                try:
                    future.result(timeout=0.5)
                    break
                except concurrent.futures.TimeoutError:
                    continue
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    async def aio_start(self, options: WorkerStartOptions | None = None) -> None:
        """Serve until `stop()` (or the awaiting task is cancelled)."""
        self._check_startable()
        try:
            await RUNTIME.acall(self._serve)
        except asyncio.CancelledError:
            self.stop()
            raise

    async_start = aio_start

    def stop(self) -> None:
        """Ask the worker to shut down gracefully; safe from any thread."""
        self._stop_requested = True
        stop = self._stop
        if stop is not None:
            self._client._engine.threadsafe(stop.set)

    async def exit_gracefully(self) -> None:
        self.stop()

    def _check_startable(self) -> None:
        if not self._workflows:
            raise ValueError("no actions registered, register workflows before starting worker")

    async def _serve(self) -> None:
        engine = self._client._engine
        self._status = WorkerStatus.STARTING
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        slots, durable = self._slot_counts()
        local = LocalWorker(self.name, self._workflows, slots, durable, self.labels)
        self._local = local
        stack = contextlib.AsyncExitStack()
        added = False
        try:
            if self._lifespan is not None:
                local.lifespan_value = await self._enter_lifespan(stack)
            await engine.add_worker(local)  # opens the database (its errors end the start)
            added = True
            self._status = WorkerStatus.HEALTHY
            logger.info(
                "worker %s started: %d slots, %d durable slots, workflows %s",
                self.name,
                slots,
                durable,
                [wf.name for wf in self._workflows],
            )
            await self._stop.wait()
            logger.info("worker %s stopping", self.name)
        finally:
            try:
                if added:
                    await engine.remove_worker(local, self.shutdown_grace)
            finally:
                self._status = WorkerStatus.UNHEALTHY
                try:
                    await stack.aclose()
                except Exception as exc:
                    raise LifespanSetupError("An error occurred during lifespan cleanup") from exc

    async def _enter_lifespan(self, stack: contextlib.AsyncExitStack) -> Any:
        assert self._lifespan is not None
        gen = self._lifespan()
        try:
            value = await gen.__anext__()
        except StopAsyncIteration:
            return None
        except Exception as exc:
            raise LifespanSetupError("An error occurred during lifespan setup") from exc

        async def finish() -> None:
            with contextlib.suppress(StopAsyncIteration):
                await gen.__anext__()

        stack.push_async_callback(finish)
        return value

    # -- signals -----------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1 or self._client.config.force_shutdown_on_shutdown_signal:
            logger.warning("worker %s: second signal, exiting now", self.name)
            os._exit(1)
        logger.info("worker %s: got %s, draining", self.name, signal.Signals(signum).name)
        self.stop()


def _checked_labels(worker: str, labels: dict[str, str | int]) -> dict[str, str | int]:
    """A worker's labels: str keys, str or int values (as Hatchet's `WorkerLabel`)."""
    out: dict[str, str | int] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(
                f"worker {worker!r}: labels map str keys to str or int values, got "
                f"{key!r}: {value!r}"
            )
        out[key] = value
    return out
