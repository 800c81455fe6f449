"""Durable tasks: `DurableContext`, the durable-event history and its replay."""

from __future__ import annotations

from hatchlite.context import Context


class DurableContext(Context):
    """The context of a durable task."""
