"""`Context`: what a running task sees of its run (the second argument of every task)."""

from __future__ import annotations

import contextvars
import json
import warnings
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic_core import to_jsonable_python

from hatchlite import contextvars as hooks
from hatchlite.exceptions import PayloadTooLargeError, TaskRunError
from hatchlite.ids import new_id
from hatchlite.serde import HATCHET_PYDANTIC_SENTINEL as SERDE
from hatchlite.types import Duration, JSONMap, to_timedelta

if TYPE_CHECKING:
    from hatchlite.dag import Task
    from hatchlite.scheduler.engine import Engine

R = TypeVar("R")

# The context of the task running in this asyncio task or thread (child runs read it).
current_context: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "hatchlite_current_context", default=None
)


def enter_task(ctx: Context) -> None:
    """Set the context variables of a task about to run (in its own asyncio task):
    hatchlite's and Hatchet's (`hatchlite.contextvars`)."""
    current_context.set(ctx)
    hooks.ctx_action_key.set(ctx.action_key)
    hooks.ctx_workflow_run_id.set(ctx.workflow_run_id)
    hooks.ctx_step_run_id.set(ctx.step_run_id)
    hooks.ctx_worker_id.set(ctx._link.worker_id)
    hooks.ctx_additional_metadata.set(ctx.additional_metadata)
    hooks.ctx_task_retry_count.set(ctx.retry_count)


def running_task_engine() -> Engine | None:
    """The engine of the task running in this asyncio task or thread, if any."""
    ctx = current_context.get()
    if ctx is None or ctx.is_mock:
        return None
    return getattr(ctx._link, "engine", None)


def leave_task(ctx: Context) -> None:
    """The attempt ended: forget its spawn count."""
    hooks.workflow_spawn_indices.pop(ctx.action_key, None)


class ExecutionLink(Protocol):
    """What a context needs from the engine running its task."""

    task_id: str
    run_id: str
    retry_count: int
    worker_id: str
    worker_name: str
    worker_labels: dict[str, str | int]
    lifespan: Any
    cancelled: bool
    timed_out: bool

    def log(self, message: str, level: str) -> None: ...
    def request_cancel(self) -> None: ...
    def refresh_timeout(self, seconds: float) -> None: ...
    def release_slot(self) -> None: ...
    def put_stream(self, data: str) -> None: ...
    async def pause_rate_limit(self, key: str, until: float) -> float: ...
    async def upsert_worker_labels(self, labels: dict[str, str | int]) -> None: ...


class RunData:
    """The data of the run a task belongs to (immutable for the attempt)."""

    __slots__ = (
        "additional_metadata",
        "child_index",
        "child_key",
        "filter_payload",
        "input_json",
        "parent_errors",
        "parent_outputs",
        "parent_task_run_id",
        "parent_workflow_run_id",
        "priority",
        "trigger_data",
        "triggering_event_id",
        "workflow_name",
    )

    def __init__(
        self,
        *,
        workflow_name: str,
        input_json: str,
        additional_metadata: JSONMap,
        priority: int,
        parent_outputs: dict[str, str | None],
        parent_errors: dict[str, str],
        parent_workflow_run_id: str | None = None,
        parent_task_run_id: str | None = None,
        child_index: int | None = None,
        child_key: str | None = None,
        triggering_event_id: str | None = None,
        filter_payload: JSONMap | None = None,
        trigger_data: JSONMap | None = None,
    ) -> None:
        self.triggering_event_id = triggering_event_id
        self.filter_payload = filter_payload or {}
        self.trigger_data = trigger_data or {}
        self.workflow_name = workflow_name
        self.input_json = input_json
        self.additional_metadata = additional_metadata
        self.priority = priority
        self.parent_outputs = parent_outputs
        self.parent_errors = parent_errors
        self.parent_workflow_run_id = parent_workflow_run_id
        self.parent_task_run_id = parent_task_run_id
        self.child_index = child_index
        self.child_key = child_key


