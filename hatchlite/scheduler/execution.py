"""One attempt of one task run on a local worker: the only place user task functions
are called. Retry, timeout and cancellation all wrap the one call in `_invoke`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from hatchlite.context import Context, RunData, enter_task, leave_task
from hatchlite.dag.depends import exit_dependencies, resolve_dependencies
from hatchlite.exceptions import (
    HatchliteError,
    NonDeterminismError,
    NonRetryableException,
    PayloadTooLargeError,
    RetryAfterException,
    TaskCancelledError,
    TaskRunError,
)
from hatchlite.store.records import ClaimedTask, Outcome
from hatchlite.types import JSONMap, duration_expr

if TYPE_CHECKING:
    from hatchlite.dag import Task
    from hatchlite.scheduler.engine import Engine
    from hatchlite.scheduler.workers import LocalWorker

logger = logging.getLogger("hatchlite")
T = TypeVar("T")

_SERIALS = itertools.count()

# Exits of dependencies still running after their attempt ended (held so that they are
# not garbage-collected while they wait for a task thread).
_cleanups: set[asyncio.Task[Exception | None]] = set()


class DurableHistoryError(HatchliteError):
    """A durable task's stored history cannot be replayed (it is damaged)."""


class _InvalidInput(Exception):
    """The stored input no longer validates (the input model changed since the trigger)."""


class Wait:
    """One durable wait of an execution: for a durable entry (`node`), or for child
    runs (`children`: those not ended yet)."""

    __slots__ = ("children", "node", "resolved")

    def __init__(self, node: int | None, children: Sequence[str]) -> None:
        self.node = node
        self.children = set(children)
        self.resolved = False


