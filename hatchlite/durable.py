"""Durable tasks: `DurableContext` and the replay of the durable-event history.

Every durable call (`aio_now`, `aio_sleep_for`, `aio_wait_for`, `aio_wait_for_event`,
a child run, `_aio_memo`) is entry 1, 2, 3, ... of the task run's history, written to
SQLite with its result. When the task runs again (after a crash, a restart, or a
retry), the function starts from the top and each call returns its recorded result at
once; the first call with no record runs live. A call that differs from its record
raises `NonDeterminismError`. A waiting task keeps its durable slot until it is evicted
(see scheduler/eviction.py); eviction frees the slot and the memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from pydantic import BaseModel, TypeAdapter

from hatchlite import contextvars as hooks
from hatchlite.cel import check_boolean
from hatchlite.conditions import Condition, OrGroup, ParentCondition, SleepCondition
from hatchlite.conditions import UserEventCondition as UserEventCondition
from hatchlite.context import Context, ExecutionLink, RunData
from hatchlite.exceptions import NonDeterminismError
from hatchlite.scheduler.execution import DurableHistoryError
from hatchlite.serde import HATCHET_PYDANTIC_SENTINEL as SERDE
from hatchlite.store import ConditionSpec, HistoryEntry
from hatchlite.types import Duration, duration_expr, to_timedelta

if TYPE_CHECKING:
    from hatchlite.dag import Task
    from hatchlite.scheduler.execution import Execution

__all__ = ["DurableContext", "DurableHistoryError", "SleepResult"]

P = ParamSpec("P")
T = TypeVar("T")

KINDS = {"NOW", "WAIT", "SPAWN", "MEMO"}


class SleepResult(BaseModel):
    """What `aio_sleep_for` returns: how long the task slept."""

    duration: timedelta


class DurableContext(Context):
    """The context of a durable task: durable sleeps, waits, child runs and `aio_now`."""

    def __init__(
        self,
        task: Task[Any, Any],
        run: RunData,
        link: ExecutionLink,
        history: list[HistoryEntry] | None = None,
        invocation_count: int = 1,
    ) -> None:
        super().__init__(task, run, link)
        self._history = _check_history(task, link.task_id, history or [])
        self._node = 0
        self._wait_index = 0
        self._invocation_count = invocation_count

    @property
    def wait_index(self) -> int:
        return self._wait_index

    @property
    def invocation_count(self) -> int:
        """How many times this task run's function has been started (1 the first time)."""
        return self._invocation_count

    # -- the history -------------------------------------------------------------

    def _next(
        self, kind: str, key: str, fingerprint: str | None = None
    ) -> tuple[int, HistoryEntry | None]:
        self._node += 1
        node = self._node
        entry = self._history.get(node)
        if entry is not None and (
            entry.kind != kind or entry.key != key or entry.fingerprint != fingerprint
        ):
            same_call = (entry.kind, entry.key) == (kind, key)
            detail = " with other conditions" if same_call else ""
            raise NonDeterminismError(
                task_external_id=self.task_run_id,
                invocation_count=self._invocation_count,
                message=(
                    f"durable task {self.task_name!r}: call {node} was {entry.kind} "
                    f"{entry.key!r} when the task first ran, and is {kind} {key!r}{detail} "
                    f"now; durable tasks must make the same durable calls in the same order"
                ),
                node_id=node,
            )
        return node, entry

    def _check_live(self) -> None:
        if not self.is_mock and self._execution.stopped:
            # Evicted or stopped: the task run belongs to the store (and maybe to a
            # replay elsewhere) now; this coroutine caught its cancellation.
            raise asyncio.CancelledError("this attempt was evicted or stopped")

    @property
    def _execution(self) -> Execution:
        if self.is_mock:
            raise TypeError(
                f"task {self._task.name!r} under mock_run: there is no engine to wait for "
                f"events or run children; test it with a worker (the hatchlite pytest "
                f"plugin, docs/testing.md). Durable sleeps return at once under mock_run."
            )
        return self._link  # type: ignore[return-value]

    async def _record(self, node: int, kind: str, key: str, result: Any) -> None:
        if self.is_mock:
            return  # nothing is stored under mock_run
        self._check_live()
        execution = self._execution
        await execution.engine.store.durable_record(
            self.task_run_id,
            node,
            kind,
            key,
            json.dumps(result),
            execution.engine.clock.time(),
            execution.worker_id,
        )

    async def _suspended(
        self, awaitable: Awaitable[T], *, node: int | None = None, children: Sequence[str] = ()
    ) -> T:
        """Await a durable wait, for entry `node` or for the runs `children` (the task
        may be evicted meanwhile)."""
        return await self._execution.suspend(awaitable, node=node, children=children)

    # -- durable calls -------------------------------------------------------------

    async def aio_now(self) -> datetime:
        """The current time, recorded: a replay returns the same instant."""
        node, entry = self._next("NOW", "now")
        if entry is not None:
            return datetime.fromisoformat(json.loads(entry.result or '""'))
        now = datetime.now(UTC) if self.is_mock else self._execution.engine.clock.now()
        await self._record(node, "NOW", "now", now.isoformat())
        return now

    async def aio_wait_for(
        self,
        signal_key: str,
        *conditions: SleepCondition | UserEventCondition | OrGroup,
        label: str | None = None,
    ) -> dict[str, Any]:
        """Wait until every condition (an `or_` group: any of its members) is met;
        returns `{"CREATE": {readable_data_key: [payload, ...]}}` for what was met.
        Under `mock_run` a wait for sleeps only returns at once."""
        if self.is_mock and all(isinstance(c, SleepCondition) for c in conditions):
            return {}
        specs = self._specs(conditions)
        # The entry records what the conditions were too, so a replay that waits for
        # something else under the same signal key is caught as non-deterministic.
        fingerprint = _fingerprint(specs)
        node, entry = self._next("WAIT", signal_key, fingerprint)
        if entry is not None and entry.status == "SATISFIED":
            return _loads(entry.result)
        execution = self._execution
        engine = execution.engine
        if entry is None:
            # Once the wait is stored, the time it waits is not the task's: hold the
            # execution timeout from before it is written (the clock may move before this
            # coroutine resumes), and give it back if the wait ends at once.
            self._check_live()
            held, execution.timeout_at = execution.timeout_at, None
            try:
                result = await engine.open_wait(
                    self.task_run_id, node, signal_key, fingerprint, specs, execution.worker_id
                )
            except BaseException:
                if held is not None:
                    engine.restart_timeout(execution, held)
                raise
            if result is not None:
                if held is not None:
                    engine.restart_timeout(execution, held)
                return _loads(result)
        waited = engine.waits.wait((self.task_run_id, node))
        return _loads(await self._suspended(waited, node=node))

    async def aio_sleep_for(self, duration: Duration, label: str | None = None) -> SleepResult:
        """Sleep durably: the wake-up time is stored (the task may be evicted
        meanwhile, freeing its durable slot), and a restart resumes the sleep instead of starting it over."""
        delta = to_timedelta(duration, "duration")
        index = self._wait_index
        self._wait_index += 1
        await self.aio_wait_for(f"sleep:{duration_expr(delta)}-{index}", SleepCondition(delta))
        return SleepResult(duration=delta)

    async def aio_sleep_until(self, wake_at: datetime, label: str | None = None) -> SleepResult:
        if wake_at.tzinfo is None:
            raise ValueError("aio_sleep_until needs a timezone-aware datetime")
        now = await self.aio_now()
        return await self.aio_sleep_for(max(wake_at - now, timedelta(0)), label)

    async def aio_wait_for_event(
        self,
        key: str,
        expression: str | None = None,
        *,
        payload_validator: type[T] | None = None,
        scope: str | None = None,
        lookback_window: timedelta | None = None,
        label: str | None = None,
    ) -> Any:
        """Wait for one pushed event with `key` (and `expression` true of its payload);
        returns the payload, validated into `payload_validator` if given. With `scope`
        and `lookback_window`, an event of that scope pushed within the window before
        the wait counts too."""
        if (scope is None) != (lookback_window is None):
            raise ValueError("scope and lookback_window must be given together")
        since = None
        if lookback_window is not None:
            since = self._execution.engine.clock.now() - lookback_window
        index = self._wait_index
        self._wait_index += 1
        condition = UserEventCondition(
            event_key=key, expression=expression, scope=scope, consider_events_since=since
        )
        result = await self.aio_wait_for(f"event:{key}-{index}", condition)
        matches: dict[str, list[Any]] = result.get("CREATE", {})
        payload = next(iter(matches.values()))[0] if matches else {}
        if payload_validator is None:
            return payload
        return TypeAdapter(payload_validator).validate_python(payload, context=SERDE)

    async def _aio_memo(
        self,
        fn: Callable[P, Awaitable[T]],
        result_validator: type[T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `fn(*args, **kwargs)` once per task run and arguments; a replay returns
        the stored result (as Hatchet's `_aio_memo`)."""
        adapter: TypeAdapter[T] = TypeAdapter(result_validator)
        digest = hashlib.sha256(
            json.dumps(
                [getattr(fn, "__qualname__", str(fn)), args, kwargs], default=str, sort_keys=True
            ).encode()
        ).hexdigest()[:32]
        node, entry = self._next("MEMO", f"memo:{digest}")
        if entry is not None:
            return adapter.validate_json(json.loads(entry.result or "null"), context=SERDE)
        value = await fn(*args, **kwargs)
        dumped = adapter.dump_json(value, context=SERDE).decode()
        await self._record(node, "MEMO", f"memo:{digest}", dumped)
        return value

    async def spawn(
        self, workflow_name: str, create: Callable[[], Awaitable[list[str]]], indexed: int
    ) -> list[str]:
        """Create child runs once: a replay returns the recorded run ids (and moves the
        spawn index past them, as the first run did)."""
        node, entry = self._next("SPAWN", f"spawn:{workflow_name}")
        if entry is not None:
            ids: list[str] = _loads(entry.result)["run_ids"]
            hooks.workflow_spawn_indices[self.action_key] += indexed
            return ids
        run_ids = await create()
        await self._record(node, "SPAWN", f"spawn:{workflow_name}", {"run_ids": run_ids})
        return run_ids

    # -- conditions --------------------------------------------------------------

    def _specs(self, conditions: tuple[Condition | OrGroup, ...]) -> list[ConditionSpec]:
        if not conditions:
            raise ValueError("aio_wait_for needs at least one condition")
        engine = self._execution.engine
        now = engine.clock.time()
        namespace = self._task.workflow.config_namespace()
        specs: list[ConditionSpec] = []
        for group, item in enumerate(conditions):
            members = item.conditions if isinstance(item, OrGroup) else [item]
            for cond in members:
                specs.append(_spec(cond, group, now, namespace))
        keys = [s.readable_key for s in specs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"conditions need distinct readable_data_keys, got {keys}")
        return specs


def _fingerprint(specs: list[ConditionSpec]) -> str:
    """What a wait waits for, without the instants that depend on when it was made."""
    parts = [
        [s.group, s.kind, s.readable_key, s.event_key, s.expression, s.scope, s.sleep_payload]
        for s in specs
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _spec(
    cond: Condition, group: int, now: float, namespace: Callable[[str], str]
) -> ConditionSpec:
    if isinstance(cond, SleepCondition):
        return ConditionSpec(
            group=group,
            kind="SLEEP",
            readable_key=cond.readable_data_key,
            wake_at=now + cond.duration.total_seconds(),
            sleep_payload=json.dumps({"sleep_duration": duration_expr(cond.duration)}),
        )
    if isinstance(cond, UserEventCondition):
        if cond.expression:
            # Refuse now an expression that can never be a bool: it would never match.
            check_boolean(cond.expression, f"condition on event {cond.event_key!r}")
        since = cond.consider_events_since
        if since is not None and since.tzinfo is None:
            raise ValueError("consider_events_since must be timezone-aware")
        return ConditionSpec(
            group=group,
            kind="EVENT",
            readable_key=cond.readable_data_key,
            event_key=namespace(cond.event_key),
            expression=cond.expression,
            scope=cond.scope,
            since=since.timestamp() if since is not None else None,
        )
    if isinstance(cond, ParentCondition):
        raise ValueError("a durable wait cannot wait for a ParentCondition")
    raise TypeError(f"not a condition: {cond!r}")


def _loads(text: str | None) -> dict[str, Any]:
    if text is None:
        raise DurableHistoryError("a satisfied durable entry has no result")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise DurableHistoryError(f"a durable entry's result is not an object: {text[:80]}")
    return value


def _check_history(
    task: Task[Any, Any], task_id: str, history: list[HistoryEntry]
) -> dict[int, HistoryEntry]:
    """Refuse a history that was damaged rather than guess how to replay it."""
    where = f"durable task {task.name!r} (task run {task_id})"
    for expected, entry in enumerate(history, start=1):
        if entry.node_id != expected:
            raise DurableHistoryError(f"{where}: history entry {expected} is missing")
        if entry.kind not in KINDS:
            raise DurableHistoryError(f"{where}: entry {expected} has unknown kind {entry.kind!r}")
        if entry.status not in ("PENDING", "SATISFIED") or (
            entry.status == "PENDING" and entry.kind != "WAIT"
        ):
            raise DurableHistoryError(f"{where}: entry {expected} has status {entry.status!r}")
        if entry.status == "SATISFIED":
            try:
                json.loads(entry.result or "")
            except ValueError as exc:
                raise DurableHistoryError(
                    f"{where}: entry {expected} ({entry.kind}) has an unreadable result"
                ) from exc
    return {entry.node_id: entry for entry in history}
