"""`Workflow` and `Standalone`: definitions plus Hatchet's run methods and run refs.

Every run method is written once, as a coroutine that runs on the engine loop
(`_trigger`); the sync and `aio_` names are thin bridges to it. The input is
validated and the parent task (for child runs) captured in the caller's thread,
before anything reaches the engine.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, overload

from hatchlite.context import Context, current_context
from hatchlite.dag import (
    R,
    Task,
    TWorkflowInput,
    WorkflowConfig,
    WorkflowDefinition,
    check_priority,
)
from hatchlite.exceptions import FailedTaskRunExceptionGroup, TaskRunError
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import NewRun, RunResult
from hatchlite.types import JSONMap, TriggerWorkflowOptions, WorkflowRunTriggerConfig

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.durable import DurableContext

T = TypeVar("T")
R2 = TypeVar("R2")
ResultMode = Literal["poll", "event"]


class StandaloneDecorator(Protocol[TWorkflowInput]):
    """`@hatchet.task(...)`: the output type is the function's (awaited) return type."""

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, Context], Coroutine[Any, Any, R2]], /
    ) -> Standalone[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, Context], R2], /
    ) -> Standalone[TWorkflowInput, R2]: ...


class DurableStandaloneDecorator(Protocol[TWorkflowInput]):
    """`@hatchet.durable_task(...)`: like `StandaloneDecorator`, with a `DurableContext`."""

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, DurableContext], Coroutine[Any, Any, R2]], /
    ) -> Standalone[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, DurableContext], R2], /
    ) -> Standalone[TWorkflowInput, R2]: ...


class _Item:
    """One validated trigger, ready for the engine."""

    __slots__ = ("child_index", "child_key", "input_json", "key", "metadata", "priority")

    def __init__(
        self,
        input_json: str,
        metadata: JSONMap,
        priority: int,
        child_key: str | None,
        child_index: int | None,
        key: str | None,
    ) -> None:
        self.input_json = input_json
        self.metadata = metadata
        self.priority = priority
        self.child_key = child_key
        self.child_index = child_index
        self.key = key


def format_workflow_result(
    result: RunResult, mode: ResultMode, durable_parent: bool = False
) -> dict[str, Any]:
    """A DAG's result dict, as `ref.result()` (poll) or `ref.aio_result()` (event) gives it.
    Inside a durable task, a failed or cancelled child raises its `TaskRunError`."""
    if result.status == "FAILED":
        errors = [
            TaskRunError.from_json(t.error_json, t.task_id)
            for t in result.tasks
            if t.status == "FAILED" and t.error_json
        ]
        if durable_parent and errors:
            raise errors[0]
        raise FailedTaskRunExceptionGroup(f"Workflow run {result.run_id} failed.", errors)
    if durable_parent and result.status == "CANCELLED":
        raise TaskRunError("task was cancelled", "TaskRunError", "", result.run_id)
    if mode == "poll":
        if result.status == "CANCELLED":
            raise ValueError(f"Workflow run {result.run_id} was cancelled.")
        return {
            t.task_name: json.loads(t.output_json) if t.output_json else None
            for t in result.tasks
            if t.status != "PENDING"
        }
    return {t.task_name: json.loads(t.output_json) for t in result.tasks if t.output_json}


class WorkflowRunRef:
    """A handle on a triggered workflow run."""

    def __init__(self, workflow_run_id: str, client: Hatchet) -> None:
        self.workflow_run_id = workflow_run_id
        self._client = client

    def __str__(self) -> str:
        return self.workflow_run_id

    def __repr__(self) -> str:
        return f"WorkflowRunRef({self.workflow_run_id!r})"

    async def _wait(self) -> RunResult:
        engine = self._client._engine
        if self._client._auto_worker:  # a script waiting for earlier runs executes them
            await engine.ensure_started()
            await engine.ensure_implicit_worker()
        return (await engine.wait_existing([self.workflow_run_id]))[0]

    def result(self) -> dict[str, Any]:
        """Block until the run ends: `{task_name: output}`; raises on failure or cancel."""
        return format_workflow_result(RUNTIME.call(self._wait), "poll")

    async def aio_result(self) -> dict[str, Any]:
        """Wait until the run ends: `{task_name: output}` of tasks with output; raises on
        failure, returns normally for a cancelled run."""
        return format_workflow_result(await RUNTIME.acall(self._wait), "event")


