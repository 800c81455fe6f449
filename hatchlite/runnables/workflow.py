"""`Workflow` and `Standalone`: definitions plus Hatchet's run methods and run refs,
written once for both (`_Runnable`) over `BaseWorkflow`'s trigger core."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, overload

from hatchlite.context import Context, current_context
from hatchlite.dag import (
    R,
    Task,
    TWorkflowInput,
    WorkflowConfig,
)
from hatchlite.dag.site import Site
from hatchlite.refs import ResultMode, TaskRunRef, WorkflowRunRef, format_workflow_result
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store import RunResult
from hatchlite.types import (
    BatchMemberId,
    JSONMap,
    TriggerWorkflowOptions,
    WorkflowRunTriggerConfig,
)

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.durable import DurableContext
from hatchlite.runnables.base import BaseWorkflow, _durable

T = TypeVar("T")
R2 = TypeVar("R2")


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


class BatchStandaloneDecorator(Protocol[TWorkflowInput]):
    """`@hatchet.batch_task(...)`: the handler takes the batch's inputs by member id and
    returns the outputs by member id (or one for all, with `broadcast_output`)."""

    @overload
    def __call__(
        self,
        fn: Callable[
            [dict[BatchMemberId, TWorkflowInput], Context],
            Coroutine[Any, Any, dict[BatchMemberId, R2]],
        ],
        /,
    ) -> Standalone[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[dict[BatchMemberId, TWorkflowInput], Context], dict[BatchMemberId, R2]],
        /,
    ) -> Standalone[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self, fn: Callable[[dict[BatchMemberId, TWorkflowInput], Context], Any], /
    ) -> Standalone[TWorkflowInput, Any]: ...


TOut = TypeVar("TOut")
TRef = TypeVar("TRef")


class _Runnable(BaseWorkflow[TWorkflowInput], Generic[TWorkflowInput, TOut, TRef]):
    """Hatchet's run methods, written once: `Workflow` returns `{task_name: output}`
    and `WorkflowRunRef`s, `Standalone` the task's typed output and `TaskRunRef`s."""

    def _result(self, result: RunResult, mode: ResultMode, durable_parent: bool) -> TOut:
        raise NotImplementedError

    def _ref(self, run_id: str) -> TRef:
        raise NotImplementedError

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
    ) -> TOut: ...

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
    ) -> TRef: ...

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
    ) -> TOut | TRef:
        """Run and wait for the result (or, with `wait_for_result=False`, return a ref)."""
        route = (sticky, desired_worker_id, desired_worker_labels)
        item = self._item(input, options, child_key, additional_metadata, priority, None, route)
        parent = current_context.get()
        out = self._call(self._trigger, [item], parent, wait_for_result)
        if not wait_for_result:
            return self._ref(out[0])
        return self._result(out[0], "poll", _durable(parent))

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
    ) -> TOut: ...

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
    ) -> TRef: ...

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
    ) -> TOut | TRef:
        """Async `run` (with `aio_result()` semantics for the result)."""
        route = (sticky, desired_worker_id, desired_worker_labels)
        item = self._item(input, options, child_key, additional_metadata, priority, None, route)
        parent = current_context.get()
        out = await self._acall(self._trigger, [item], parent, wait_for_result)
        if not wait_for_result:
            return self._ref(out[0])
        return self._result(out[0], "event", _durable(parent))

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
    ) -> TRef:
        """Deprecated: `run(..., wait_for_result=False)`."""
        return self.run(
            input,
            options,
            wait_for_result=False,
            child_key=child_key,
            additional_metadata=additional_metadata,
            priority=priority,
            sticky=sticky,
            desired_worker_id=desired_worker_id,
            desired_worker_labels=desired_worker_labels,
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
    ) -> TRef:
        """Deprecated: `aio_run(..., wait_for_result=False)`."""
        return await self.aio_run(
            input,
            options,
            wait_for_result=False,
            child_key=child_key,
            additional_metadata=additional_metadata,
            priority=priority,
            sticky=sticky,
            desired_worker_id=desired_worker_id,
            desired_worker_labels=desired_worker_labels,
        )

    def run_many(
        self,
        workflows: list[WorkflowRunTriggerConfig],
        return_exceptions: bool = False,
        wait_for_result: bool = True,
    ) -> list[Any]:
        """Trigger many runs in one transaction and wait for all their results (in order);
        `return_exceptions=True` puts each failure's exception in its place."""
        items = [self._item_from_config(c) for c in workflows]
        parent = current_context.get()
        out = self._call(self._trigger, items, parent, wait_for_result, True)
        if not wait_for_result:
            return [self._ref(run_id) for run_id in out]
        durable = _durable(parent)
        return _collect(out, lambda r: self._result(r, "poll", durable), return_exceptions)

    async def aio_run_many(
        self,
        workflows: list[WorkflowRunTriggerConfig],
        return_exceptions: bool = False,
        wait_for_result: bool = True,
    ) -> list[Any]:
        items = [self._item_from_config(c) for c in workflows]
        parent = current_context.get()
        out = await self._acall(self._trigger, items, parent, wait_for_result, True)
        if not wait_for_result:
            return [self._ref(run_id) for run_id in out]
        durable = _durable(parent)
        return _collect(out, lambda r: self._result(r, "event", durable), return_exceptions)

    def run_many_no_wait(self, workflows: list[WorkflowRunTriggerConfig]) -> list[TRef]:
        return self.run_many(workflows, wait_for_result=False)

    async def aio_run_many_no_wait(self, workflows: list[WorkflowRunTriggerConfig]) -> list[TRef]:
        return await self.aio_run_many(workflows, wait_for_result=False)

    def get_run_ref(self, run_id: str) -> TRef:
        return self._ref(run_id)

    def get_result(self, run_id: str) -> TOut:
        """Wait for the run `run_id` of this workflow to end; its result as `run()`
        gives it."""
        wait = WorkflowRunRef(run_id, self._client)._wait
        return self._result(RUNTIME.call(wait), "poll", False)

    async def aio_get_result(self, run_id: str) -> TOut:
        wait = WorkflowRunRef(run_id, self._client)._wait
        return self._result(await RUNTIME.acall(wait), "event", False)


