"""The workflows defined on one database in this process, by name.

A name (after namespacing) names one definition: defining a second, different
workflow or standalone task under a taken name raises at definition time, naming both
places, instead of letting one silently run the other's code. Workflow names are
compared case-insensitively, as Hatchet's action ids (`workflow:task`) are.
Running the same definition again (the same source line: a module reloaded, a test
helper called twice, a client re-created on the same file) replaces it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hatchlite.dag.site import definition_site as definition_site
from hatchlite.dag.workflow import WorkflowDefinition
from hatchlite.exceptions import InvalidDefinitionError

W = TypeVar("W", bound=WorkflowDefinition[Any])


class Definitions(dict[str, W]):
    """`name -> workflow`, refusing two different definitions of one name. `version`
    changes whenever a definition is added or replaced."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0
        self._lower: dict[str, str] = {}

    def define(self, workflow: W) -> None:
        name = workflow.name
        taken = self._lower.get(name.lower())
        existing = self.get(taken) if taken is not None else None
        if existing is workflow:
            return
        if existing is not None and existing.defined_at != workflow.defined_at:
            kind = (
                "workflow" if taken == name else f"workflow {taken!r} (names differ only in case)"
            )
            raise InvalidDefinitionError(
                f"two definitions use the {kind} name {name!r}: one at {existing.defined_at}, "
                f"another at {workflow.defined_at}; give one of them another name (name=...)"
            )
        if taken is not None and taken != name:
            del self[taken]
        self[name] = workflow
        self._lower[name.lower()] = name
        self.version += 1
