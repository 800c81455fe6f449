"""`Depends`: dependencies resolved per attempt, their context managers, definition-time
checks, and `mock_run`.

This module uses `from __future__ import annotations`, so every `Annotated[...,
Depends(...)]` here reaches hatchlite as a string; the dependency functions are at module
level, where such strings can be evaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, TypeAlias

import pytest
from pydantic import BaseModel
from typing_extensions import TypeAliasType

from hatchlite import (
    Context,
    Depends,
    DurableContext,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    HatchliteError,
    InvalidDefinitionError,
    NonRetryableException,
    TestClock,
)
from hatchlite.exceptions import InvalidDependencyError
from tests.conftest import query

EVENTS: list[str] = []
THREADS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _fresh_events() -> Iterator[None]:
    EVENTS.clear()
    THREADS.clear()
    yield
    EVENTS.clear()


class Order(BaseModel):
    qty: int = 1


# -- dependency functions ---------------------------------------------------------------


def sync_value(input: Any, ctx: Context) -> int:
    THREADS["sync"] = threading.get_ident()
    return 10


async def async_value(input: Any, ctx: Context) -> int:
    THREADS["async"] = threading.get_ident()
    return 20


def attempt_tag(input: Any, ctx: Context) -> str:
    EVENTS.append(f"resolve {ctx.retry_count}")
    return f"attempt-{ctx.retry_count}"


@contextlib.contextmanager
def sync_resource(input: Any, ctx: Context) -> Iterator[str]:
    EVENTS.append("enter sync")
    yield "sync-res"
    EVENTS.append("exit sync")


@contextlib.asynccontextmanager
async def async_resource(input: Any, ctx: Context) -> AsyncIterator[str]:
    EVENTS.append("enter async")
    yield "async-res"
    EVENTS.append("exit async")


def async_resource_from_sync_fn(
    input: Any, ctx: Context
) -> contextlib.AbstractAsyncContextManager[str]:
    return async_resource(input, ctx)  # a plain function returning an async context manager


@contextlib.contextmanager
def connection(input: Any, ctx: Context) -> Iterator[str]:
    EVENTS.append("connect")
    yield "conn"
    EVENTS.append("disconnect")


@contextlib.asynccontextmanager
async def session(
    input: Any, ctx: Context, conn: Annotated[str, Depends(connection)]
) -> AsyncIterator[str]:
    EVENTS.append("open session")
    yield f"session({conn})"
    EVENTS.append("close session")


def quantity(input: Order, ctx: Context) -> int:
    return input.qty


async def price(input: Order, ctx: Context, qty: Annotated[int, Depends(quantity)]) -> int:
    return qty * 3


def priced(input: Order, ctx: Context, total: Annotated[int, Depends(price)]) -> str:
    return f"{input.qty} for {total}"


def flaky_dependency(input: Any, ctx: Context) -> str:
    EVENTS.append(f"flaky {ctx.retry_count}")
    if ctx.retry_count == 0:
        raise ConnectionError("database unavailable")
    return "ok"


def fatal_dependency(input: Any, ctx: Context) -> str:
    EVENTS.append("fatal")
    raise NonRetryableException("no credentials")


@contextlib.contextmanager
def breaks_on_exit(input: Any, ctx: Context) -> Iterator[str]:
    yield "fragile"
    EVENTS.append("exit fragile")
    raise RuntimeError("exit failed")


def cycle_a(input: Any, ctx: Context, b: Annotated[str, Depends(cycle_b)]) -> str:
    return "a"


def cycle_b(input: Any, ctx: Context, a: Annotated[str, Depends(cycle_a)]) -> str:
    return "b"


def self_cycle(input: Any, ctx: Context, me: Annotated[str, Depends(self_cycle)]) -> str:
    return "me"


def takes_extra(input: Any, ctx: Context, extra: str) -> str:
    return extra


def same_name_inner(input: Any, ctx: Context) -> str:
    return "inner"


def same_name_outer(
    input: Any, ctx: Context, inner: Annotated[str, Depends(same_name_inner)]
) -> str:
    return f"outer({inner})"


# Two different functions under one name are two dependencies, not a cycle.
same_name_inner.__name__ = "helper"
same_name_outer.__name__ = "helper"

AliasedValue = TypeAliasType("AliasedValue", Annotated[int, Depends(async_value)])
PlainAlias: TypeAlias = Annotated[int, Depends(sync_value)]


# -- running ---------------------------------------------------------------------------------


async def test_sync_dependency_runs_in_a_thread_async_one_on_the_loop(hatchet: Hatchet) -> None:
    @hatchet.task()
    async def adds(
        input: EmptyModel,
        ctx: Context,
        a: Annotated[int, Depends(sync_value)],
        b: Annotated[int, Depends(async_value)],
    ) -> dict[str, int]:
        THREADS["task"] = threading.get_ident()
        return {"sum": a + b}

    assert isinstance(price.__annotations__["qty"], str)  # this module's annotations are strings
    assert await adds.aio_run() == {"sum": 30}
    assert THREADS["async"] == THREADS["task"]  # the engine's loop
    assert THREADS["sync"] != THREADS["task"]  # a worker thread
    assert THREADS["sync"] != threading.get_ident()


def test_sync_task_gets_its_dependencies(hatchet: Hatchet) -> None:
    @hatchet.task()
    def adds(
        input: EmptyModel,
        ctx: Context,
        b: Annotated[int, Depends(async_value)],
        *,
        a: Annotated[int, Depends(sync_value)],  # keyword-only is fine
    ) -> dict[str, int]:
        return {"sum": a + b}

    assert adds.run() == {"sum": 30}


def test_context_managers_enter_before_and_exit_after_in_reverse_order(hatchet: Hatchet) -> None:
    @hatchet.task()
    def uses(
        input: EmptyModel,
        ctx: Context,
        s: Annotated[str, Depends(sync_resource)],
        a: Annotated[str, Depends(async_resource)],
        f: Annotated[str, Depends(async_resource_from_sync_fn)],
    ) -> dict[str, str]:
        EVENTS.append("body")
        return {"got": f"{s},{a},{f}"}

    assert uses.run() == {"got": "sync-res,async-res,async-res"}
    assert EVENTS == [
        "enter sync",
        "enter async",
        "enter async",
        "body",
        "exit async",
        "exit async",
        "exit sync",
    ]


async def test_context_managers_exit_when_the_task_fails(hatchet: Hatchet) -> None:
    @hatchet.task()
    async def fails(
        input: EmptyModel,
        ctx: Context,
        s: Annotated[str, Depends(sync_resource)],
        a: Annotated[str, Depends(async_resource)],
    ) -> None:
        EVENTS.append("body")
        raise ValueError("task broke")

    with pytest.raises(FailedTaskRunExceptionGroup, match="task broke"):
        await fails.aio_run()
    assert EVENTS == ["enter sync", "enter async", "body", "exit async", "exit sync"]


def test_recursive_dependencies_and_their_context_managers(hatchet: Hatchet) -> None:
    @hatchet.task(input_validator=Order)
    def checkout(
        input: Order,
        ctx: Context,
        label: Annotated[str, Depends(priced)],
        db: Annotated[str, Depends(session)],
    ) -> dict[str, str]:
        EVENTS.append("body")
        return {"label": label, "db": db}

    assert checkout.run(Order(qty=4)) == {"label": "4 for 12", "db": "session(conn)"}
    assert EVENTS == ["connect", "open session", "body", "close session", "disconnect"]


def test_type_alias_annotations(hatchet: Hatchet) -> None:
    @hatchet.task()
    def aliased(input: EmptyModel, ctx: Context, a: AliasedValue, b: PlainAlias) -> dict[str, int]:
        return {"a": a, "b": b}

    assert aliased.run() == {"a": 20, "b": 10}


def test_same_name_functions_are_told_apart_by_identity(hatchet: Hatchet) -> None:
    @hatchet.task()
    def named(
        input: EmptyModel, ctx: Context, v: Annotated[str, Depends(same_name_outer)]
    ) -> dict[str, str]:
        return {"v": v}

    assert named.run() == {"v": "outer(inner)"}


def test_dependencies_are_resolved_afresh_for_each_attempt(hatchet: Hatchet) -> None:
    @hatchet.task(retries=2)
    def retried(
        input: EmptyModel,
        ctx: Context,
        tag: Annotated[str, Depends(attempt_tag)],
        s: Annotated[str, Depends(sync_resource)],
    ) -> dict[str, str]:
        EVENTS.append(f"body {tag}")
        if ctx.retry_count < 2:
            raise ConnectionError("again")
        return {"tag": tag}

    assert retried.run() == {"tag": "attempt-2"}
    assert EVENTS == [
        *("resolve 0", "enter sync", "body attempt-0", "exit sync"),
        *("resolve 1", "enter sync", "body attempt-1", "exit sync"),
        *("resolve 2", "enter sync", "body attempt-2", "exit sync"),
    ]


def test_a_failing_dependency_fails_the_attempt_and_is_retried(
    hatchet: Hatchet, db_path: str
) -> None:
    @hatchet.task(retries=1)
    def needs_db(
        input: EmptyModel,
        ctx: Context,
        s: Annotated[str, Depends(sync_resource)],
        db: Annotated[str, Depends(flaky_dependency)],
    ) -> dict[str, str]:
        EVENTS.append("body")
        return {"db": db}

    ref = needs_db.run(wait_for_result=False)
    assert ref.result() == {"db": "ok"}
    # The context manager entered before the failure was exited; the body ran once.
    assert EVENTS == [
        *("enter sync", "flaky 0", "exit sync"),
        *("enter sync", "flaky 1", "body", "exit sync"),
    ]
    rows = query(
        db_path,
        "SELECT retry_count, status FROM task_attempts WHERE task_run_id = ? ORDER BY id",
        (ref.workflow_run_id,),
    )
    assert rows == [(0, "FAILED"), (1, "COMPLETED")]


async def test_a_dependency_raising_non_retryable_is_not_retried(hatchet: Hatchet) -> None:
    @hatchet.task(retries=3)
    async def needs_creds(
        input: EmptyModel, ctx: Context, c: Annotated[str, Depends(fatal_dependency)]
    ) -> None:
        EVENTS.append("body")

    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await needs_creds.aio_run()
    [error] = info.value.exceptions
    assert error.exc_type == "NonRetryableException"
    assert EVENTS == ["fatal"]


async def test_a_failed_exit_is_logged_and_the_task_error_stands(
    hatchet: Hatchet, caplog: pytest.LogCaptureFixture
) -> None:
    @hatchet.task()
    async def fails(
        input: EmptyModel,
        ctx: Context,
        s: Annotated[str, Depends(sync_resource)],
        f: Annotated[str, Depends(breaks_on_exit)],
    ) -> None:
        raise ValueError("task broke")

    with (
        caplog.at_level(logging.WARNING, logger="hatchlite"),
        pytest.raises(FailedTaskRunExceptionGroup) as info,
    ):
        await fails.aio_run()
    [error] = info.value.exceptions
    assert (error.exc_type, error.exc) == ("ValueError", "task broke")
    assert EVENTS == ["enter sync", "exit fragile", "exit sync"]  # the other exit still ran
    assert "exit failed" in caplog.text


async def test_a_failed_exit_fails_an_attempt_that_succeeded(hatchet: Hatchet) -> None:
    # As in Hatchet: an exit that raises after a successful body fails the attempt
    # (think of a transaction whose commit on exit failed).
    @hatchet.task()
    async def commits(
        input: EmptyModel, ctx: Context, f: Annotated[str, Depends(breaks_on_exit)]
    ) -> dict[str, str]:
        return {"f": f}

    with pytest.raises(FailedTaskRunExceptionGroup, match="exit failed"):
        await commits.aio_run()


async def test_a_timed_out_sync_task_exits_its_dependencies_after_its_thread_ends(
    hatchet: Hatchet,
) -> None:
    release = threading.Event()
    exited = threading.Event()

    @contextlib.contextmanager
    def watched(input: Any, ctx: Context) -> Iterator[str]:
        yield "res"
        EVENTS.append("exit")
        exited.set()

    def body(input: EmptyModel, ctx: Context, r: Any) -> None:
        release.wait(5)
        EVENTS.append("body done")

    body.__annotations__ = {"r": Annotated[str, Depends(watched)]}  # a local dependency
    overruns = hatchet.task(name="overruns", execution_timeout=timedelta(seconds=0.2))(body)

    try:
        with pytest.raises(FailedTaskRunExceptionGroup, match="Task exceeded timeout of"):
            await overruns.aio_run()
        await asyncio.sleep(0.05)
        assert EVENTS == []  # the thread still uses the resource: not exited yet
    finally:
        release.set()
    assert await asyncio.to_thread(exited.wait, 5)
    assert EVENTS == ["body done", "exit"]


async def hangs(input: Any, ctx: Context) -> str:
    await asyncio.Event().wait()  # forever
    return "never"


async def test_a_timeout_while_resolving_exits_what_was_entered(hatchet: Hatchet) -> None:
    @hatchet.task(execution_timeout=timedelta(seconds=0.2))
    async def stuck(
        input: EmptyModel,
        ctx: Context,
        s: Annotated[str, Depends(sync_resource)],
        h: Annotated[str, Depends(hangs)],
    ) -> None:
        EVENTS.append("body")

    with pytest.raises(FailedTaskRunExceptionGroup, match="Task exceeded timeout of"):
        await stuck.aio_run()
    assert EVENTS == ["enter sync", "exit sync"]


# -- durable and DAG tasks ----------------------------------------------------------------


async def test_durable_task_with_dependencies(db_path: str) -> None:
    client = Hatchet(db=db_path, clock=TestClock(auto_advance=True))
    try:

        @client.durable_task()
        async def napper(
            input: EmptyModel,
            ctx: DurableContext,
            db: Annotated[str, Depends(session)],
            n: Annotated[int, Depends(sync_value)],
        ) -> dict[str, Any]:
            await ctx.aio_sleep_for(timedelta(hours=1))
            EVENTS.append("body")
            return {"db": db, "n": n}

        started = time.monotonic()
        assert await asyncio.wait_for(napper.aio_run(), 5) == {"db": "session(conn)", "n": 10}
        assert time.monotonic() - started < 3
        assert EVENTS[-3:] == ["body", "close session", "disconnect"]
        assert EVENTS.count("connect") == EVENTS.count("disconnect")
    finally:
        client.close()


STEPS: dict[str, Any] = {}


def parent_total(input: Any, ctx: Context) -> int:
    return int(ctx.task_output(STEPS["first"])["x"]) + 1


def test_dag_tasks_with_dependencies(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="dag-deps", input_validator=Order)

    @wf.task()
    def first(input: Order, ctx: Context, q: Annotated[int, Depends(quantity)]) -> dict[str, int]:
        return {"x": q * 10}

    STEPS["first"] = first

    @wf.task(parents=[first])
    async def second(
        input: Order,
        ctx: Context,
        total: Annotated[int, Depends(parent_total)],
        a: Annotated[str, Depends(async_resource)],
    ) -> dict[str, Any]:
        return {"total": total, "a": a}

    assert [d.name for d in second.dependencies] == ["total", "a"]  # planned when defined
    assert wf.run(Order(qty=2)) == {"first": {"x": 20}, "second": {"total": 21, "a": "async-res"}}
    assert EVENTS == ["enter async", "exit async"]


# -- definition-time checks ----------------------------------------------------------------


def test_depends_needs_input_and_ctx() -> None:
    def one(input: Any) -> int:
        return 1

    with pytest.raises(InvalidDependencyError, match="at least two parameters"):
        Depends(one)
    assert issubclass(InvalidDependencyError, HatchliteError)


def test_a_cycle_is_rejected_when_the_task_is_defined(hatchet: Hatchet) -> None:
    with pytest.raises(InvalidDependencyError) as info:

        @hatchet.task(name="loops")
        def loops(input: EmptyModel, ctx: Context, a: Annotated[str, Depends(cycle_a)]) -> None:
            pass

    message = str(info.value)
    assert "task 'loops'" in message
    assert "circular dependency: loops -> cycle_a -> cycle_b -> cycle_a" in message

    with pytest.raises(InvalidDependencyError, match="self_cycle -> self_cycle"):

        @hatchet.task(name="me")
        def me(input: EmptyModel, ctx: Context, m: Annotated[str, Depends(self_cycle)]) -> None:
            pass


def test_a_plain_extra_parameter_is_rejected(hatchet: Hatchet) -> None:
    with pytest.raises(
        InvalidDefinitionError, match="parameter 'extra' of plain is not a dependency"
    ):

        @hatchet.task()
        def plain(input: EmptyModel, ctx: Context, extra: str) -> None:
            pass

    @hatchet.task()
    def defaulted(input: EmptyModel, ctx: Context, extra: str = "x") -> dict[str, str]:
        return {"extra": extra}

    assert defaulted.run() == {"extra": "x"}


def test_a_dependency_with_a_parameter_nothing_fills_is_rejected(hatchet: Hatchet) -> None:
    with pytest.raises(InvalidDependencyError, match="parameter 'extra' of needs -> takes_extra"):

        @hatchet.task()
        def needs(input: EmptyModel, ctx: Context, v: Annotated[str, Depends(takes_extra)]) -> None:
            pass


def test_a_generator_dependency_is_rejected(hatchet: Hatchet) -> None:
    def raw_generator(input: Any, ctx: Context) -> Iterator[str]:
        yield "x"

    def uses(input: EmptyModel, ctx: Context, v: Any) -> None:
        pass

    uses.__annotations__ = {"v": Annotated[str, Depends(raw_generator)]}
    with pytest.raises(InvalidDependencyError, match=r"contextlib.contextmanager"):
        hatchet.task()(uses)


def test_an_annotation_that_does_not_evaluate_is_rejected(hatchet: Hatchet) -> None:
    def local_dep(input: Any, ctx: Context) -> str:
        return "local"

    with pytest.raises(InvalidDependencyError, match="does not evaluate"):

        @hatchet.task()
        def uses_local(
            input: EmptyModel, ctx: Context, v: Annotated[str, Depends(local_dep)]
        ) -> None:
            pass


# -- mock_run ------------------------------------------------------------------------------


def test_mock_run_injects_the_given_dependencies_and_resolves_nothing() -> None:
    client = Hatchet(db=":memory:")

    @client.task()
    def standalone(
        input: EmptyModel,
        ctx: Context,
        s: Annotated[str, Depends(sync_resource)],
        n: Annotated[int, Depends(sync_value)],
    ) -> dict[str, Any]:
        return {"s": s, "n": n}

    wf = client.workflow(name="mocked")

    @wf.task()
    async def in_workflow(
        input: EmptyModel, ctx: Context, a: Annotated[str, Depends(async_resource)]
    ) -> dict[str, str]:
        return {"a": a}

    assert standalone.mock_run(dependencies={"s": "fake", "n": 1}) == {"s": "fake", "n": 1}
    assert asyncio.run(in_workflow.aio_mock_run(dependencies={"a": "fake"})) == {"a": "fake"}
    assert EVENTS == []  # no dependency function ran

    # As in Hatchet, without `dependencies` nothing is resolved: the call lacks them.
    with pytest.raises(TypeError, match=r"dependencies=\{'s': \.\.\., 'n': \.\.\.\}"):
        standalone.mock_run()
    with pytest.raises(TypeError, match="does not resolve `Depends`"):
        asyncio.run(in_workflow.aio_mock_run())
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        asyncio.run(in_workflow.aio_mock_run(dependencies={"a": "x", "nope": 1}))
    assert EVENTS == []


_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)
_session_tasks: list[tuple[str, str]] = []


@asynccontextmanager
async def current_session(input: EmptyModel, ctx: Context) -> AsyncIterator[str]:
    token = _current.set("S")
    entered = asyncio.current_task()
    try:
        yield "S"
    finally:
        _current.reset(token)  # raises if not in the Context it was set in
        _session_tasks.append((str(entered), str(asyncio.current_task())))


def test_an_async_context_manager_exits_in_the_task_it_entered(db_path: str) -> None:
    """A dependency that sets a context variable and resets it on exit (a "current
    session"), or holds a scope bound to its asyncio task, needs its exit in the same
    task as its enter."""
    _session_tasks.clear()
    client = Hatchet(db=db_path)
    try:

        @client.task(name="uses-session")
        async def uses_session(
            input: EmptyModel, ctx: Context, s: Annotated[str, Depends(current_session)]
        ) -> dict[str, object]:
            return {"s": s, "seen": _current.get()}

        assert uses_session.run() == {"s": "S", "seen": "S"}
    finally:
        client.close()
    [(entered, exited)] = _session_tasks
    assert entered == exited