class Context:
    """The second argument of a task function."""

    def __init__(self, task: Task[Any, Any], run: RunData, link: ExecutionLink) -> None:
        self._task = task
        self._run = run
        self._link = link
        self._outputs: dict[str, Any] = {}
        # Children spawned by this attempt are counted under this key (Hatchet's
        # child_index, in hatchlite.contextvars.workflow_spawn_indices).
        self.action_key = hooks.action_key(link.task_id, link.retry_count)

    # -- identity ----------------------------------------------------------------

    @property
    def workflow_run_id(self) -> str:
        return self._link.run_id

    @property
    def task_run_id(self) -> str:
        return self._link.task_id

    @property
    def step_run_id(self) -> str:
        """Deprecated alias of `task_run_id`."""
        return self._link.task_id

    @property
    def task_name(self) -> str:
        return self._task.name

    @property
    def workflow_name(self) -> str:
        return self._run.workflow_name

    @property
    def workflow_id(self) -> str | None:
        return None

    @property
    def workflow_version_id(self) -> str | None:
        return None

    @property
    def parent_workflow_run_id(self) -> str | None:
        return self._run.parent_workflow_run_id

    @property
    def child_index(self) -> int | None:
        return self._run.child_index

    @property
    def child_key(self) -> str | None:
        return self._run.child_key

    @property
    def retry_count(self) -> int:
        return self._link.retry_count

    @property
    def attempt_number(self) -> int:
        return self._link.retry_count + 1

    @property
    def max_attempts(self) -> int:
        return self._task.max_attempts

    @property
    def priority(self) -> int:
        return self._run.priority

    @property
    def additional_metadata(self) -> JSONMap:
        return self._run.additional_metadata

    @property
    def lifespan(self) -> Any:
        return self._link.lifespan

    @property
    def worker_id(self) -> str:
        return self._link.worker_id

    @property
    def captures_logs(self) -> bool:
        """Whether `logging` records emitted by this task are stored as its log lines."""
        return self._task.workflow.captures_logs()

    @property
    def worker_labels(self) -> dict[str, str | int]:
        """The labels of the worker running this task."""
        return dict(self._link.worker_labels)

    def upsert_worker_labels(self, labels: dict[str, str | int]) -> None:
        """Add or change labels of the worker running this task (its next claims, and
        other workers' routing, see them)."""
        from hatchlite.scheduler.runtime import RUNTIME

        RUNTIME.call(self.aio_upsert_worker_labels, labels)

    async def aio_upsert_worker_labels(self, labels: dict[str, str | int]) -> None:
        from hatchlite.scheduler.runtime import RUNTIME

        for key, value in labels.items():
            if (
                not isinstance(key, str)
                or isinstance(value, bool)
                or not isinstance(value, str | int)
            ):
                raise ValueError(f"worker labels map str to str or int, got {key!r}: {value!r}")
        await RUNTIME.acall(self._link.upsert_worker_labels, dict(labels))

    @property
    def worker(self) -> _WorkerHandle:
        """Deprecated: `ctx.worker_id`, `ctx.worker_labels`, `ctx.upsert_worker_labels`."""
        return _WorkerHandle(self)

    @property
    def filter_payload(self) -> JSONMap:
        """The payload of the filter through which an event started this run, else {}."""
        return self._run.filter_payload

    @property
    def trigger_data(self) -> JSONMap:
        """What started this task: for a run an event started through a filter,
        `{"filter_payload": ...}`; for a task its conditions gated, what its met
        conditions carried, by readable data key (lists of event payloads, sleeps)."""
        return self._run.trigger_data

    @property
    def was_triggered_by_event(self) -> bool:
        return self._run.triggering_event_id is not None

    @property
    def triggering_event_id(self) -> str | None:
        return self._run.triggering_event_id

    @property
    def triggering_event_key(self) -> str | None:
        key = self._run.additional_metadata.get("hatchet__event_key")
        return str(key) if self.was_triggered_by_event and key is not None else None

    # -- input and parent outputs -----------------------------------------------

    @property
    def workflow_input(self) -> JSONMap:
        """Deprecated: the raw input as a dict; use the task's `input` argument."""
        data: JSONMap = json.loads(self._run.input_json or "{}")
        return data

    @property
    def input(self) -> JSONMap:
        """Deprecated: the raw input as a dict."""
        return self.workflow_input

    def task_output(self, task: Task[Any, R]) -> R:
        """The output of parent `task`, validated into its declared return type."""
        name = task.name
        if name in self._outputs:
            return self._outputs[name]  # type: ignore[no-any-return]
        if name not in self._run.parent_outputs:
            raise ValueError(f"Step output for '{name}' not found")
        text = self._run.parent_outputs[name]
        if self._is_skipped_text(text):
            raise ValueError(f"{name} was skipped")
        value = task.parse_output(text)
        self._outputs[name] = value
        return value

    async def aio_task_output(self, task: Task[Any, R]) -> R:
        """Deprecated async form of `task_output`."""
        return self.task_output(task)

    def was_skipped(self, task: Task[Any, Any]) -> bool:
        return self._is_skipped_text(self._run.parent_outputs.get(task.name))

    @staticmethod
    def _is_skipped_text(text: str | None) -> bool:
        if not text or '"skipped"' not in text:
            return False
        data = json.loads(text)
        return isinstance(data, dict) and data.get("skipped") is True

    @property
    def task_run_errors(self) -> dict[str, str]:
        """Serialized errors of the run's failed tasks (for on-failure tasks)."""
        return {
            name: TaskRunError.from_json(text).serialize()
            for name, text in self._run.parent_errors.items()
        }

    def get_task_run_error(self, task: Task[Any, Any]) -> TaskRunError | None:
        text = self._run.parent_errors.get(task.name)
        return TaskRunError.from_json(text) if text else None

    def fetch_task_run_error(self, task: Task[Any, Any]) -> str | None:
        """Deprecated: the serialized error of `task`, if it failed."""
        error = self.get_task_run_error(task)
        return error.serialize() if error else None

    # -- effects ---------------------------------------------------------------

    def log(self, line: str | JSONMap, raise_on_error: bool = False) -> None:
        """Store a log line with this task run (see `hatchet.logs.list`)."""
        message = line if isinstance(line, str) else json.dumps(line, default=str)
        self._log(message, "INFO", raise_on_error)

    def _log(self, message: str, level: str, raise_on_error: bool = False) -> None:
        limit = self._task.workflow.max_payload_bytes()
        if len(message) > limit // 4 and len(message.encode()) > limit:
            # Hatchet's ctx.log does not raise by default; a line over the size limit is
            # cut to it rather than dropped.
            if raise_on_error:
                PayloadTooLargeError.check(message, limit, f"a log line of task {self.task_name!r}")
            cut = message.encode()[: limit - 64].decode(errors="ignore")
            message = f"{cut}... [truncated from {len(message.encode()):,} bytes]"
        self._link.log(message, level)

    async def aio_log(self, line: str | JSONMap, raise_on_error: bool = False) -> None:
        self.log(line, raise_on_error)

    def put_stream(self, data: str | bytes) -> None:
        self._link.put_stream(data.decode() if isinstance(data, bytes) else data)

    async def aio_put_stream(self, data: str | bytes) -> None:
        self.put_stream(data)

    def refresh_timeout(self, increment_by: Duration) -> None:
        """Add `increment_by` to this attempt's execution deadline."""
        self._link.refresh_timeout(to_timedelta(increment_by, "increment_by").total_seconds())

    async def aio_refresh_timeout(self, increment_by: Duration) -> None:
        self.refresh_timeout(increment_by)

    def pause_rate_limit(self, key: str, until: datetime) -> datetime:
        """Give no units of rate limit `key` until `until` (naive: UTC), to every task
        that uses it (a pause is never shortened); returns when the pause ends."""
        from hatchlite.scheduler.runtime import RUNTIME

        return RUNTIME.call(self.aio_pause_rate_limit, key, until)

    async def aio_pause_rate_limit(self, key: str, until: datetime) -> datetime:
        from hatchlite.features.rate_limits import as_timestamp
        from hatchlite.scheduler.runtime import RUNTIME

        end = await RUNTIME.acall(self._link.pause_rate_limit, key, as_timestamp(until))
        return datetime.fromtimestamp(end, UTC)

    def release_slot(self) -> None:
        """Free this task's worker slot; the task keeps running."""
        self._link.release_slot()

    async def aio_release_slot(self) -> None:
        self.release_slot()

    def cancel(self) -> None:
        """Cancel this task run; the engine then stops the task."""
        self._link.request_cancel()

    async def aio_cancel(self) -> None:
        self.cancel()

    @property
    def is_cancelled(self) -> bool:
        """Whether this attempt was told to stop (its run or task cancelled, or timed out)."""
        return self._link.cancelled or self._link.timed_out

    @property
    def exit_flag(self) -> bool:
        """Deprecated: `is_cancelled`."""
        return self.is_cancelled

    def done(self) -> bool:
        """Deprecated: whether this task was cancelled."""
        warnings.warn(
            "ctx.done() is deprecated, use ctx.is_cancelled", DeprecationWarning, stacklevel=2
        )
        return self.is_cancelled

    @property
    def is_mock(self) -> bool:
        """Whether this context is `mock_run`'s (a hatchlite extra)."""
        return bool(getattr(self._link, "is_mock", False))

    def next_spawn_index(self) -> int:
        return hooks.next_spawn_index(self.action_key)


