"""`Depends`: values a task function receives beside `(input, ctx)`, computed per attempt.

A parameter annotated `Annotated[T, Depends(fn)]` gets what `fn(input, ctx, **deps)`
returns; `fn` may itself declare `Depends` parameters. A returned context manager (sync
or async) is entered before the task and exited after it, in reverse order of entry.

The shape of a task's dependencies is worked out once, when the task is defined (a
`Dependency` tree; a cycle or a parameter nothing can fill raises there), so that an
attempt only walks the tree. Nothing here does I/O: the caller passes `run_sync`, the
way to run a plain function in a thread.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import typing
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Annotated, Any, Generic, TypeVar

from hatchlite.exceptions import InvalidDefinitionError, InvalidDependencyError

T = TypeVar("T")

logger = logging.getLogger("hatchlite")

DependencyFunc = Callable[
    ..., T | Awaitable[T] | AbstractContextManager[T] | AbstractAsyncContextManager[T]
]
# Runs a no-argument callable in a worker thread (with the caller's context variables).
RunSync = Callable[[Callable[[], Any]], Awaitable[Any]]


class Depends(Generic[T]):
    """Marks a parameter to be filled by `fn(input, ctx, **its_own_dependencies)`:
    `def task(input, ctx, db: Annotated[Session, Depends(get_session)])`.

    `fn` may be `def` (run in a worker thread) or `async def`, and may return a context
    manager, entered before the task and exited after it. It is called afresh for every
    attempt."""

    __slots__ = ("_fn",)

    def __init__(self, fn: DependencyFunc[T]) -> None:
        name = _name(fn)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise InvalidDependencyError(
                f"Dependency function {name} has no signature hatchlite can read: {exc}"
            ) from exc
        if len(sig.parameters) < 2:
            raise InvalidDependencyError(
                f"Dependency function {name} must have at least two parameters: input and "
                f"ctx. Additional parameters can be dependencies."
            )
        self._fn = fn

    @property
    def fn(self) -> DependencyFunc[T]:
        warnings.warn(
            "The fn property is internal and should not be used directly.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._fn

    def __repr__(self) -> str:
        return f"Depends({_name(self._fn)})"


@dataclasses.dataclass(frozen=True, slots=True)
class Dependency:
    """One value to inject: parameter `name` gets what `fn(input, ctx, **deps)` returns
    (what it enters, for a context manager), `deps` resolved first from `dependencies`."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    dependencies: tuple[Dependency, ...]


def task_dependencies(fn: Callable[..., Any], where: str) -> tuple[Dependency, ...]:
    """The dependencies a task function declares, checked: a cycle, a bad dependency
    function or a parameter that is neither a dependency nor defaulted raises here."""
    return _plan(fn, where, (fn,))


def _plan(
    fn: Callable[..., Any], where: str, chain: tuple[Callable[..., Any], ...]
) -> tuple[Dependency, ...]:
    is_task = len(chain) == 1
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ()  # a callable Python cannot describe: nothing to inject
    leading = 0  # how many leading parameters take (input, ctx)
    for param in params[:2]:
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            break
        leading += 1
    if leading < 2 and not any(p.kind is p.VAR_POSITIONAL for p in params):
        raise InvalidDependencyError(
            f"{where}: {_chain(chain)} must take (input, ctx) as its first two positional "
            f"parameters"
        )
    hints = _hints(fn)
    plan: list[Dependency] = []
    for index, param in enumerate(params):
        marker = _marker(fn, param, hints, where)
        if index < leading or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            if marker is not None:
                raise InvalidDependencyError(
                    f"{where}: parameter {param.name!r} of {_name(fn)} cannot be a dependency "
                    f"(the first two parameters are input and ctx, and *args/**kwargs "
                    f"cannot be filled)"
                )
            continue
        if marker is None:
            if param.default is param.empty:
                error = InvalidDefinitionError if is_task else InvalidDependencyError
                raise error(
                    f"{where}: parameter {param.name!r} of {_chain(chain)} is not a "
                    f"dependency: after (input, ctx) a function takes only parameters "
                    f"annotated `Annotated[T, Depends(fn)]` or with a default"
                )
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise InvalidDependencyError(
                f"{where}: dependency parameter {param.name!r} of {_name(fn)} is "
                f"positional-only; dependencies are passed by name"
            )
        plan.append(_dependency(param.name, marker._fn, where, chain))
    return tuple(plan)


