"""CEL expressions (cel-python): compiled once, evaluated against JSON data."""

from __future__ import annotations

import functools
import logging
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from hatchlite.exceptions import HatchliteError

logging.getLogger("celpy").setLevel(logging.ERROR)
_ENV = celpy.Environment()


class InvalidCELError(HatchliteError, ValueError):
    """A CEL expression does not parse."""


@functools.lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Any:
    """A runnable program for `expression`; raises InvalidCELError naming the problem."""
    try:
        return _ENV.program(_ENV.compile(expression))
    except Exception as exc:
        raise InvalidCELError(f"invalid CEL expression {expression!r}: {exc}") from exc


def check(expression: str, where: str) -> None:
    try:
        compile_expression(expression)
    except InvalidCELError as exc:
        raise InvalidCELError(f"{where}: {exc}") from exc


def evaluate_bool(expression: str, variables: dict[str, Any]) -> bool:
    """True only when `expression` evaluates to boolean true; errors count as false."""
    program = compile_expression(expression)
    activation = {name: json_to_cel(value) for name, value in variables.items()}
    try:
        result = program.evaluate(activation)
    except Exception:
        return False
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)