class Execution:
    """A claimed task attempt running in this process."""

    def __init__(
        self, engine: Engine, worker: LocalWorker, claimed: ClaimedTask, task: Task[Any, Any]
    ) -> None:
        self.engine = engine
        self.worker = worker
        self.claimed = claimed
        self.task = task
        self.task_id = claimed.task_id
        self.run_id = claimed.run_id
        self.retry_count = claimed.retry_count
        self.serial = next(_SERIALS)  # tells this attempt from a later one of the task run
        self.worker_id = worker.id
        self.worker_name = worker.name
        self.worker_labels = worker.labels
        self.lifespan = worker.lifespan_value
        self.timeout_at = claimed.timeout_at
        self.cancelled = False
        self.timed_out = False
        self.slot_held = True
        self.suspended = False  # a durable task waiting (it may be evicted)
        self.waiting_since: float | None = None
        self.evicting = False
        self._waits: list[Wait] = []
        self._resolved = 0  # waits over whose coroutine has not resumed yet
        self._stopping = False
        self._aio_task: asyncio.Task[None] | None = None

    # -- engine side ---------------------------------------------------------------

    def start(self) -> None:
        self._aio_task = asyncio.get_running_loop().create_task(
            self._run(), name=f"hatchlite:{self.task.workflow.name}:{self.task.name}"
        )

    def abort_task(self, task_id: str) -> None:
        """Task run `task_id` of this attempt was cancelled in the store."""
        self.abort()

    def abort(self, *, timed_out: bool = False) -> None:
        """Stop the attempt: a cancel (run or task cancelled) or a timeout."""
        if timed_out:
            self.timed_out = True
        else:
            self.cancelled = True
        if self._aio_task is not None and not self._aio_task.done():
            self._aio_task.cancel()

    def stop(self) -> None:
        """Abandon the attempt (shutdown): no outcome is written; the task run stays with
        this worker until the worker's release puts it back in the queue."""
        self._stopping = True
        if self._aio_task is not None and not self._aio_task.done():
            self._aio_task.cancel()

    def evict(self) -> None:
        """The store holds this task as evicted: drop the coroutine (it is replayed
        from its history when its wait is over) with no outcome written."""
        self.evicting = True
        for wait in self._waits:
            if wait.node is not None:
                self.engine.waits.forget((self.task_id, wait.node))
        self.stop()

    def waits_for(self) -> tuple[list[int], list[list[str]]]:
        """What the task waits for: its durable entries, and its groups of child runs."""
        nodes = [w.node for w in self._waits if w.node is not None]
        children = [sorted(w.children) for w in self._waits if w.node is None and w.children]
        return nodes, children

    @property
    def stopped(self) -> bool:
        """Abandoned (evicted, or its engine stopping): whatever the task's code does
        from now on is not recorded, even if it catches the cancellation and goes on."""
        return self._stopping

    async def wait(self) -> None:
        if self._aio_task is not None:
            await asyncio.wait([self._aio_task])

    # -- ExecutionLink (called by Context, possibly from a worker thread) -----------

    def log(self, message: str, level: str) -> None:
        self.engine.threadsafe(self.engine.add_log, self.task_id, self.retry_count, level, message)

    def request_cancel(self) -> None:
        self.cancelled = True
        self.engine.threadsafe(self.engine.cancel_soon, [self.task_id])

    def refresh_timeout(self, seconds: float) -> None:
        self.engine.threadsafe(self.engine.refresh_timeout, self, seconds)

    def release_slot(self) -> None:
        self.engine.threadsafe(self.engine.release_slot, self)

    def put_stream(self, data: str) -> None:
        self.engine.threadsafe(self.engine.add_stream_chunk, self.run_id, self.task_id, data)

    async def upsert_worker_labels(self, labels: dict[str, str | int]) -> None:
        self.worker.labels.update(labels)
        await self.engine.store.set_worker_labels(self.worker.id, self.worker.labels)

    async def pause_rate_limit(self, key: str, until: float) -> float:
        from hatchlite.features.rate_limits import RateLimitNotFoundError

        end = await self.engine.store.rate_limit_pause(key, until)
        if end is None:
            raise RateLimitNotFoundError(f"no rate limit with key {key!r}")
        return end

    # -- the attempt -------------------------------------------------------------

    def make_context(self) -> Context:
        claimed = self.claimed
        run = RunData(
            workflow_name=claimed.workflow_name,
            input_json=claimed.input_json,
            additional_metadata=json.loads(claimed.metadata_json),
            priority=claimed.priority,
            parent_outputs=claimed.parent_outputs,
            parent_errors=claimed.parent_errors,
            parent_workflow_run_id=claimed.parent_workflow_run_id,
            parent_task_run_id=claimed.parent_task_run_id,
            child_index=claimed.child_index,
            child_key=claimed.child_key,
            triggering_event_id=claimed.triggering_event_id,
            filter_payload=_json_map(claimed.filter_payload_json),
            trigger_data=_trigger_data(claimed),
        )
        if self.task.is_durable:
            from hatchlite.durable import DurableContext

            return DurableContext(self.task, run, self, claimed.history, claimed.invocation_count)
        return Context(self.task, run, self)

    async def suspend(
        self, awaitable: Awaitable[T], *, node: int | None = None, children: Sequence[str] = ()
    ) -> T:
        """Await a durable wait (for entry `node`, or for the runs `children`): the task
        keeps its durable slot and may be evicted meanwhile (see scheduler/eviction.py);
        the execution timeout does not run, and starts afresh when the task resumes.
        Several waits may be under way at once (`asyncio.gather`)."""
        wait = Wait(node, children)
        self._waits.append(wait)
        self.engine.waits.children_began(self, wait)
        self._refresh()
        try:
            return await awaitable
        finally:
            self._waits.remove(wait)
            self.engine.waits.children_ended(self, wait)
            if wait.resolved:
                self._resolved -= 1
            if self._waits and self.suspended:
                # Another wait goes on (asyncio.gather): the task counts as waiting
                # while any of its waits does, as in Hatchet; its TTL starts again.
                self.waiting_since = self.engine.clock.time()
                self.engine.evictor.waiting(self)
            self._refresh()

    def node_resolved(self, node: int) -> None:
        for wait in self._waits:
            if wait.node == node:
                self.wait_resolved(wait)

    def wait_resolved(self, wait: Wait) -> None:
        """What `wait` waited for happened: the task counts as running from now on (its
        coroutine resumes soon), so neither the test clock nor an eviction passes it."""
        if not wait.resolved:
            wait.resolved = True
            self._resolved += 1
            self._refresh()

    def _refresh(self) -> None:
        """Waiting is having a wait under way and none over: keep `suspended`, the
        worker's count of waiting tasks, the TTL and the execution timeout in step."""
        waiting = bool(self._waits) and not self._resolved
        if waiting == self.suspended:
            return
        self.suspended = waiting
        if waiting:
            self.worker.waiting += 1
            self.timeout_at = None
            self.waiting_since = self.engine.clock.time()
            self.engine.evictor.waiting(self)
            self.engine.wake()  # the test clock may skip ahead; a TTL deadline is new
        else:
            self.worker.waiting -= 1
            self.waiting_since = None
            if not self._stopping and not (self.cancelled or self.timed_out):
                self.engine.restart_timeout(self)

    def _parse_input(self, claimed: ClaimedTask) -> Any:
        workflow = self.task.workflow
        try:
            return workflow.parse_input(claimed.input_json)
        except ValidationError as exc:
            raise _InvalidInput(
                f"input of workflow {workflow.name!r} does not validate: {exc}"
            ) from exc

    def _input(self) -> Any:
        """What the task function gets as its input."""
        return self._parse_input(self.claimed)

    async def _invoke(self, ctx: Context) -> Any:
        task = self.task
        value = self._input()
        enter_task(ctx)
        try:
            if task.dependencies:
                return await self._invoke_with_dependencies(value, ctx)
            if task.is_async_function:
                return await task.fn(value, ctx)
            call_context = contextvars.copy_context()
            return await self.worker.executor.run(call_context.run, task.fn, value, ctx)
        finally:
            leave_task(ctx)

    async def _invoke_with_dependencies(self, value: Any, ctx: Context) -> Any:
        """The task called with its `Depends` values, resolved for this attempt; the
        context managers they entered are exited after it, whatever its end."""
        task = self.task
        entered: list[Any] = []
        body: concurrent.futures.Future[Any] | None = None
        try:
            kwargs = await resolve_dependencies(
                task.dependencies, value, ctx, self._run_sync, entered
            )
            if task.is_async_function:
                result = await task.fn(value, ctx, **kwargs)
            else:
                call = functools.partial(task.fn, value, ctx, **kwargs)
                body = self.worker.executor.submit(contextvars.copy_context().run, call)
                result = await asyncio.wrap_future(body)
        except BaseException:
            await self._exit_dependencies(entered, body)  # errors logged: the task's stands
            raise
        error = await self._exit_dependencies(entered, body)
        if error is not None:
            raise error  # as in Hatchet, a failed exit fails an attempt that succeeded
        return result

    async def _exit_dependencies(
        self, entered: list[Any], body: concurrent.futures.Future[Any] | None
    ) -> Exception | None:
        """Exit the dependencies' context managers once the task has stopped, in this
        attempt's own asyncio task (where they were entered: a context variable reset or
        an anyio scope needs that), finishing them even if a cancel or a timeout arrives
        meanwhile. A `def` task's thread may outlive a cancel or a timeout: the exits
        then wait for it, in the background, and the attempt does not wait."""
        if not entered:
            return None
        where = f"task {self.task.workflow.name}:{self.task.name}"
        if body is not None and not body.done():

            async def after_the_thread() -> None:
                await asyncio.wait([asyncio.wrap_future(body)])
                await exit_dependencies(entered, self._run_sync, where)

            cleanup = asyncio.get_running_loop().create_task(after_the_thread())
            _cleanups.add(cleanup)
            cleanup.add_done_callback(_cleanups.discard)
            return None
        cancelled: asyncio.CancelledError | None = None
        while True:
            try:
                error = await exit_dependencies(entered, self._run_sync, where)
                break
            except asyncio.CancelledError as exc:  # the others still exit; then re-raised
                cancelled = exc
        if cancelled is not None:
            raise cancelled
        return error

    async def _run_sync(self, call: Callable[[], T]) -> T:
        """Run a plain dependency function (or a context manager's enter or exit) on the
        worker's task threads, with this attempt's context variables."""
        return await self.worker.executor.run(contextvars.copy_context().run, call)

    async def _run(self) -> None:
        outcomes: list[Outcome] = []
        try:
            try:
                ctx = self.make_context()
                value = await self._invoke(ctx)
                if self.cancelled or self.timed_out:
                    outcomes = self._interruptions()
                else:
                    outcomes = self._completions(value)
            except asyncio.CancelledError as exc:
                if self._stopping:
                    raise  # the engine is shutting down: the attempt stays with its lease
                if self.timed_out or self.cancelled:
                    outcomes = self._interruptions()
                else:  # raised by the task's own code, not by a cancel of ours
                    outcomes = self._failures(exc, retryable=True)
            except TaskCancelledError:
                outcomes = self._interruptions()
            except (
                _InvalidInput,
                DurableHistoryError,
                NonDeterminismError,
                NonRetryableException,
                PayloadTooLargeError,
            ) as exc:
                outcomes = self._failures(exc, retryable=False)
            except BaseException as exc:
                # KeyboardInterrupt, SystemExit, GeneratorExit and other BaseExceptions
                # from a task fail its attempt like any exception (and are retried): the
                # engine thread never sees them, so a task cannot stop the engine. An
                # error the task raised while being cancelled or timed out still ends the
                # attempt as cancelled or timed out.
                if self.cancelled or self.timed_out:
                    outcomes = self._interruptions()
                else:
                    outcomes = self._failures(exc, retryable=True)
        finally:
            if self._stopping:
                outcomes = []  # the code caught our cancellation and ended anyway
            self.engine.execution_done(self, outcomes)

    # How the attempt ended, as outcomes to write (one per task run it ran).

    def _completions(self, value: Any) -> list[Outcome]:
        output_json = self.task.dump_output(value)
        if output_json is not None:
            PayloadTooLargeError.check(output_json, self._max_payload(), self._what())
        return [self._outcome("COMPLETED", output_json=output_json)]

    def _interruptions(self) -> list[Outcome]:
        return [self._interrupted()]

    def _failures(self, exc: BaseException, *, retryable: bool) -> list[Outcome]:
        self._log_failure(exc)
        return [self._failed(exc, retryable=retryable)]

    def _max_payload(self) -> int:
        return self.task.workflow.max_payload_bytes()

    def _what(self) -> str:
        return f"the output of task {self.task.name!r} of workflow {self.task.workflow.name!r}"

    def _outcome(self, status: str, member: ClaimedTask | None = None, **fields: Any) -> Outcome:
        claimed = member or self.claimed
        return Outcome(
            task_id=claimed.task_id,
            run_id=claimed.run_id,
            workflow_name=claimed.workflow_name,
            task_name=claimed.task_name,
            worker_id=claimed.worker_id,
            retry_count=claimed.retry_count,
            started_at=claimed.started_at,
            queued_at=claimed.queued_at,
            status=status,
            **fields,
        )

    def _interrupted(self, member: ClaimedTask | None = None) -> Outcome:
        if self.timed_out and not self.cancelled:
            error = TaskRunError(
                f"Task exceeded timeout of {duration_expr(self.task.execution_timeout)}",
                "HatchetError",
                "",
                (member or self.claimed).task_id,
            )
            return self._with_retry(error, member, retryable=True, attempt_status="TIMED_OUT")
        return self._outcome("CANCELLED", member, attempt_status="CANCELLED")

    def _log_failure(self, exc: BaseException) -> None:
        if not isinstance(exc, NonRetryableException | _InvalidInput | NonDeterminismError):
            logger.warning(
                "task %s:%s attempt %d failed: %s: %s%s",
                self.task.workflow.name,
                self.task.name,
                self.retry_count + 1,
                type(exc).__name__,
                exc,
                ""
                if isinstance(exc, Exception)
                else " (a BaseException: it fails the attempt "
                "like an exception; it does not stop the process)",
            )

    def _failed(
        self, exc: BaseException, member: ClaimedTask | None = None, *, retryable: bool
    ) -> Outcome:
        delay = exc.after.total_seconds() if isinstance(exc, RetryAfterException) else None
        task_id = (member or self.claimed).task_id
        return self._with_retry(
            TaskRunError.from_exception(exc, task_id), member, retryable=retryable, delay=delay
        )

    def _with_retry(
        self,
        error: TaskRunError,
        member: ClaimedTask | None = None,
        *,
        retryable: bool,
        attempt_status: str = "FAILED",
        delay: float | None = None,
    ) -> Outcome:
        """A failed attempt, retried (after `delay` seconds, else the task's backoff)
        while it has attempts left."""
        next_retry = (member or self.claimed).retry_count + 1
        if retryable and next_retry < self.task.max_attempts:
            wait = self.task.backoff_seconds(next_retry) if delay is None else max(0.0, delay)
            retry_at = self.engine.clock.time() + wait
            return self._outcome(
                "FAILED",
                member,
                error_json=error.to_json(),
                retry_at=retry_at,
                attempt_status=attempt_status,
            )
        return self._outcome(
            "FAILED", member, error_json=error.to_json(), attempt_status=attempt_status
        )