class Workflow(_Runnable[TWorkflowInput, dict[str, Any], WorkflowRunRef]):
    """A workflow of one or more tasks (a DAG). Created by `hatchet.workflow(...)`."""

    def _result(self, result: RunResult, mode: ResultMode, durable_parent: bool) -> dict[str, Any]:
        return format_workflow_result(result, mode, durable_parent)

    def _ref(self, run_id: str) -> WorkflowRunRef:
        return WorkflowRunRef(run_id, self._client)


class Standalone(
    _Runnable[TWorkflowInput, R, "TaskRunRef[TWorkflowInput, R]"], Generic[TWorkflowInput, R]
):
    """A single task that is its own workflow; `run` returns the task's typed output.
    Created by `@hatchet.task(...)` / `@hatchet.durable_task(...)`."""

    def __init__(self, config: WorkflowConfig, client: Hatchet, site: Site | None = None) -> None:
        super().__init__(config, client, site)
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

    def _result(self, result: RunResult, mode: ResultMode, durable_parent: bool) -> R:
        if result.status == "FAILED" or (durable_parent and result.status == "CANCELLED"):
            format_workflow_result(result, mode, durable_parent)  # raises
        if result.status == "CANCELLED" and mode == "poll":
            raise ValueError(f"Workflow run {result.run_id} was cancelled.")
        text = result.tasks[0].output_json if result.tasks else None
        return self._single.parse_output(text if result.status == "COMPLETED" else None)

    def _ref(self, run_id: str) -> TaskRunRef[TWorkflowInput, R]:
        return TaskRunRef(self, WorkflowRunRef(run_id, self._client))


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
