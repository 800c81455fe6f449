"""CEL expressions (cel-python): compiled once, evaluated against JSON data.

`check_boolean` refuses, when a condition is declared, an expression that can never be
a bool (`input.count + 1`); `evaluate` says what went wrong when one fails on real data
(a missing field, a payload that is not an object, a result that is not a bool) instead
of treating it as a quiet "no match"."""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import CELJSONEncoder, json_to_cel
from celpy.evaluation import CELEvalError

from hatchlite.exceptions import HatchliteError

logging.getLogger("celpy").setLevel(logging.ERROR)
_ENV = celpy.Environment()


class InvalidCELError(HatchliteError, ValueError):
    """A CEL expression does not parse, or can never evaluate to a bool."""


@dataclass(frozen=True, slots=True)
class CELResult:
    """What evaluating an expression gave: `value` (a bool) on success, else `error`
    saying why it has no bool value (the shape of Hatchet's `cel.debug` success/failure)."""

    value: bool | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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


def check_boolean(expression: str, where: str) -> None:
    """Raise InvalidCELError (prefixed with `where`) if `expression` does not parse or can
    never evaluate to a bool. Expressions whose type depends on the data (`input.flag`)
    pass, and are checked when evaluated."""
    check(expression, where)
    reason = non_boolean_reason(expression)
    if reason is not None:
        raise InvalidCELError(
            f"{where}: CEL expression {expression!r} is not boolean: it is {reason}"
        )


def evaluate(expression: str, variables: dict[str, Any]) -> CELResult:
    """Evaluate `expression` with `variables` (JSON values). Never raises: a parse error,
    an evaluation error or a result that is not a bool comes back as `error`."""
    result, error = _run(expression, variables)
    if error is not None:
        return CELResult(error=error)
    if isinstance(result, bool | celtypes.BoolType):
        return CELResult(value=bool(result))
    if result is None:
        return CELResult(error="returned null, not a bool")
    return CELResult(error=f"returned {_cel_type(result)} {_show(result)}, not a bool")


def evaluate_value(expression: str, variables: dict[str, Any]) -> tuple[Any, str | None]:
    """Evaluate `expression` to a plain value: (a str, int, float, bool, None, list or
    dict, None) on success, (None, why it failed) on an error."""
    result, error = _run(expression, variables)
    if error is not None:
        return None, error
    return _plain(result), None


def describe(value: Any) -> str:
    """`value`'s CEL type and a short rendering of it ("int 3"), for error messages."""
    return f"{_cel_type(json_to_cel(value))} {_show(json_to_cel(value))}"


def _run(expression: str, variables: dict[str, Any]) -> tuple[Any, str | None]:
    try:
        program = compile_expression(expression)
    except InvalidCELError as exc:
        return None, str(exc)
    try:
        activation = {name: json_to_cel(value) for name, value in variables.items()}
        result = program.evaluate(activation)
    except CELEvalError as exc:  # cel-python raises or returns it, depending on version
        return None, _eval_error_text(exc)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
    if isinstance(result, CELEvalError):
        return None, _eval_error_text(result)
    return result, None


def _plain(value: Any) -> Any:
    """A CEL value as plain Python (bool before int: CEL's bool is not an int there)."""
    if value is None or isinstance(value, bool | celtypes.BoolType):
        return value if value is None else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, celtypes.MapType):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [_plain(v) for v in value]
    return json.loads(json.dumps(value, cls=CELJSONEncoder))


# -- evaluation errors -------------------------------------------------------------

_MAX_ERROR = 300
_CEL_TYPE_NAMES: dict[type, str] = {
    celtypes.BoolType: "bool",
    celtypes.IntType: "int",
    celtypes.UintType: "uint",
    celtypes.DoubleType: "double",
    celtypes.StringType: "string",
    celtypes.BytesType: "bytes",
    celtypes.ListType: "list",
    celtypes.MapType: "map",
    celtypes.TimestampType: "timestamp",
    celtypes.DurationType: "duration",
    type(None): "null",
}
# "<value repr> with type: '<class 'celpy.celtypes.ListType'>' does not support ..."
_CELPY_VALUE = re.compile(r"(?s)^.*? with type: '<class '(?:celpy\.celtypes\.)?(\w+?)Type'>'")


def _cel_type(value: Any) -> str:
    if isinstance(value, type):
        return "type"
    for cls, name in _CEL_TYPE_NAMES.items():
        if isinstance(value, cls):
            return name
    return type(value).__name__


def _celpy_type_name(name: str) -> str:
    return "null" if name == "None" else name.lower()