class BatchExecution(Execution):
    """One call of a batch task's function for the members of one flushed batch: one
    slot, one asyncio task, an outcome per member. The context is the first member's."""

    def __init__(
        self,
        engine: Engine,
        worker: LocalWorker,
        members: list[ClaimedTask],
        task: Task[Any, Any],
    ) -> None:
        super().__init__(engine, worker, members[0], task)
        self.members = members
        self.dropped: set[str] = set()  # members cancelled while the batch runs

    def abort_task(self, task_id: str) -> None:
        """A cancelled member leaves the batch; the batch stops when none is left."""
        self.dropped.add(task_id)
        if all(m.task_id in self.dropped for m in self.members):
            self.abort()

    def _live(self) -> list[ClaimedTask]:
        return [m for m in self.members if m.task_id not in self.dropped]

    def _dropped(self) -> list[Outcome]:
        """The attempts of the members cancelled while the batch ran."""
        return [
            self._outcome("CANCELLED", m, attempt_status="CANCELLED")
            for m in self.members
            if m.task_id in self.dropped
        ]

    def _input(self) -> dict[str, Any]:
        return {m.task_id: self._parse_input(m) for m in self.members}

    def _completions(self, value: Any) -> list[Outcome]:
        task = self.task
        where = f"batch task {task.name!r} of workflow {task.workflow.name!r}"
        live = self._live()
        if task.batch is not None and task.batch.broadcast_output:
            output_json = task.dump_output(value)  # an error here fails every member
            completed = [self._outcome("COMPLETED", m, output_json=output_json) for m in live]
            return completed + self._dropped()
        if not isinstance(value, dict):
            raise ValueError(
                f"{where} must return a dict of outputs by member id (BatchMemberId), "
                f"got {type(value).__name__}"
            )
        unknown = set(value) - {m.task_id for m in self.members}
        if unknown:
            raise ValueError(
                f"{where} returned outputs for ids that are not members of its batch: "
                f"{sorted(map(str, unknown))[:5]}"
            )
        outcomes = []
        for member in live:
            if member.task_id not in value:
                missing = ValueError(
                    f"{where} returned no output for member {member.task_id} (its batch had "
                    f"{len(self.members)} members, the output {len(value)})"
                )
                outcomes.append(self._failed(missing, member, retryable=True))
                continue
            try:
                output_json = task.dump_output(value[member.task_id])
                if output_json is not None:
                    PayloadTooLargeError.check(output_json, self._max_payload(), self._what())
            except Exception as exc:
                outcomes.append(self._failed(exc, member, retryable=False))
                continue
            outcomes.append(self._outcome("COMPLETED", member, output_json=output_json))
        return outcomes + self._dropped()

    def _interruptions(self) -> list[Outcome]:
        return [self._interrupted(m) for m in self._live()] + self._dropped()

    def _failures(self, exc: BaseException, *, retryable: bool) -> list[Outcome]:
        self._log_failure(exc)
        failed = [self._failed(exc, m, retryable=retryable) for m in self._live()]
        return failed + self._dropped()


def _json_map(text: str | None) -> JSONMap:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def _trigger_data(claimed: ClaimedTask) -> JSONMap:
    data = _json_map(claimed.trigger_data_json)
    if claimed.filter_payload_json is not None:
        data.setdefault("filter_payload", _json_map(claimed.filter_payload_json))
    return data