class TaskRunRef(Generic[TWorkflowInput, R]):
    """A handle on a triggered standalone task run."""

    def __init__(self, standalone: Standalone[TWorkflowInput, R], ref: WorkflowRunRef) -> None:
        self._standalone = standalone
        self._ref = ref

    @property
    def workflow_run_id(self) -> str:
        return self._ref.workflow_run_id

    def __str__(self) -> str:
        return self.workflow_run_id

    def __repr__(self) -> str:
        return f"TaskRunRef({self.workflow_run_id!r})"

    def result(self) -> R:
        return self._standalone._output(RUNTIME.call(self._ref._wait), "poll")

    async def aio_result(self) -> R:
        return self._standalone._output(await RUNTIME.acall(self._ref._wait), "event")


class BaseWorkflow(WorkflowDefinition[TWorkflowInput]):
    """What workflows and standalone tasks share: triggering and waiting."""

    def __init__(self, config: WorkflowConfig, client: Hatchet) -> None:
        super().__init__(config)
        self._client = client

    @property
    def client(self) -> Hatchet:
        return self._client

    def config_namespace(self) -> Callable[[str], str]:
        return self._client.config.apply_namespace

    @property
    def service_name(self) -> str:
        return self.name.lower()

    def create_bulk_run_item(
        self,
        input: TWorkflowInput | None = None,
        key: str | None = None,
        options: TriggerWorkflowOptions | None = None,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        desired_worker_id: str | None = None,
        sticky: bool = False,
        desired_worker_labels: Any = None,
    ) -> WorkflowRunTriggerConfig:
        """One item for `run_many`; the input is validated now."""
        opts = options or TriggerWorkflowOptions()
        input_json = self.validate_input(input)
        return WorkflowRunTriggerConfig(
            workflow_name=self.name,
            input=input_json,
            options=TriggerWorkflowOptions(
                **{
                    **opts.model_dump(),
                    "child_key": child_key if child_key is not None else opts.child_key,
                    "additional_metadata": {
                        **opts.additional_metadata,
                        **(additional_metadata or {}),
                    },
                    "priority": check_priority(
                        priority if priority is not None else opts.priority, self.name
                    ),
                    "desired_worker_id": desired_worker_id or opts.desired_worker_id,
                    "sticky": sticky or opts.sticky,
                }
            ),
            key=key,
        )

    # -- the core (runs on the engine loop) ---------------------------------------

    def _item(
        self,
        input: Any,
        options: TriggerWorkflowOptions | None,
        child_key: str | None,
        additional_metadata: JSONMap | None,
        priority: int | None,
        key: str | None = None,
    ) -> _Item:
        opts = options or TriggerWorkflowOptions()
        meta = {
            **self.config.default_additional_metadata,
            **opts.additional_metadata,
            **(additional_metadata or {}),
        }
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"additional_metadata must be JSON-serializable: {exc}") from exc
        prio = check_priority(priority if priority is not None else opts.priority, self.name)
        return _Item(
            self.validate_input(input),
            meta,
            prio if prio is not None else int(self.config.default_priority),
            child_key if child_key is not None else opts.child_key,
            opts.child_index,
            key or opts.key,
        )

    def _item_from_config(self, config: WorkflowRunTriggerConfig) -> _Item:
        opts = config.options
        input_json = config.input if config.input is not None else self.validate_input(None)
        meta = {**self.config.default_additional_metadata, **opts.additional_metadata}
        return _Item(
            input_json,
            meta,
            opts.priority if opts.priority is not None else int(self.config.default_priority),
            opts.child_key,
            opts.child_index,
            config.key,
        )

    async def _trigger(
        self, items: list[_Item], parent: Context | None, wait: bool
    ) -> list[str] | list[RunResult]:
        """Create runs; return their ids, or (wait=True) their results once they end."""
        from hatchlite.durable import DurableContext

        engine = self._client._engine
        if isinstance(parent, DurableContext):
            # A durable parent records the spawn, so a replay does not spawn again, and
            # waits for the children without holding its slot.
            indexed = sum(1 for item in items if item.child_index is None)
            ids = await parent.spawn(self.name, lambda: self._create(items, parent), indexed)
            if not wait:
                return ids
            return await parent._suspended(engine.wait_existing(ids))
        if not wait:
            return await self._create(items, parent)
        run_ids = [str(uuid.uuid4()) for _ in items]
        await engine.ensure_started()
        futures = [engine.watch(run_id) for run_id in run_ids]
        try:
            ids = await self._create(items, parent, run_ids)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        if ids == run_ids:
            return list(await asyncio.gather(*futures))
        # Some were child runs spawned before: wait for those instead.
        for new_id, future in zip(run_ids, futures, strict=True):
            if new_id not in ids:
                future.cancel()
        return await engine.wait_existing(ids)

    async def _create(
        self, items: list[_Item], parent: Context | None, run_ids: list[str] | None = None
    ) -> list[str]:
        """Insert the runs (one transaction); returns their ids — for a child that
        exists already (same parent task and key or index), the existing run's id."""
        client = self._client
        engine = client._engine
        await engine.ensure_started()
        if client._auto_worker:
            await engine.ensure_implicit_worker()
        shape = self.shape()
        runs: list[NewRun] = []
        for n, item in enumerate(items):
            run_id = run_ids[n] if run_ids else str(uuid.uuid4())
            task_ids = (
                {name: str(uuid.uuid4()) for name in shape.tasks}
                if shape.is_dag
                else {next(iter(shape.tasks)): run_id}
            )
            run = NewRun(
                run_id,
                self.name,
                item.input_json,
                "",
                item.priority,
                task_ids,
                trigger_key=item.key,
            )
            meta = item.metadata
            if parent is not None:
                meta = {**parent.additional_metadata, **meta}
                run.parent_workflow_run_id = parent.workflow_run_id
                run.parent_task_run_id = parent.task_run_id
                run.child_key = item.child_key
                run.child_index = (
                    item.child_index if item.child_index is not None else parent.next_spawn_index()
                )
            run.metadata_json = json.dumps(meta)
            runs.append(run)
        triggered = await engine.trigger([self], runs)
        return [t.run_id for t in triggered]

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return RUNTIME.call(functools.partial(fn, *args))

    async def _acall(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await RUNTIME.acall(functools.partial(fn, *args))

    def _refs(self, ids: list[str]) -> list[WorkflowRunRef]:
        return [WorkflowRunRef(run_id, self._client) for run_id in ids]

    # -- listing helpers shared by both kinds ----------------------------------------

    def get_run_ref(self, run_id: str) -> WorkflowRunRef:
        return WorkflowRunRef(run_id, self._client)


class Workflow(BaseWorkflow[TWorkflowInput]):
    """A workflow of one or more tasks (a DAG). Created by `hatchet.workflow(...)`."""

    @overload
    def run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[True] = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> dict[str, Any]: ...

    @overload
    def run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[False],
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> WorkflowRunRef: ...

    def run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: bool = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> dict[str, Any] | WorkflowRunRef:
        """Run the workflow and wait: `{task_name: output}` (or a ref, without waiting)."""
        item = self._item(input, options, child_key, additional_metadata, priority)
        parent = current_context.get()
        out = self._call(self._trigger, [item], parent, wait_for_result)
        if not wait_for_result:
            return self._refs(out)[0]
        return format_workflow_result(out[0], "poll", _durable(parent))

    @overload
    async def aio_run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[True] = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> dict[str, Any]: ...

    @overload
    async def aio_run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[False],
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> WorkflowRunRef: ...

    async def aio_run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: bool = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> dict[str, Any] | WorkflowRunRef:
        """Async `run`."""
        item = self._item(input, options, child_key, additional_metadata, priority)
        parent = current_context.get()
        out = await self._acall(self._trigger, [item], parent, wait_for_result)
        if not wait_for_result:
            return self._refs(out)[0]
        return format_workflow_result(out[0], "event", _durable(parent))

    def run_no_wait(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> WorkflowRunRef:
        """Deprecated: `run(..., wait_for_result=False)`."""
        return self.run(
            input,
            options,
            wait_for_result=False,
            child_key=child_key,
            additional_metadata=additional_metadata,
            priority=priority,
        )

    async def aio_run_no_wait(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> WorkflowRunRef:
        return await self.aio_run(
            input,
            options,
            wait_for_result=False,
            child_key=child_key,
            additional_metadata=additional_metadata,
            priority=priority,
        )

    def run_many(
        self,
        workflows: list[WorkflowRunTriggerConfig],
        return_exceptions: bool = False,
        wait_for_result: bool = True,
    ) -> list[Any]:
        """Trigger many runs in one transaction; wait for all their results."""
        items = [self._item_from_config(c) for c in workflows]
        parent = current_context.get()
        out = self._call(self._trigger, items, parent, wait_for_result)
        if not wait_for_result:
            return self._refs(out)
        return _collect(
            out, lambda r: format_workflow_result(r, "poll", _durable(parent)), return_exceptions
        )

    async def aio_run_many(
        self,
        workflows: list[WorkflowRunTriggerConfig],
        return_exceptions: bool = False,
        wait_for_result: bool = True,
    ) -> list[Any]:
        items = [self._item_from_config(c) for c in workflows]
        parent = current_context.get()
        out = await self._acall(self._trigger, items, parent, wait_for_result)
        if not wait_for_result:
            return self._refs(out)
        return _collect(
            out, lambda r: format_workflow_result(r, "event", _durable(parent)), return_exceptions
        )

    def run_many_no_wait(self, workflows: list[WorkflowRunTriggerConfig]) -> list[WorkflowRunRef]:
        return self.run_many(workflows, wait_for_result=False)

    async def aio_run_many_no_wait(
        self, workflows: list[WorkflowRunTriggerConfig]
    ) -> list[WorkflowRunRef]:
        return await self.aio_run_many(workflows, wait_for_result=False)


class Standalone(BaseWorkflow[TWorkflowInput], Generic[TWorkflowInput, R]):
    """A single task that is its own workflow; `run` returns the task's typed output.
    Created by `@hatchet.task(...)` / `@hatchet.durable_task(...)`."""

    def __init__(self, config: WorkflowConfig, client: Hatchet) -> None:
        super().__init__(config, client)
        self._task: Task[TWorkflowInput, R] | None = None

    @property
    def _single(self) -> Task[TWorkflowInput, R]:
        assert self._task is not None, "a Standalone is built by @hatchet.task()"
        return self._task

    @property
    def output_validator(self) -> Any:
        return self._single.output_validator

    @property
    def output_validator_type(self) -> Any:
        return self._single.output_validator_type

    @property
    def is_async_function(self) -> bool:
        return self._single.is_async_function

    def __call__(self, input: TWorkflowInput, ctx: Context) -> Any:
        return self._single.fn(input, ctx)

    def mock_run(
        self,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        parent_outputs: dict[str, JSONMap] | None = None,
        retry_count: int = 0,
        lifespan: Any = None,
        dependencies: dict[str, Any] | None = None,
    ) -> R:
        return self._single.mock_run(
            input, additional_metadata, parent_outputs, retry_count, lifespan, dependencies
        )

    async def aio_mock_run(
        self,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        parent_outputs: dict[str, JSONMap] | None = None,
        retry_count: int = 0,
        lifespan: Any = None,
        dependencies: dict[str, Any] | None = None,
    ) -> R:
        return await self._single.aio_mock_run(
            input, additional_metadata, parent_outputs, retry_count, lifespan, dependencies
        )

    def _output(self, result: RunResult, mode: ResultMode, durable_parent: bool = False) -> R:
        if result.status == "FAILED" or (durable_parent and result.status == "CANCELLED"):
            format_workflow_result(result, mode, durable_parent)  # raises
        if result.status == "CANCELLED" and mode == "poll":
            raise ValueError(f"Workflow run {result.run_id} was cancelled.")
        text = result.tasks[0].output_json if result.tasks else None
        return self._single.parse_output(text if result.status == "COMPLETED" else None)

    def _task_refs(self, ids: list[str]) -> list[TaskRunRef[TWorkflowInput, R]]:
        return [TaskRunRef(self, ref) for ref in self._refs(ids)]

    @overload
    def run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[True] = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> R: ...

    @overload
    def run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[False],
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> TaskRunRef[TWorkflowInput, R]: ...

    def run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: bool = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> R | TaskRunRef[TWorkflowInput, R]:
        """Run the task and wait for its output (or a ref, without waiting)."""
        item = self._item(input, options, child_key, additional_metadata, priority)
        parent = current_context.get()
        out = self._call(self._trigger, [item], parent, wait_for_result)
        if not wait_for_result:
            return self._task_refs(out)[0]
        return self._output(out[0], "poll", _durable(parent))

    @overload
    async def aio_run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[True] = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> R: ...

    @overload
    async def aio_run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: Literal[False],
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> TaskRunRef[TWorkflowInput, R]: ...

    async def aio_run(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        wait_for_result: bool = True,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> R | TaskRunRef[TWorkflowInput, R]:
        item = self._item(input, options, child_key, additional_metadata, priority)
        parent = current_context.get()
        out = await self._acall(self._trigger, [item], parent, wait_for_result)
        if not wait_for_result:
            return self._task_refs(out)[0]
        return self._output(out[0], "event", _durable(parent))

    def run_no_wait(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> TaskRunRef[TWorkflowInput, R]:
        return self.run(
            input,
            options,
            wait_for_result=False,
            child_key=child_key,
            additional_metadata=additional_metadata,
            priority=priority,
        )

    async def aio_run_no_wait(
        self,
        input: TWorkflowInput | None = None,
        options: TriggerWorkflowOptions | None = None,
        *,
        child_key: str | None = None,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
        sticky: bool = False,
        desired_worker_id: str | None = None,
        desired_worker_labels: Any = None,
    ) -> TaskRunRef[TWorkflowInput, R]:
        return await self.aio_run(
            input,
            options,
            wait_for_result=False,
            child_key=child_key,
            additional_metadata=additional_metadata,
            priority=priority,
        )

    def run_many(
        self,
        workflows: list[WorkflowRunTriggerConfig],
        return_exceptions: bool = False,
        wait_for_result: bool = True,
    ) -> list[Any]:
        items = [self._item_from_config(c) for c in workflows]
        parent = current_context.get()
        out = self._call(self._trigger, items, parent, wait_for_result)
        if not wait_for_result:
            return self._task_refs(out)
        return _collect(out, lambda r: self._output(r, "poll", _durable(parent)), return_exceptions)

    async def aio_run_many(
        self,
        workflows: list[WorkflowRunTriggerConfig],
        return_exceptions: bool = False,
        wait_for_result: bool = True,
    ) -> list[Any]:
        items = [self._item_from_config(c) for c in workflows]
        parent = current_context.get()
        out = await self._acall(self._trigger, items, parent, wait_for_result)
        if not wait_for_result:
            return self._task_refs(out)
        return _collect(
            out, lambda r: self._output(r, "event", _durable(parent)), return_exceptions
        )

    def run_many_no_wait(
        self, workflows: list[WorkflowRunTriggerConfig]
    ) -> list[TaskRunRef[TWorkflowInput, R]]:
        return self.run_many(workflows, wait_for_result=False)

    async def aio_run_many_no_wait(
        self, workflows: list[WorkflowRunTriggerConfig]
    ) -> list[TaskRunRef[TWorkflowInput, R]]:
        return await self.aio_run_many(workflows, wait_for_result=False)

    def get_run_ref(self, run_id: str) -> TaskRunRef[TWorkflowInput, R]:  # type: ignore[override]
        return TaskRunRef(self, WorkflowRunRef(run_id, self._client))

    def get_result(self, run_id: str) -> R:
        return self.get_run_ref(run_id).result()

    async def aio_get_result(self, run_id: str) -> R:
        return await self.get_run_ref(run_id).aio_result()


def _durable(parent: Context | None) -> bool:
    from hatchlite.durable import DurableContext

    return isinstance(parent, DurableContext)


def _collect(
    results: list[RunResult], fmt: Callable[[RunResult], T], return_exceptions: bool
) -> list[T | BaseException]:
    out: list[T | BaseException] = []
    for result in results:
        try:
            out.append(fmt(result))
        except Exception as exc:
            if not return_exceptions:
                raise
            out.append(exc)
    return out
