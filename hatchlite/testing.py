"""Helpers for testing workflows: a clock that tests move by hand."""

from hatchlite.clock import TestClock

__all__ = ["TestClock"]
