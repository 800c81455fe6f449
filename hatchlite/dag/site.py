"""Where in the user's code a definition or a call came from (for errors and warnings)."""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from types import FrameType
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


@dataclass(frozen=True, slots=True)
class Site:
    """Where a definition is. `key` identifies the code that made it (module and
    qualified name: the same across a module reload, a re-run notebook cell, or a
    decorator wrapping the function); `where` is the file and line shown in errors."""

    key: tuple[str, str]
    where: str


UNKNOWN_SITE = Site(("", ""), "<unknown>")


def definition_site(fn: Any = None) -> Site:
    """The site of the decorated function `fn`, or else of the first caller outside
    hatchlite."""
    if fn is not None:
        fn = inspect.unwrap(fn)
        code = getattr(fn, "__code__", None)
        if code is not None:
            name = getattr(fn, "__qualname__", code.co_name)
            module = str(getattr(fn, "__module__", "") or "")
            return Site((module, name), f"{code.co_filename}:{code.co_firstlineno} ({name})")
    frame, _ = _user_frame()
    if frame is None:
        return UNKNOWN_SITE
    module = str(frame.f_globals.get("__name__", ""))
    return Site((module, frame.f_code.co_qualname), f"{frame.f_code.co_filename}:{frame.f_lineno}")


def _user_frame() -> tuple[FrameType | None, int]:
    """The innermost frame outside hatchlite, and how many frames up it is."""
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return frame, level


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn`, attributed to the user's line that called into hatchlite."""
    _, level = _user_frame()
    warnings.warn(message, category, stacklevel=level)
