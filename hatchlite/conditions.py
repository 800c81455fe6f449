"""Conditions for durable waits and task gating: sleep, user event, parent output; `or_` groups."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from hatchlite.ids import new_id
from hatchlite.types import Duration, duration_expr, to_timedelta

if TYPE_CHECKING:
    from hatchlite.dag import Task


class Action(str, Enum):
    CREATE = "CREATE"
    QUEUE = "QUEUE"
    CANCEL = "CANCEL"
    SKIP = "SKIP"


class Condition:
    """Base of all conditions: `base` is the readable data key of what fired."""

    def __init__(self, readable_data_key: str, expression: str | None = None) -> None:
        self.readable_data_key = readable_data_key
        self.expression = expression
        self.action: Action | None = None
        self.or_group_id = new_id()

    @property
    def base(self) -> str:
        return self.readable_data_key


class SleepCondition(Condition):
    def __init__(self, duration: Duration, readable_data_key: str | None = None) -> None:
        self.duration: timedelta = to_timedelta(duration, "sleep duration")
        super().__init__(readable_data_key or f"sleep:{duration_expr(self.duration)}")


class UserEventCondition(Condition):
    def __init__(
        self,
        event_key: str,
        expression: str | None = None,
        readable_data_key: str | None = None,
        scope: str | None = None,
        consider_events_since: datetime | None = None,
    ) -> None:
        self.event_key = event_key
        self.scope = scope
        self.consider_events_since = consider_events_since
        super().__init__(readable_data_key or event_key, expression)


class ParentCondition(Condition):
    def __init__(
        self,
        parent: Task[Any, Any],
        expression: str | None = None,
        readable_data_key: str | None = None,
    ) -> None:
        self.parent = parent
        key = parent.name + (f":{expression}" if expression else "")
        super().__init__(readable_data_key or key, expression)


class OrGroup:
    def __init__(self, conditions: list[Condition]) -> None:
        self.conditions = conditions
        group_id = new_id()
        for condition in conditions:
            condition.or_group_id = group_id


def or_(*conditions: Condition) -> OrGroup:
    """Any one of `conditions` satisfies the group."""
    if not conditions:
        raise ValueError("or_() needs at least one condition")
    return OrGroup(list(conditions))


def flatten(items: list[Condition | OrGroup] | None) -> list[Condition]:
    out: list[Condition] = []
    for item in items or []:
        if isinstance(item, OrGroup):
            out.extend(item.conditions)
        else:
            out.append(item)
    return out
