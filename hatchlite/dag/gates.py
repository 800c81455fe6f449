"""A task's `wait_for`, `skip_if` and `cancel_if` conditions: checked when the task is
declared, and turned into the data the store gates the task with.

Nothing here does I/O. A bad condition raises `InvalidDefinitionError` naming the
workflow, the task and what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hatchlite.cel import InvalidCELError, check_boolean
from hatchlite.conditions import Condition, ParentCondition, SleepCondition, UserEventCondition
from hatchlite.exceptions import InvalidDefinitionError
from hatchlite.store.records import ConditionDef

if TYPE_CHECKING:
    from hatchlite.dag.task import Task

ACTIONS = (("QUEUE", "wait_for"), ("SKIP", "skip_if"), ("CANCEL", "cancel_if"))


def check_conditions(
    where: str,
    ancestors: set[str],
    actions: dict[str, list[Condition]],
) -> None:
    """Refuse what can never work: an unknown condition type, a CEL expression that
    does not compile or can never be a bool, a parent condition on a task that is not
    upstream, an event condition without a key, a negative sleep."""
    keys: list[str] = []
    for param, conditions in actions.items():
        for cond in conditions:
            if not isinstance(cond, Condition):
                raise InvalidDefinitionError(
                    f"{where}, {param}: {cond!r} is not a condition; use SleepCondition, "
                    f"UserEventCondition, ParentCondition or or_(...)"
                )
            what = f"{where}, {param} condition {cond.readable_data_key!r}"
            keys.append(cond.readable_data_key)
            if isinstance(cond, SleepCondition):
                if cond.duration.total_seconds() < 0:
                    raise InvalidDefinitionError(f"{what}: a sleep cannot be negative")
            elif isinstance(cond, UserEventCondition):
                if not cond.event_key:
                    raise InvalidDefinitionError(f"{what}: an event condition needs a key")
                since = cond.consider_events_since
                if since is not None and since.tzinfo is None:
                    raise InvalidDefinitionError(
                        f"{what}: consider_events_since must be timezone-aware"
                    )
            elif isinstance(cond, ParentCondition):
                if cond.parent.name not in ancestors:
                    raise InvalidDefinitionError(
                        f"{what}: task {cond.parent.name!r} is not upstream of this task "
                        f"(list it in parents=, directly or through another parent)"
                    )
            else:
                raise InvalidDefinitionError(
                    f"{what}: not a condition ({type(cond).__name__}); use SleepCondition, "
                    f"UserEventCondition, ParentCondition or or_(...)"
                )
            if cond.expression:
                try:
                    check_boolean(cond.expression, what)
                except InvalidCELError as exc:
                    raise InvalidDefinitionError(str(exc)) from exc
    if len(keys) != len(set(keys)):
        raise InvalidDefinitionError(
            f"{where}: conditions need distinct readable_data_keys, got {keys}"
        )


def condition_defs(
    task: Task[Any, Any], namespace: Callable[[str], str]
) -> tuple[ConditionDef, ...]:
    """The conditions of `task` as data: an `or_` group's members share a group number;
    every other condition is a group of its own."""
    out: list[ConditionDef] = []
    groups: dict[str, int] = {}
    for action, conditions in (
        ("QUEUE", task.wait_for),
        ("SKIP", task.skip_if),
        ("CANCEL", task.cancel_if),
    ):
        for cond in conditions:
            group = groups.setdefault(f"{action}:{cond.or_group_id}", len(groups))
            out.append(_condition_def(action, group, cond, namespace))
    return tuple(out)


def _condition_def(
    action: str, group: int, cond: Condition, namespace: Callable[[str], str]
) -> ConditionDef:
    key = cond.readable_data_key
    if isinstance(cond, SleepCondition):
        return ConditionDef(action, group, "SLEEP", key, duration=cond.duration.total_seconds())
    if isinstance(cond, UserEventCondition):
        since = cond.consider_events_since
        return ConditionDef(
            action,
            group,
            "EVENT",
            key,
            event_key=namespace(cond.event_key),
            expression=cond.expression or None,
            scope=cond.scope,
            since=since.timestamp() if since is not None else None,
        )
    assert isinstance(cond, ParentCondition)
    return ConditionDef(
        action, group, "PARENT", key, expression=cond.expression or None, parent=cond.parent.name
    )
