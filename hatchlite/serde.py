"""The pydantic context hatchlite passes whenever it stores or loads a workflow's inputs
and tasks' outputs, as Hatchet does: a model's validators and serializers can tell
hatchlite's (de)serialization from the program's own, and encode what is stored (Hatchet's
`serde` example compresses a field this way)."""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

logger = logging.getLogger("hatchlite")

HATCHET_PYDANTIC_SENTINEL = MappingProxyType({"is_hatchet_serialization_context": True})
"""The `context` given to pydantic; test for it with `is_in_hatchet_serialization_context`."""


def is_in_hatchet_serialization_context(context: Any) -> bool:
    """Whether a pydantic validator or serializer runs for hatchlite (pass it
    `info.context`, not `info`)."""
    if context == HATCHET_PYDANTIC_SENTINEL:
        return True
    if hasattr(context, "context"):
        logger.warning(
            "is_in_hatchet_serialization_context was given an object with a `context` "
            "attribute (the ValidationInfo itself?): pass info.context"
        )
    return False
