"""The engine: one per database per process. Its loop is a step function — wait for
work, then `_tick`: one store transaction that records finished attempts, expires
deadlines and claims ready tasks for the local workers — and starts what it claimed.

The database is the truth; this object only caches what is running here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hatchlite.clock import Clock
from hatchlite.dag import check_priority
from hatchlite.dag.registry import Definitions
from hatchlite.exceptions import (
    DatabaseError,
    EngineClosedError,
    IdempotencyCollisionError,
    PayloadTooLargeError,
    RunNotFoundError,
)
from hatchlite.ids import new_id
from hatchlite.limits import key_run
from hatchlite.scheduler import capture
from hatchlite.scheduler.deadlines import Deadlines
from hatchlite.scheduler.eviction import Evictor
from hatchlite.scheduler.execution import BatchExecution, Execution
from hatchlite.scheduler.triggering import StepTriggers
from hatchlite.scheduler.waits import DurableWaits
from hatchlite.scheduler.watch import Watches
from hatchlite.scheduler.workers import DEFAULT_DURABLE_SLOTS, DEFAULT_SLOTS, LocalWorker
from hatchlite.store import (
    ConditionSpec,
    EventIn,
    LogLine,
    NewRun,
    Outcome,
    PushResult,
    RunResult,
    Store,
    TriggerOutcome,
    TriggerResult,
    WorkerRow,
)
from hatchlite.store.durable import HistoryRow
from hatchlite.store.records import TERMINAL, ClaimedTask, shape_to_json
from hatchlite.store.shapes import shape_hash
from hatchlite.store.streams import Chunk, ChunkIn
from hatchlite.types import JSONMap

if TYPE_CHECKING:
    from hatchlite.runnables import BaseWorkflow

logger = logging.getLogger("hatchlite")

# Seconds between checks for other processes' commits: within ACTIVE_WINDOW seconds of
# activity, then until IDLE_WINDOW, then after (a service idle for long polls least).
POLL_ACTIVE = 0.001
POLL_IDLE = 0.01
POLL_ASLEEP = 0.05
ACTIVE_WINDOW = 1.0
IDLE_WINDOW = 30.0
# Worker leases (real seconds): renewed every HEARTBEAT; workers on another host whose
# lease lapsed are gone. On this host a worker is gone when its process is.
LEASE = 30.0
HEARTBEAT = 1.0
# Attempt outcomes written per step (the rest wait for the next step, right after).
OUTCOMES_PER_STEP = 2000


class Engine:
    def __init__(self, path: str, *, clock: Clock, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.clock = clock
        self.store = Store(path, synchronous=synchronous)
        self.defined: Definitions[BaseWorkflow[Any]] = Definitions()
        self.workers: list[LocalWorker] = []
        self.implicit_worker: LocalWorker | None = None
        self.explicit_worker_started = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False
        self._start_lock: asyncio.Lock | None = None
        self._outcomes: list[Outcome] = []
        self._logs: list[LogLine] = []
        self._chunks: list[ChunkIn] = []
        # Set after every step that may have changed what readers see (stream chunks,
        # runs ending) and when another process commits: stream subscribers wait on it.
        self._listeners: set[asyncio.Event] = set()
        self._executions: dict[str, Execution] = {}
        self._timeouts = Deadlines(self._executions, lambda e, at: e.timeout_at == at)
        self._waiters = Watches()  # callers waiting for runs to end
        self.triggers = StepTriggers(self)  # callers' triggers, for the next step
        self.waits = DurableWaits(self)  # durable tasks waiting here
        self.evictor = Evictor(self)
        self._store_deadline: float | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._external = False  # another process committed since the last step
        self._last_activity = 0.0
        self._registered: dict[str, object] = {}
        self._warned_unserved: set[str] = set()
        self._deleted: set[str] = set()  # deleted through the workflows API, by name
        self._defined_registered: object = None  # definitions version last registered
        self._actions_written: dict[str, list[str]] = {}  # worker id -> action ids
        self._free_written: dict[str, tuple[int, int]] = {}  # worker id -> free slots
        self._fired: tuple[object, frozenset[str]] = (None, frozenset())  # see _fire_for
        self._fired_at: float | None = None  # the clock at the last step that fired

    # -- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def ensure_started(self) -> None:
        if self._closed:
            raise EngineClosedError(f"the engine for {self.path} was closed")
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            self.loop = asyncio.get_running_loop()
            await self.loop.run_in_executor(None, self.store.open)
            self._wake = asyncio.Event()
            self.store.db.on_external_change = lambda: self.threadsafe(self._external_change)
            self.clock.subscribe(self.wake_threadsafe)
            # A fresh context: the engine's tasks must not inherit the first caller's
            # context variables (a task's `current_context` among them).
            self._main = self.loop.create_task(
                self._run(), name=f"hatchlite-engine:{self.path}", context=contextvars.Context()
            )
            self._started = True

    async def close(self) -> None:
        """Stop workers, write what finished, and close the database."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        for worker in list(self.workers):
            worker.accepting = False
        for execution in list(self._executions.values()):
            execution.stop()
        for execution in list(self._executions.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(execution.wait(), 1.0)
        for task in (self._main, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self._step(external=False, claim=False)
        self.clock.unsubscribe(self.wake_threadsafe)
        for worker in self.workers:
            worker.executor.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(Exception):
                await self.store.release_worker(worker.id, self.clock.time())
        self._fail_waiters(EngineClosedError(f"engine for {self.path} closed"))
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    def _external_change(self) -> None:
        self._notify_listeners()
        self._external = True
        self._last_activity = time.monotonic()
        self.wake()

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def wake_threadsafe(self) -> None:
        self.threadsafe(self.wake)

    def threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` on the engine loop, from whichever thread we are on."""
        loop = self.loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    # -- definitions and workers -------------------------------------------------

    def define(self, workflow: BaseWorkflow[Any]) -> None:
        """Add a definition of this process; a second, different definition under a
        taken name raises `InvalidDefinitionError`."""
        self.defined.define(workflow)

    async def register(self, workflows: Iterable[BaseWorkflow[Any]]) -> None:
        """Write the shapes of `workflows` to the database (once per change)."""
        items = []
        for wf in workflows:
            shape = wf.shape()
            if self._registered.get(wf.name) is not shape:
                items.append((shape, wf.config.description, wf.config.version))
                if wf.name not in self.defined:
                    self.define(wf)
        if items:
            await self.store.register_workflows(items, self.clock.time())
            for shape, _, _ in items:
                self._registered[shape.name] = shape
                self._deleted.discard(shape.name)

    async def register_defined(self) -> None:
        """Register every workflow this process defines (as a worker start would), but
        not those deleted through this engine since (`workflows.list` must not bring
        them back; triggering, serving or reading `wf.id` does)."""
        version = (self.defined.version, len(self._deleted))
        if version == self._defined_registered:
            return
        await self.register([wf for wf in self.defined.values() if wf.name not in self._deleted])
        self._defined_registered = version

    async def add_worker(self, worker: LocalWorker) -> None:
        await self.ensure_started()
        capture.install()
        if worker.workflows is not None:
            for wf in worker.workflows:
                self.define(wf)
            await self.register(worker.workflows)
            self.explicit_worker_started = True
            if self.implicit_worker is not None and self.implicit_worker.accepting:
                self.implicit_worker.accepting = False
                # Shown as draining: routing does not leave tasks to it any more.
                with contextlib.suppress(Exception):
                    await self.store.mark_draining(self.implicit_worker.id)
        else:
            await self.register_defined()  # the implicit worker serves them all
        actions = worker.action_ids(self.defined)
        self._actions_written[worker.id] = actions
        row = WorkerRow(
            worker.id, worker.name, worker.slots, worker.durable_slots, actions, worker.labels
        )
        await self.store.register_worker(row, self.clock.time(), time.time(), LEASE)
        self.workers.append(worker)
        await self._report_other_versions(worker)
        if self._heartbeat is None:
            assert self.loop is not None
            self._heartbeat = self.loop.create_task(
                self._beat(), name="hatchlite-heartbeat", context=contextvars.Context()
            )
        self.wake()

    async def _report_other_versions(self, worker: LocalWorker) -> None:
        """Log the in-flight runs of the worker's workflows that were created with
        another version of their definition: they finish with their own shape."""
        if worker.implicit:
            return
        hashes = {
            wf.name: shape_hash(shape_to_json(wf.shape()))
            for name in worker.served(self.defined)
            if (wf := self.defined.get(name)) is not None
        }
        try:
            found = await self.store.other_versions(hashes)
        except Exception:  # a report, not a reason to refuse the worker
            logger.exception("hatchlite could not look for runs of older definitions")
            return
        for name, (count, run_ids) in found.items():
            shown = ", ".join(run_ids) + (", ..." if count > len(run_ids) else "")
            logger.warning(
                "%d in-flight run(s) of workflow %s were created with another version of "
                "its definition (%s); they finish with the tasks and parents they were "
                "created with, and a task no running worker has code for fails with the "
                "reason. To stop one: hatchet.runs.cancel(run_id); to run its input "
                "with the new definition, trigger a new run",
                count,
                name,
                shown,
            )

    async def remove_worker(self, worker: LocalWorker, grace: float | None = None) -> None:
        """Stop taking tasks on `worker`; wait for its running tasks (up to `grace` s)."""
        worker.accepting = False
        with contextlib.suppress(Exception):  # shown as PAUSED while it drains
            await self.store.mark_draining(worker.id)
        # Waiting durable tasks leave at once: restored when their waits are over.
        with contextlib.suppress(Exception):
            await self.evictor.evict(self.evictor.for_shutdown(worker))
        for execution in list(worker.running.values()):
            if execution.suspended:
                execution.stop()  # not evicted (a database error): its worker's release
        running = [e.wait() for e in worker.running.values()]
        if running:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(r) for r in running], timeout=grace
            )
            for execution in list(worker.running.values()):
                execution.stop()  # past the grace period: back to the queue
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if worker in self.workers:
            self.workers.remove(worker)
        worker.executor.shutdown(wait=False, cancel_futures=True)
        await self.flush()
        requeued = await self.store.release_worker(worker.id, self.clock.time())
        if requeued:
            logger.warning(
                "worker %s stopped with %d task runs unfinished; they were re-queued",
                worker.name,
                requeued,
            )
        self.wake()

    async def ensure_implicit_worker(self) -> None:
        """The script case: a process that triggers but started no worker runs its own."""
        if self.explicit_worker_started or self.implicit_worker is not None:
            return
        worker = LocalWorker("hatchlite-implicit", None, DEFAULT_SLOTS, DEFAULT_DURABLE_SLOTS)
        self.implicit_worker = worker
        await self.add_worker(worker)

    # -- runs ----------------------------------------------------------------------

    async def trigger(
        self, workflows: list[BaseWorkflow[Any]], runs: list[NewRun]
    ) -> list[TriggerResult]:
        await self.ensure_started()
        await self.register(workflows)
        unchecked = {run.workflow_name for run in runs} - self._served_here()
        return (await self.triggers.submit(runs, unchecked)).results

    def _after_trigger(self, outcome: TriggerOutcome, *, claimed: bool = False) -> None:
        """What a trigger's transaction did beyond creating runs: runs it ended at once,
        running tasks a concurrency limit cancelled, workflows no worker serves. Unless
        a step wrote it and `claimed` what it could, a step is due to claim the runs."""
        if self._closed:
            return
        if outcome.finished_runs:
            self._deliver_later(list(outcome.finished_runs))
        self._abort_local(outcome.cancelled_running)
        self._warn_unserved(outcome.unserved, "was triggered")
        self._last_activity = time.monotonic()
        if not claimed:
            self.wake()

    async def _sync_running(self) -> None:
        """Stop executions here whose task runs were cancelled in the store by a step
        that did not report them (a limit admitting a waiter while workers were
        released)."""
        if self._executions:
            with contextlib.suppress(Exception):
                self._abort_local(await self.store.cancelled_among(list(self._executions)))

    def _abort_local(self, task_ids: list[str]) -> None:
        """Stop the executions here of task runs cancelled in the store."""
        for task_id in task_ids:
            execution = self._executions.get(task_id)
            if execution is not None:
                execution.abort_task(task_id)

    def _warn_unserved(self, unserved: set[str], how: str) -> None:
        for name in sorted(unserved - self._warned_unserved):
            self._warned_unserved.add(name)
            logger.warning(
                "workflow %s %s, but no running worker on %s serves it: its runs stay "
                "queued until a worker that serves it starts",
                name,
                how,
                self.path,
            )

    def _served_here(self) -> set[str]:
        """Workflows a worker of this process takes tasks of."""
        served: set[str] = set()
        for worker in self.workers:
            if worker.accepting:
                served.update(worker.served(self.defined))
        return served

    def _fire_for(self) -> frozenset[str]:
        """The workflows whose crons and schedules this process fires: those its
        workers serve (cached until the definitions or the workers change)."""
        key = (self.defined.version, tuple((w.id, w.accepting) for w in self.workers))
        if self._fired[0] != key:
            self._fired = (key, frozenset(self._served_here()))
        return self._fired[1]

    def watch(self, run_ids: list[str]) -> asyncio.Future[list[RunResult]]:
        """A future that resolves with the runs' results (in order) when all have ended."""
        assert self.loop is not None
        if not self._waiters:
            self.wake()  # the loop starts polling for other processes' commits
        return self._waiters.add(self.loop, run_ids).future

    async def wait_existing(self, run_ids: list[str]) -> list[RunResult]:
        """Wait for runs that may already have ended (ids from earlier triggers)."""
        await self.ensure_started()
        watch = self.watch(run_ids)
        known = await self.store.results(list(dict.fromkeys(run_ids)))
        missing = [run_id for run_id in run_ids if run_id not in known]
        if missing:
            watch.cancel()
            raise RunNotFoundError(f"no workflow run with id {missing[0]!r}")
        self._deliver({k: v for k, v in known.items() if v.status in TERMINAL})
        return await watch

    async def results(self, run_ids: list[str]) -> dict[str, RunResult]:
        await self.ensure_started()
        return await self.store.results(run_ids)

    async def cancel(self, ids: list[str]) -> None:
        """Cancel workflow runs or task runs; raises `RunNotFoundError` (and cancels
        nothing) when an id is unknown."""
        await self.ensure_started()
        finished, running = await self.store.cancel(ids, self.clock.time())
        self._abort_local(running)
        await self._fetch_and_deliver(list(finished))
        self.wake()

    async def reset_durable_task(self, task_id: str, node_id: int, branch_id: int) -> int:
        """Fork a durable task's history at `node_id` and run it again from there (see
        `RunsClient.reset_durable_task`); returns the new branch."""
        await self.ensure_started()
        branch, outcome = await self.store.reset_durable_task(
            task_id, node_id, branch_id, self.clock.time()
        )
        self._after_replay(outcome)
        return branch

    async def durable_history(self, task_id: str) -> tuple[int, list[HistoryRow]] | None:
        await self.ensure_started()
        return await self.store.durable_history(task_id)

    async def restore_task(self, task_id: str) -> None:
        """Queue an evicted durable task run again now (`RestoreError` if it is not)."""
        await self.ensure_started()
        await self.store.restore_task(task_id, self.clock.time())
        self.wake()

    async def replay(self, ids: list[str]) -> list[str]:
        """Queue finished runs (or task runs) again; see `RunsClient.replay`."""
        await self.ensure_started()
        outcome = await self.store.replay(ids, self.clock.time())
        return self._after_replay(outcome)

    def _after_replay(self, outcome: tuple[list[str], dict[str, str], list[str]]) -> list[str]:
        replayed, finished, cancelled = outcome
        self._abort_local(cancelled)
        if finished:
            self._deliver_later(list(finished))
        self._last_activity = time.monotonic()
        self.wake()
        return replayed

    async def trigger_stored(
        self,
        workflow_name: str,
        input: JSONMap,
        metadata: JSONMap,
        priority: int | None,
        client: Any,
    ) -> str:
        """Trigger a workflow this process does not define, by its registered shape
        (the input is not validated: the definition is elsewhere)."""
        await self.ensure_started()
        shape = await self.store.shape(workflow_name)
        limit = client.config.grpc_max_send_message_length
        input_json, meta_json = json.dumps(input or {}), json.dumps(metadata)
        PayloadTooLargeError.check(input_json, limit, f"the input of workflow {workflow_name!r}")
        PayloadTooLargeError.check(meta_json, limit, "the additional_metadata of a run")
        run_id = new_id()
        task_ids = (
            {name: new_id() for name in shape.tasks}
            if shape.is_dag
            else {next(iter(shape.tasks)): run_id}
        )
        run = NewRun(
            run_id,
            workflow_name,
            input_json,
            meta_json,
            check_priority(priority, workflow_name) or shape.default_priority,
            task_ids,
        )
        key_run(shape, run)
        result = (await self.trigger([], [run]))[0]
        if result.collided:
            raise IdempotencyCollisionError(
                f"workflow {workflow_name!r}: idempotency key {run.idempotency_key!r} is held "
                f"by run {result.run_id}; no run was created",
                existing_run_external_id=result.run_id,
            )
        return result.run_id

    def cancel_soon(self, ids: list[str]) -> None:
        assert self.loop is not None
        task = self.loop.create_task(self.cancel(ids))
        task.add_done_callback(_log_failure)

    def add_log(self, task_id: str, retry_count: int, level: str, message: str) -> None:
        self._logs.append(LogLine(task_id, retry_count, level, message, self.clock.time()))
        self.wake()

    def add_stream_chunk(self, run_id: str, task_id: str, data: str) -> None:
        self._chunks.append((run_id, task_id, data, self.clock.time()))
        self.wake()

    async def stream_chunks(self, run_id: str, after: int, wait: float) -> tuple[list[Chunk], bool]:
        """Chunks of run `run_id` after chunk id `after`, waiting up to `wait` seconds
        for some; and whether the run has ended (then no chunk follows those returned
        once none is returned)."""
        await self.ensure_started()
        event = asyncio.Event()
        self._listeners.add(event)
        self.wake()  # start watching for other processes' commits
        try:
            while True:
                chunks, status = await self.store.stream_chunks(run_id, after)
                if status is None:
                    raise RunNotFoundError(f"no workflow run with id {run_id!r}")
                if chunks or status in TERMINAL or wait <= 0:
                    return chunks, status in TERMINAL
                started = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await event.wait()
                wait -= time.monotonic() - started
                event.clear()
        finally:
            self._listeners.discard(event)

    def _notify_listeners(self) -> None:
        for event in self._listeners:
            event.set()

    async def flush(self) -> None:
        """Write buffered outcomes and logs now."""
        await self._step(external=False, claim=False)

    # -- durable waits and events ---------------------------------------------------

    async def open_wait(
        self,
        task_id: str,
        node_id: int,
        key: str,
        fingerprint: str,
        conditions: list[ConditionSpec],
        worker_id: str | None = None,
    ) -> str | None:
        return await self.store.durable_open_wait(
            task_id, node_id, key, fingerprint, conditions, self.clock.time(), worker_id
        )

    async def push_events(self, events: list[EventIn]) -> PushResult:
        """Store events; the runs they start and the waits they meet follow."""
        await self.ensure_started()
        await self.register_defined()  # workflows listening to events must be known first
        result = await self.store.push_events(
            events, self.clock.time(), served_here=self._served_here(), wall=time.time()
        )
        self._warn_unserved(result.unserved, "was started by an event")
        self._abort_local(result.cancelled_running)
        self.waits.resolve(result.satisfied)
        if result.finished_runs:
            self._deliver_later(list(result.finished_runs))
        self._last_activity = time.monotonic()
        self.wake()
        return result

    def _deliver_later(self, run_ids: list[str]) -> None:
        """Tell the waiters of runs that ended outside the step (the caller is not
        waiting for that)."""
        assert self.loop is not None
        task = self.loop.create_task(self._fetch_and_deliver(run_ids))
        task.add_done_callback(_log_failure)

    # -- executions --------------------------------------------------------------

    def execution_done(self, execution: Execution, outcomes: list[Outcome]) -> None:
        execution.worker.forget(execution)
        members = execution.members if isinstance(execution, BatchExecution) else [execution]
        for member in members:  # (an evicted task may be back already: not its entry)
            if self._executions.get(member.task_id) is execution:
                del self._executions[member.task_id]
        self._outcomes.extend(outcomes)
        self.wake()

    def restart_timeout(self, execution: Execution, deadline: float | None = None) -> None:
        """A durable task resumed: give its attempt a fresh execution timeout (or back
        the `deadline` it had, when a wait it was entering ended at once)."""
        seconds = execution.task.execution_timeout.total_seconds()
        execution.timeout_at = self.clock.time() + seconds if deadline is None else deadline
        self._timeouts.push(execution.timeout_at, execution, execution.timeout_at)

    def release_slot(self, execution: Execution) -> None:
        execution.worker.release(execution)
        self.wake()

    def refresh_timeout(self, execution: Execution, seconds: float) -> None:
        if execution.timeout_at is None:
            return
        execution.timeout_at += seconds
        self._timeouts.push(execution.timeout_at, execution, execution.timeout_at)
        self.wake()

    def _start(
        self,
        claimed: ClaimedTask,
        workers: dict[str, LocalWorker],
        members: list[ClaimedTask] | None = None,
    ) -> None:
        """Start a claimed task run (`members`: the flushed batch it is the first of)."""
        worker = workers[claimed.worker_id]
        if not worker.accepting or worker not in self.workers:
            # The worker stopped while this claim was being written; its release puts
            # the task run back in the queue (it is ordered after the claim).
            return
        workflow = self.defined.get(claimed.workflow_name)
        task = None
        if workflow is not None:
            with contextlib.suppress(KeyError):
                task = workflow.task_by_name(claimed.task_name)
        if task is None:  # the claim skips what it cannot run; this is a safety net
            logger.error(
                "claimed task %s:%s is not defined in this process",
                claimed.workflow_name,
                claimed.task_name,
            )
            self.wake()
            self._outcomes.extend(
                Outcome(
                    m.task_id,
                    m.run_id,
                    m.workflow_name,
                    m.task_name,
                    m.worker_id,
                    m.retry_count,
                    m.started_at,
                    "FAILED",
                    error_json='{"exc_type":"HatchetError","message":"task is not defined in the '
                    'worker that claimed it","trace":""}',
                )
                for m in members or [claimed]
            )
            return
        if members is None:
            execution = Execution(self, worker, claimed, task)
        else:
            execution = BatchExecution(self, worker, members, task)
        worker.take(execution)
        for member in members or [claimed]:
            self._executions[member.task_id] = execution
        if execution.timeout_at is not None:
            self._timeouts.push(execution.timeout_at, execution, execution.timeout_at)
        execution.start()

    def _expire_timeouts(self, now: float) -> None:
        for execution in self._timeouts.due(now):
            execution.abort(timed_out=True)

    # -- the loop ------------------------------------------------------------------

    async def _beat(self) -> None:
        """Renew this process's worker leases and release workers that are gone."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            ids = [w.id for w in self.workers]
            if not ids:
                continue
            try:
                changed = self._changed_actions()
                if changed:
                    await self.register_defined()  # what the implicit worker now serves
                free = {
                    w.id: (max(0, w.slots - w.used), max(0, w.durable_slots - w.used_durable))
                    for w in self.workers
                }
                requeued, paused = await self.store.heartbeat(
                    ids, self.clock.time(), time.time(), LEASE, changed, free
                )
                if free != self._free_written:
                    # A worker's room changed: a task another worker left for it (a
                    # preference) is taken by the others if it is full now.
                    self._free_written = free
                    self.wake()
            except Exception:
                logger.exception("hatchlite heartbeat failed")
                continue
            self._actions_written.update(changed)
            self._apply_paused(paused)
            if requeued:
                logger.warning("re-queued %d task runs of workers that are gone", requeued)
                await self._sync_running()  # their limits may have cancelled ours
                self.wake()

    def _apply_paused(self, paused: set[str]) -> None:
        """Workers paused (from any process) take no new tasks; unpaused ones do again."""
        for worker in self.workers:
            was, worker.paused = worker.paused, worker.id in paused
            if was and not worker.paused:
                self.wake()

    async def pause_worker(self, worker_id: str, paused: bool) -> bool:
        """Pause or unpause a worker (of any process); False if it is unknown."""
        await self.ensure_started()
        found = await self.store.pause_worker(worker_id, paused)
        for worker in self.workers:
            if worker.id == worker_id:
                worker.paused = paused
                self.wake()
        return found

    async def delete_workflow(self, workflow_id: str) -> str | None:
        await self.ensure_started()
        name = await self.store.delete_workflow(workflow_id, self.clock.time())
        if name is not None:
            self._registered.pop(name, None)
            self._deleted.add(name)
        return name

    def _changed_actions(self) -> dict[str, list[str]]:
        """Action ids of workers whose served tasks changed since written (the implicit
        worker serves what the process defines, which grows after it starts)."""
        changed: dict[str, list[str]] = {}
        for worker in self.workers:
            if worker.implicit:
                actions = worker.action_ids(self.defined)
                if actions != self._actions_written.get(worker.id):
                    changed[worker.id] = actions
        return changed

    async def _run(self) -> None:
        failures = 0
        while True:
            external = await self._wait_for_work()
            try:
                await self._step(external=external, claim=True)
                failures = 0
                self.triggers.failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.triggers.step_failed()
                if failures <= 3 or failures % 60 == 0:
                    logger.exception("hatchlite engine step failed (%d in a row)", failures)
                if isinstance(exc, DatabaseError) and failures >= 3:
                    # A damaged or unusable file: callers waiting for results would wait
                    # forever. They get the error; the engine keeps trying.
                    self._fail_waiters(exc)
                await asyncio.sleep(min(1.0, 0.01 * 2**failures))
                self.wake()  # what the step had to write is still to be written

    def _fail_waiters(self, exc: BaseException) -> None:
        self._waiters.fail(exc)

    async def _wait_for_work(self) -> bool:
        """Sleep until woken, a deadline passes, or another process commits (True)."""
        wake = self._wake
        assert wake is not None
        while True:
            self.store.db.poll_interval = self._poll_interval()
            if wake.is_set():
                wake.clear()
                external, self._external = self._external, False
                return external
            deadline = self._store_deadline
            for local in (self._timeouts.next(), self.evictor.next_deadline()):
                if local is not None and (deadline is None or local < deadline):
                    deadline = local
            delay = self.clock.real_delay(deadline) if deadline is not None else None
            if delay == 0.0:
                return False
            waiting = sum(w.waiting for w in self.workers)  # durable tasks in a wait
            if len(self._executions) <= waiting and not self._outcomes:
                self.clock.idle(deadline)  # nothing runs: a test clock may skip ahead
                if wake.is_set():
                    continue
            try:
                async with asyncio.timeout(delay):
                    await wake.wait()
            except TimeoutError:
                return False

    def _poll_interval(self) -> float | None:
        """How often the database thread looks for other processes' commits: often
        right after activity, less when quiet, never with nothing to watch."""
        if not (self.workers or self._waiters or self._executions or self.waits or self._listeners):
            return None
        quiet = time.monotonic() - self._last_activity
        if quiet < ACTIVE_WINDOW:
            return POLL_ACTIVE
        return POLL_IDLE if quiet < IDLE_WINDOW else POLL_ASLEEP

    async def _step(self, *, external: bool, claim: bool) -> None:
        now = self.clock.time()
        self._expire_timeouts(now)
        # A bounded batch: one transaction's cost grows faster than its size (a savepoint
        # per outcome), and a step holding 100,000 would stall everything behind it.
        outcomes = self._outcomes[:OUTCOMES_PER_STEP]
        del self._outcomes[:OUTCOMES_PER_STEP]
        if self._outcomes:
            self.wake()  # the rest in the next step, at once
        logs, self._logs = self._logs, []
        chunks, self._chunks = self._chunks, []
        workers = {w.id: w for w in self.workers}
        claims = []
        if claim:
            for worker in self.workers:
                room = self.evictor.room(worker)
                request = worker.claim_request(self.defined, self.defined.version, room)
                if request is not None and request.workflows:
                    claims.append(request)
        check_runs = self._waiters.run_ids() if external and self._waiters else []
        check_running = list(self._executions) if external and self._executions else []
        check_durable = self.waits.nodes() if external and self.waits else []
        fire = self._fire_for() if self.workers else frozenset()
        taken, triggers = self.triggers.take()
        tick = self.store.tick(
            now,
            outcomes,
            logs,
            chunks,
            claims,
            self._waiters,
            check_runs,
            check_running,
            check_durable,
            # Engines without workers write only when a stored deadline is due.
            maintenance=bool(self.workers)
            or (self._store_deadline is not None and self._store_deadline <= now),
            wall=time.time(),
            clock=self.clock.time,
            fire=fire,
            fired_at=self._fired_at,
            triggers=triggers,
        )
        # The job was submitted and runs to its end, even if this step is cancelled (the
        # engine closing): its triggers' callers are told what it did when it ends.
        tick.add_done_callback(functools.partial(self.triggers.done, taken))
        try:
            result = await asyncio.shield(tick)
        except asyncio.CancelledError:
            raise  # re-queueing the outcomes would write them twice
        except Exception:
            self._outcomes[:0] = outcomes  # the job rolled back: write them next time
            self._logs[:0] = logs
            self._chunks[:0] = chunks
            raise
        if outcomes or result.claimed or result.finished_runs:
            self._last_activity = time.monotonic()
        self._fired_at = now if fire else None
        self._store_deadline = result.next_deadline
        if self._listeners and (chunks or result.finished_runs):
            self._notify_listeners()
        batches: dict[str, list[ClaimedTask]] = {}
        for claimed in result.claimed:
            if claimed.batch_id is None:
                self._start(claimed, workers)
            else:
                batches.setdefault(claimed.batch_id, []).append(claimed)
        for members in batches.values():
            self._start(members[0], workers, members)
        if result.claimed:  # durable tasks claimed counting on evictions
            for worker in workers.values():
                victims = self.evictor.for_capacity(worker)
                if victims:
                    await self.evictor.evict(victims)
        # After the step met due sleeps and events: a wait that is over is not evicted.
        expired = self.evictor.due(now)
        if expired:
            await self.evictor.evict(expired)
        self._abort_local(result.cancelled_running)
        self._deliver(result.results)
        self.waits.resolve(result.durable)
        late = [r for r in result.finished_runs if r in self._waiters and r not in result.results]
        if late:
            await self._fetch_and_deliver(late)

    def _deliver(self, results: dict[str, RunResult]) -> None:
        self.waits.runs_ended(list(results))
        self._waiters.deliver(results)

    async def _fetch_and_deliver(self, run_ids: list[str]) -> None:
        wanted = [r for r in run_ids if r in self._waiters]
        if wanted:
            self._deliver(await self.store.results(wanted))


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("hatchlite background operation failed", exc_info=task.exception())