def _show(value: Any) -> str:
    if isinstance(value, type):
        return _CEL_TYPE_NAMES.get(value, value.__name__)
    try:
        text = json.dumps(value, cls=CELJSONEncoder)
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _eval_error_text(exc: CELEvalError) -> str:
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    # "undeclared reference to 'f' (in activation '<every variable and function>')"
    message = message.split(" (in activation", 1)[0]
    message = _CELPY_VALUE.sub(lambda m: f"a {_celpy_type_name(m.group(1))} value", message)
    return message if len(message) <= _MAX_ERROR else message[: _MAX_ERROR - 3] + "..."


# -- static check: can the expression ever be a bool? -------------------------------

# Functions and methods whose result is never a bool, with what they return.
_NON_BOOL_CALLS = {
    "size": "an int",
    "int": "an int",
    "uint": "a uint",
    "double": "a double",
    "string": "a string",
    "bytes": "bytes",
    "timestamp": "a timestamp",
    "duration": "a duration",
    "type": "a type",
    "map": "a list",  # the macro `list.map(x, f)`
    "filter": "a list",
    **dict.fromkeys(
        [
            "getDate",
            "getDayOfMonth",
            "getDayOfWeek",
            "getDayOfYear",
            "getFullYear",
            "getHours",
            "getMilliseconds",
            "getMinutes",
            "getMonth",
            "getSeconds",
        ],
        "an int",
    ),
}
_BOOL_CALLS = {"has", "bool", "matches", "startsWith", "endsWith", "contains"}
_BOOL_MACROS = {"exists", "all", "exists_one"}
_LITERALS = {
    "INT_LIT": "an int literal",
    "UINT_LIT": "a uint literal",
    "FLOAT_LIT": "a double literal",
    "STRING_LIT": "a string literal",
    "MLSTRING_LIT": "a string literal",
    "BYTES_LIT": "a bytes literal",
    "NULL_LIT": "null",
}
_BOOL = "bool"
_DYNAMIC = "dynamic"


@functools.lru_cache(maxsize=1024)
def non_boolean_reason(expression: str) -> str | None:
    """Why `expression` can never evaluate to a bool ("an arithmetic expression"), or None
    when it is boolean or its type depends on the data. Raises InvalidCELError if it does
    not parse."""
    try:
        tree = _ENV.compile(expression)
    except Exception as exc:
        raise InvalidCELError(f"invalid CEL expression {expression!r}: {exc}") from exc
    kind = _static_kind(tree)
    return None if kind in (_BOOL, _DYNAMIC) else kind


def _static_kind(node: Any) -> str:
    """`_BOOL`, `_DYNAMIC`, or a description of a type that is certainly not bool.

    Walks cel-python's Lark tree: expr > conditionalor > conditionaland > relation >
    addition > multiplication > unary > member > primary, where a rule with a single
    child of the next level only passes it through."""
    rule, kids = node.data, node.children
    if rule == "expr" and len(kids) == 3:  # cond ? a : b
        branches = [_static_kind(kids[1]), _static_kind(kids[2])]
        if any(kind in (_BOOL, _DYNAMIC) for kind in branches):
            return _DYNAMIC
        return "a conditional (?:) whose branches are never boolean"
    if rule in ("conditionalor", "conditionaland", "relation") and len(kids) == 2:
        return _BOOL  # ||, && and comparisons (== != < <= > >= in)
    if rule in ("addition", "multiplication") and len(kids) == 2:
        return "an arithmetic expression"
    if rule == "unary" and len(kids) == 2:
        return _BOOL if kids[0].data == "unary_not" else "a negation (unary minus)"
    if rule == "member_dot_arg":  # receiver.method(args)
        return _call_kind(str(kids[1]), method=True)
    if rule in ("member_dot", "member_index", "member_object", "ident", "dot_ident"):
        return _DYNAMIC
    if rule in ("ident_arg", "dot_ident_arg"):
        return _call_kind(str(kids[0]), method=False)
    if rule == "literal":
        token = kids[0]
        return _BOOL if token.type == "BOOL_LIT" else _LITERALS.get(token.type, _DYNAMIC)
    if rule == "list_lit":
        return "a list literal"
    if rule == "map_lit":
        return "a map literal"
    if len(kids) == 1 and hasattr(kids[0], "data"):
        return _static_kind(kids[0])  # a pass-through level, or ( ... )
    return _DYNAMIC


def _call_kind(name: str, method: bool) -> str:
    if name in _BOOL_CALLS or (method and name in _BOOL_MACROS):
        return _BOOL
    returns = _NON_BOOL_CALLS.get(name)
    if returns is None:
        return _DYNAMIC  # unknown: fails (and is reported) when evaluated
    shown = f".{name}()" if method else f"{name}()"
    return f"a call to {shown}, which returns {returns}"