def _dependency(
    name: str, fn: Callable[..., Any], where: str, chain: tuple[Callable[..., Any], ...]
) -> Dependency:
    # By identity, not by name: two functions may share a name, one object is one node.
    if any(seen is fn for seen in chain):
        raise InvalidDependencyError(f"{where}: circular dependency: {_chain((*chain, fn))}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise InvalidDependencyError(
            f"{where}: dependency function {_name(fn)} is a generator; decorate it with "
            f"@contextlib.contextmanager or @contextlib.asynccontextmanager to have what it "
            f"yields injected and the rest run after the task"
        )
    # also an object with an `async def __call__`
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    return Dependency(name, fn, is_async, _plan(fn, where, (*chain, fn)))


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        return {}  # an annotation does not evaluate: `_marker` tries them one by one


def _marker(
    fn: Callable[..., Any], param: inspect.Parameter, hints: dict[str, Any], where: str
) -> Depends[Any] | None:
    """The `Depends` in a parameter's annotation, if any (through a type alias, and
    through string annotations of `from __future__ import annotations`)."""
    annotation = hints.get(param.name, param.annotation)
    if isinstance(annotation, str):
        namespace = getattr(inspect.unwrap(fn), "__globals__", {})
        try:
            annotation = eval(annotation, namespace)
        except Exception as exc:
            if "Depends" in annotation:
                raise InvalidDependencyError(
                    f"{where}: the annotation {annotation!r} of parameter {param.name!r} of "
                    f"{_name(fn)} does not evaluate in its module: {exc!r} (a dependency "
                    f"function named in a string annotation, as under `from __future__ "
                    f"import annotations`, must be defined at module level)"
                ) from exc
            return None
    annotation = _unalias(annotation)
    if typing.get_origin(annotation) is not Annotated:
        return None
    for item in annotation.__metadata__:
        if isinstance(item, Depends):
            return item
    return None


def _unalias(annotation: Any) -> Any:
    """`X` of `type X = Annotated[...]` (or `typing_extensions.TypeAliasType`), also
    when subscripted (`X[int]`), as its value."""
    for _ in range(100):  # an alias of an alias ...
        origin = typing.get_origin(annotation) or annotation
        if type(origin).__name__ != "TypeAliasType" or not hasattr(origin, "__value__"):
            return annotation
        annotation = origin.__value__
    return annotation


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", None) or repr(fn))


def _chain(chain: tuple[Callable[..., Any], ...]) -> str:
    return " -> ".join(_name(fn) for fn in chain)


# -- one attempt -------------------------------------------------------------------


async def resolve_dependencies(
    plan: tuple[Dependency, ...],
    input: Any,
    ctx: Any,
    run_sync: RunSync,
    entered: list[Any],
) -> dict[str, Any]:
    """The values of `plan`'s dependencies, by parameter name. Context managers are
    entered and appended to `entered` (the caller exits them with `exit_dependencies`,
    also when this raises)."""
    values: dict[str, Any] = {}
    for dep in plan:
        kwargs = (
            await resolve_dependencies(dep.dependencies, input, ctx, run_sync, entered)
            if dep.dependencies
            else {}
        )
        if dep.is_async:
            value = await dep.fn(input, ctx, **kwargs)
        else:
            value = await run_sync(functools.partial(dep.fn, input, ctx, **kwargs))
            if inspect.isawaitable(value):  # a plain function that returned a coroutine
                value = await value
        values[dep.name] = await _enter(value, run_sync, entered)
    return values


async def _enter(value: Any, run_sync: RunSync, entered: list[Any]) -> Any:
    kind = type(value)
    if hasattr(kind, "__aenter__") and hasattr(kind, "__aexit__"):
        result = await value.__aenter__()
        entered.append(value)
        return result
    if hasattr(kind, "__enter__") and hasattr(kind, "__exit__"):
        result = await run_sync(value.__enter__)
        entered.append(value)
        return result
    return value


async def exit_dependencies(entered: list[Any], run_sync: RunSync, where: str) -> Exception | None:
    """Exit the entered context managers, last entered first, each with no exception
    (as Hatchet does). Every error is logged and the others still exit; the first error
    is returned."""
    first: Exception | None = None
    while entered:
        manager = entered.pop()
        try:
            if hasattr(type(manager), "__aexit__"):
                await manager.__aexit__(None, None, None)
            else:
                await run_sync(functools.partial(manager.__exit__, None, None, None))
        except Exception as exc:
            logger.warning(
                "%s: exiting dependency %r failed: %s: %s", where, manager, type(exc).__name__, exc
            )
            first = first or exc
    return first