class _WorkerHandle:
    """Hatchet's deprecated `ctx.worker` (`id()`, `labels()`, `upsert_labels(...)`)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def id(self) -> str:
        return self._ctx.worker_id

    def labels(self) -> dict[str, str | int]:
        return self._ctx.worker_labels

    def upsert_labels(self, labels: dict[str, str | int]) -> None:
        warnings.warn(
            "ctx.worker.upsert_labels is deprecated, use ctx.upsert_worker_labels",
            DeprecationWarning,
            stacklevel=2,
        )
        self._ctx.upsert_worker_labels(labels)


class _MockLink:
    """The engine stand-in behind `Task.mock_run`."""

    is_mock = True

    def __init__(self, retry_count: int, lifespan: Any) -> None:
        self.task_id = new_id()  # random, as Hatchet's mock_run
        self.run_id = new_id()
        self.retry_count = retry_count
        self.worker_id = "mock-worker"
        self.worker_name = "mock-worker"
        self.worker_labels: dict[str, str | int] = {}
        self.lifespan = lifespan
        self.cancelled = False
        self.timed_out = False
        self.logs: list[str] = []

    def log(self, message: str, level: str) -> None:
        self.logs.append(message)

    def request_cancel(self) -> None:
        self.cancelled = True

    def refresh_timeout(self, seconds: float) -> None:
        pass

    def release_slot(self) -> None:
        pass

    def put_stream(self, data: str) -> None:
        pass

    async def pause_rate_limit(self, key: str, until: float) -> float:
        return until

    async def upsert_worker_labels(self, labels: dict[str, str | int]) -> None:
        self.worker_labels.update(labels)


def mock_context(
    task: Task[Any, Any],
    *,
    input_json: str,
    additional_metadata: JSONMap,
    parent_outputs: dict[str, Any],
    retry_count: int,
    lifespan: Any,
) -> Context:
    from hatchlite.durable import DurableContext

    run = RunData(
        workflow_name=task.workflow.name,
        input_json=input_json,
        additional_metadata=additional_metadata,
        priority=1,
        # Given as dicts, models or dataclasses: stored as a run would store them.
        parent_outputs={
            k: json.dumps(to_jsonable_python(v, context=SERDE)) for k, v in parent_outputs.items()
        },
        parent_errors={},
    )
    cls = DurableContext if task.is_durable else Context
    return cls(task, run, _MockLink(retry_count, lifespan))
