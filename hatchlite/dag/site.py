"""Where in the user's code a definition or a call came from (for errors and warnings)."""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def definition_site(fn: Any = None) -> str:
    """Where a definition is: the decorated function's file and line, or else the first
    caller outside hatchlite."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        name = getattr(fn, "__qualname__", code.co_name)
        return f"{code.co_filename}:{code.co_firstlineno} ({name})"
    frame, _ = _user_frame()
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


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
