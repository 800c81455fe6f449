"""Helpers for testing workflows: a clock that tests move by hand (`TestClock`), and
`HatchetTest`, one test's own database, clock, client and worker (what the pytest
plugin's `hatchet_test` fixture gives each test).

Workflows are usually defined at import time on the application's module-level
`Hatchet()`. `HatchetTest.bind(hatchet)` (and `serve(...)`, which binds the clients of
the workflows it serves) points that client at the test's database until the test
ends: the workflow objects stay the user's own, and their `run`, `aio_run`, events and
reads go to the test's engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import warnings
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from hatchlite.client import ENGINES, Hatchet
from hatchlite.clock import _LATEST, TestClock
from hatchlite.features.events import Event
from hatchlite.models import V1TaskSummary, V1WorkflowRunDetails
from hatchlite.runnables import BaseWorkflow
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.views import RunQuery
from hatchlite.types import JSONMap
from hatchlite.worker import LifespanFn, Worker, WorkerStatus

__all__ = ["HatchetTest", "TestClock", "redirect"]

T = TypeVar("T")

DEFAULT_MAX_WAIT = 30.0  # real seconds a harness call waits for the engine to go idle
# A worker the harness stops at teardown waits this long (real seconds) for tasks still
# running before they are abandoned: the test is over.
SHUTDOWN_GRACE = 1.0


@contextlib.contextmanager
def redirect(client: Hatchet, to: Hatchet) -> Iterator[None]:
    """Make `client` a client of `to`'s database and engine until the block ends.

    Every workflow defined on `client` (before the block or during it) is defined on
    that engine, and the runs, events and reads of `client` and of its workflows go
    there. For tests of workflows defined on a module-level `Hatchet()`; the redirect
    is visible to every thread, so tests sharing `client` must not run at the same
    time in one process (pytest-xdist runs them in separate processes)."""
    source, target = client._engine, to._engine
    for workflow in list(source.defined.values()):
        if workflow.client is client:
            target.define(workflow)
    saved = client._own_engine, client.db
    client._own_engine, client.db = target, to.db
    # From now on, calls this client makes from inside a task go to that task's own
    # engine: a task thread that outlives its test reaches its closed engine (an
    # EngineClosedError), never the next test's database or the application's.
    client._follows_task_engine = True
    try:
        yield
    finally:
        client._own_engine, client.db = saved


class _IdleReportingClock(TestClock):
    """A `TestClock` that also tells a harness waiting for it when the engine goes idle
    (nothing running, nothing ready), and the deadline it will wait for then."""

    __test__ = False

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = False) -> None:
        super().__init__(start, auto_advance=auto_advance)
        self._reports: list[asyncio.Future[float | None]] = []
        self._reports_lock = threading.Lock()

    def next_idle(self) -> asyncio.Future[float | None]:
        """A future (of the running loop) for the next idle report."""
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        with self._reports_lock:
            self._reports.append(future)
        return future

    def idle(self, next_deadline: float | None) -> None:
        super().idle(next_deadline)  # an auto-advancing clock jumps to it here
        deadline = None if next_deadline is None or next_deadline >= _LATEST else next_deadline
        with self._reports_lock:
            waiting, self._reports = self._reports, []
        for future in waiting:
            future.get_loop().call_soon_threadsafe(_report, future, deadline)


def _report(future: asyncio.Future[float | None], deadline: float | None) -> None:
    if not future.done():
        future.set_result(deadline)


class HatchetTest:
    """One test's own hatchlite: a database (`db`, a file or ":memory:"), a `TestClock`
    (`clock`), a client on both (`client`), the workers it serves with, and the user
    clients bound to it. Close it (or use it as a context manager) to stop its workers,
    close its engine and unbind the clients.

    Every blocking method has an `aio_` twin for async tests; the blocking ones work in
    async tests too (the engine runs on its own thread)."""

    def __init__(
        self, db: str, *, auto_advance: bool = True, start: datetime | None = None
    ) -> None:
        self.db = db
        self._idle_clock = _IdleReportingClock(start, auto_advance=auto_advance)
        self.clock: TestClock = self._idle_clock
        self.client = Hatchet(db=db, clock=self.clock, auto_worker=True)
        self.started_at = self.clock.now()
        self._engine = self.client._engine
        self._bindings = contextlib.ExitStack()
        self._bound: list[Hatchet] = []
        self._serving: list[tuple[Worker, asyncio.Task[None]]] = []
        self._closed = False

    def __enter__(self) -> HatchetTest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers started by `serve`, close the engine, unbind the clients."""
        if self._closed:
            return
        self._closed = True
        try:
            RUNTIME.call(self._stop_workers)
        finally:
            try:
                RUNTIME.call(self._engine.close)
                ENGINES.closed(self._engine)  # the process keeps no closed engine
            finally:
                self._bindings.close()

    # -- binding the application's clients and serving its workflows ---------------

    def bind(self, *targets: Hatchet | BaseWorkflow[Any]) -> None:
        """Point each `Hatchet` client (for a workflow: the client it was defined on) at
        this test's database until the test ends (see `redirect`)."""
        for target in targets:
            client = target.client if isinstance(target, BaseWorkflow) else target
            if not isinstance(client, Hatchet):
                raise TypeError(
                    f"bind() takes Hatchet clients and workflows, got {type(target).__name__}"
                )
            if client is self.client or any(client is bound for bound in self._bound):
                continue
            self._bindings.enter_context(redirect(client, self.client))
            self._bound.append(client)

    def _worker(
        self,
        targets: tuple[Hatchet | BaseWorkflow[Any], ...],
        name: str,
        slots: int | None,
        durable_slots: int | None,
        labels: dict[str, str | int] | None,
        lifespan: LifespanFn | None,
    ) -> Worker:
        if self._closed:
            raise RuntimeError("this HatchetTest is closed")
        self.bind(*targets)
        defined = list(self._engine.defined.values())
        workflows: list[BaseWorkflow[Any]] = [] if targets else defined  # none: all bound
        for target in targets:
            if isinstance(target, BaseWorkflow):
                workflows.append(target)
            else:
                workflows.extend(w for w in defined if w.client is target)
        return self.client.worker(
            name,
            slots=slots,
            durable_slots=durable_slots,
            labels=labels,
            workflows=workflows,
            lifespan=lifespan,
            shutdown_grace=SHUTDOWN_GRACE,
        )

    def serve(
        self,
        *targets: Hatchet | BaseWorkflow[Any],
        name: str = "hatchet-test",
        slots: int | None = None,
        durable_slots: int | None = None,
        labels: dict[str, str | int] | None = None,
        lifespan: LifespanFn | None = None,
    ) -> Worker:
        """Bind the clients of `targets` and start a worker serving them (a `Hatchet`
        target: every workflow defined on it; none: every workflow bound so far); returns
        once the worker takes tasks. It stops when the test ends."""
        worker = self._worker(targets, name, slots, durable_slots, labels, lifespan)
        RUNTIME.call(self._start, worker)
        return worker

    async def aio_serve(
        self,
        *targets: Hatchet | BaseWorkflow[Any],
        name: str = "hatchet-test",
        slots: int | None = None,
        durable_slots: int | None = None,
        labels: dict[str, str | int] | None = None,
        lifespan: LifespanFn | None = None,
    ) -> Worker:
        worker = self._worker(targets, name, slots, durable_slots, labels, lifespan)
        await RUNTIME.acall(self._start, worker)
        return worker

    async def _start(self, worker: Worker) -> None:
        # On the engine loop, in a fresh context (not the test's context variables).
        task = asyncio.get_running_loop().create_task(
            worker.aio_start(), name=f"hatchet-test:{worker.name}", context=contextvars.Context()
        )
        self._serving.append((worker, task))
        while worker.status is not WorkerStatus.HEALTHY:
            if task.done():
                self._serving.remove((worker, task))
                task.result()  # the start's error
                raise RuntimeError(f"worker {worker.name!r} stopped before it started")
            await asyncio.sleep(0.001)

    async def _stop_workers(self) -> None:
        serving, self._serving = self._serving, []
        for worker, _ in serving:
            worker.stop()
        errors = []
        for _, task in serving:
            try:
                await asyncio.wait_for(task, SHUTDOWN_GRACE + 10.0)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # -- time ---------------------------------------------------------------------

    def advance(self, delta: timedelta | float, *, max_wait: float = DEFAULT_MAX_WAIT) -> datetime:
        """Let the engine start what is runnable now, move the clock forward by `delta`
        (a timedelta or seconds), and return once the engine has done what came due (it
        is idle again); returns the clock's now."""
        return RUNTIME.call(self._advance, delta, max_wait)

    async def aio_advance(
        self, delta: timedelta | float, *, max_wait: float = DEFAULT_MAX_WAIT
    ) -> datetime:
        return await RUNTIME.acall(self._advance, delta, max_wait)

    async def _advance(self, delta: timedelta | float, max_wait: float) -> datetime:
        async def advanced() -> None:
            await self._settle()  # what is runnable now starts now, not after the jump
            self.clock.advance(delta)
            await self._settle()

        await self._waiting(advanced(), max_wait)
        return self.clock.now()

    def run_until_idle(self, *, max_wait: float = DEFAULT_MAX_WAIT) -> None:
        """Let the engine finish everything it can: run what is ready and, while some
        workflow run is unfinished, move the clock to the next deadline (a sleep, a
        backoff, a timeout) and go on. Returns when nothing is running or ready and no
        unfinished run waits for a time (a run waiting for an event may remain); raises
        TimeoutError after `max_wait` real seconds. Crons and schedules ahead are not
        waited for (but an auto-advancing clock jumps to them by itself)."""
        RUNTIME.call(self._run_until_idle, max_wait)

    async def aio_run_until_idle(self, *, max_wait: float = DEFAULT_MAX_WAIT) -> None:
        await RUNTIME.acall(self._run_until_idle, max_wait)

    async def _run_until_idle(self, max_wait: float) -> None:
        async def until_idle() -> None:
            while True:
                deadline = await self._settle()
                if deadline is None or not await self._unfinished():
                    return
                if deadline > self.clock.time():  # a manual clock: move it here
                    self.clock.set(datetime.fromtimestamp(deadline, UTC))

        await self._waiting(until_idle(), max_wait)

    async def _settle(self) -> float | None:
        """Wait (on the engine loop) until the engine has stepped since now and is idle;
        returns the deadline it then waits for (None: none)."""
        await self._engine.ensure_started()
        report = self._idle_clock.next_idle()
        self._engine.wake()  # a step after this call, then an idle report
        return await report

    async def _unfinished(self) -> bool:
        """Whether a workflow run of this database is queued or running."""
        bundle = await self._engine.store.run_page(
            RunQuery(since=0.0, statuses=["QUEUED", "RUNNING"], limit=1)
        )
        return bool(bundle.page.runs)

    async def _waiting(self, work: Awaitable[T], max_wait: float) -> T:
        try:
            async with asyncio.timeout(max_wait):
                return await work
        except TimeoutError:
            raise TimeoutError(
                f"the hatchlite engine of {self.db} was still busy after {max_wait} s of real "
                f"time (a task that does not end, or crons an auto-advancing clock keeps "
                f"jumping to?)"
            ) from None

    # -- events and inspection ------------------------------------------------------

    def push_event(
        self,
        event_key: str,
        payload: JSONMap | None = None,
        *,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        scope: str | None = None,
    ) -> Event:
        """`hatchet.event.push` on this test's database (with no namespace: push
        through a bound client, `hatchet.event.push`, to apply its namespace)."""
        return self.client.event.push(
            event_key,
            payload or {},
            additional_metadata=additional_metadata,
            priority=priority,
            scope=scope,
        )

    async def aio_push_event(
        self,
        event_key: str,
        payload: JSONMap | None = None,
        *,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        scope: str | None = None,
    ) -> Event:
        return await self.client.event.aio_push(
            event_key,
            payload or {},
            additional_metadata=additional_metadata,
            priority=priority,
            scope=scope,
        )

    def runs(self, **filters: Any) -> list[V1TaskSummary]:
        """The workflow runs of this test, newest first: `hatchet.runs.list(...).rows`
        with `since` the test's start and up to 1,000 rows, unless `filters` say
        otherwise (they are `runs.list`'s)."""
        with _long_range_ok():
            return self.client.runs.list(**self._filters(filters)).rows

    async def aio_runs(self, **filters: Any) -> list[V1TaskSummary]:
        with _long_range_ok():
            page = await self.client.runs.aio_list(**self._filters(filters))
        return page.rows

    def _filters(self, filters: dict[str, Any]) -> dict[str, Any]:
        return {"since": self.started_at, "limit": 1000, **filters}

    def get(self, workflow_run_id: str) -> V1WorkflowRunDetails:
        """`hatchet.runs.get`: the run, its task runs and their events."""
        return self.client.runs.get(workflow_run_id)

    async def aio_get(self, workflow_run_id: str) -> V1WorkflowRunDetails:
        return await self.client.runs.aio_get(workflow_run_id)


@contextlib.contextmanager
def _long_range_ok() -> Iterator[None]:
    """A test's clock may pass a week; listing its runs is not slow for that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "listing runs over more than 7 days", RuntimeWarning)
        yield
