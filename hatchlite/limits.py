"""Flow control decisions, apart from the SQL that applies them (store/concurrency.py):
what a definition's limits are as data, and the keys a run's limits use.

Concurrency keys are CEL over `input`, `additional_metadata` and `workflow_run_id`,
evaluated once, when the run is triggered, and stored with it. An expression that is a
plain member path (`input.user_id`, `additional_metadata.tenant`) or a string literal
(`'constant'`) is read directly, without cel-python (150-400 µs an evaluation); any
other expression, and any path whose value is not a string, goes through cel-python,
so both give the same answer (tests/test_concurrency.py checks it on generated data).

The strategies, per key of one limit (Hatchet's engine semantics):
- GROUP_ROUND_ROBIN: the first `max_runs` holders in arrival order run; the others
  wait, holding no slot, and are admitted one by one, oldest first, as holders end.
  Keys are independent, so a key with a thousand waiting runs delays another key's run
  by at most the `max_runs` runs it has admitted.
- CANCEL_IN_PROGRESS: a new arrival is admitted, and the oldest holders over
  `max_runs` are cancelled, running ones included.
- CANCEL_NEWEST: a new arrival is admitted while fewer than `max_runs` hold the key,
  else it is cancelled.
A list of limits admits in order: a run waits in the second once the first admitted it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hatchlite.cel import InvalidCELError, check, describe, evaluate_value
from hatchlite.exceptions import HatchliteError
from hatchlite.store.records import (
    ConcurrencySpec,
    IdempotencySpec,
    NewRun,
    RateLimitSpec,
    WorkflowShape,
)
from hatchlite.types import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    RateLimit,
    RateLimitDuration,
    StatusBasedIdempotencyConfig,
    TTLBasedIdempotencyConfig,
)

ENFORCED_STRATEGIES = (
    ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
    ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS,
    ConcurrencyLimitStrategy.CANCEL_NEWEST,
)


class LimitKeyError(HatchliteError, ValueError):
    """A limit's key expression failed on a run's data, or gave something that is not a
    string: the trigger is refused and nothing is stored."""


class RateLimitError(LimitKeyError):
    """A task's rate limit cannot be used: an unknown static key, units above the
    limit, or a CEL key, units or limit that fails on the run's data."""


WINDOWS = {
    RateLimitDuration.SECOND: 1.0,
    RateLimitDuration.MINUTE: 60.0,
    RateLimitDuration.HOUR: 3600.0,
    RateLimitDuration.DAY: 86400.0,
    RateLimitDuration.WEEK: 7 * 86400.0,
    RateLimitDuration.MONTH: 30 * 86400.0,
    RateLimitDuration.YEAR: 365 * 86400.0,
}


# -- definitions ------------------------------------------------------------------------


def concurrency_specs(
    limits: Sequence[ConcurrencyExpression], where: str
) -> tuple[ConcurrencySpec, ...]:
    """Check a definition's concurrency limits (CEL parses, `max_runs` positive, a
    strategy hatchlite enforces) and return them as data; raises InvalidCELError or
    ValueError naming `where`."""
    specs = []
    for limit in limits:
        if not isinstance(limit, ConcurrencyExpression):
            raise ValueError(f"{where}: concurrency takes ConcurrencyExpression, got {limit!r}")
        check(limit.expression, f"{where}: concurrency key")
        if isinstance(limit.max_runs, bool) or not isinstance(limit.max_runs, int):
            raise ValueError(
                f"{where}: concurrency max_runs must be an int, got {limit.max_runs!r}"
            )
        if limit.max_runs <= 0:
            raise ValueError(
                f"{where}: concurrency max_runs must be positive, got {limit.max_runs}"
            )
        strategy = ConcurrencyLimitStrategy(limit.limit_strategy)
        if strategy not in ENFORCED_STRATEGIES:
            raise ValueError(
                f"{where}: concurrency strategy {strategy.value} is deprecated in Hatchet and "
                f"not supported by hatchlite; use GROUP_ROUND_ROBIN, CANCEL_IN_PROGRESS or "
                f"CANCEL_NEWEST"
            )
        specs.append(ConcurrencySpec(limit.expression, limit.max_runs, strategy.value))
    return tuple(specs)


def rate_limit_specs(limits: Sequence[RateLimit], where: str) -> tuple[RateLimitSpec, ...]:
    """Check a task's rate limits (CEL parses; static units within a static limit) and
    return them as data; raises ValueError naming `where`."""
    specs = []
    for limit in limits:
        if not isinstance(limit, RateLimit):
            raise ValueError(f"{where}: rate_limits takes RateLimit, got {limit!r}")
        if not limit.static_key and not limit.dynamic_key:
            raise ValueError(f"{where}: a RateLimit needs a static_key or a dynamic_key")
        if limit.dynamic_key:
            check(limit.dynamic_key, f"{where}: rate limit dynamic_key")
        for name, value in (("units", limit.units), ("limit", limit.limit)):
            if isinstance(value, str):
                check(value, f"{where}: rate limit {name}")
        if isinstance(limit.units, int) and limit.units < 1:
            raise ValueError(f"{where}: rate limit units must be at least 1, got {limit.units}")
        fixed = isinstance(limit.units, int) and isinstance(limit.limit, int)
        if fixed and int(limit.units) > int(limit.limit or 0):
            raise ValueError(
                f"{where}: rate limit {limit.static_key or limit.dynamic_key!r} takes "
                f"{limit.units} units but its limit is {limit.limit}: the task could never run"
            )
        specs.append(
            RateLimitSpec(
                limit.static_key or None,
                limit.dynamic_key or None,
                limit.units,
                limit.limit,
                WINDOWS[RateLimitDuration(limit.duration)],
            )
        )
    return tuple(specs)


# -- keys at trigger time -------------------------------------------------------------

_SPACE = "[ \t\n\f\r]*"  # CEL's whitespace
_PATH = re.compile(_SPACE + r"(input|additional_metadata)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)" + _SPACE)
_LITERAL = re.compile(_SPACE + r"""(?:'([^'\\\n]*)'|"([^"\\\n]*)")""" + _SPACE)
# Words CEL reserves: never a field name after a dot.
_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()


def key_value(expression: str, variables: dict[str, Any]) -> Any:
    """The value of a key expression, or raises LimitKeyError's message as ValueError.

    A member path or a string literal is read directly when it yields a string; all
    else is evaluated by cel-python."""
    fast = _fast(expression, variables)
    if isinstance(fast, str):
        return fast
    value, error = evaluate_value(expression, variables)
    if error is not None:
        raise ValueError(error)
    return value


def _fast(expression: str, variables: dict[str, Any]) -> Any:
    """The value of a literal or member path read directly, or _MISSING when only
    cel-python can say (also when the data holds an int cel-python cannot hold: it
    refuses the whole activation then)."""
    literal = _LITERAL.fullmatch(expression)
    path = None if literal is not None else _PATH.fullmatch(expression)
    if literal is None and path is None:
        return _MISSING
    if not all(_fits_cel(value) for value in variables.values()):
        return _MISSING
    if literal is not None:
        return literal.group(1) if literal.group(1) is not None else literal.group(2)
    assert path is not None
    parts = path.group(2)[1:].split(".")
    if _RESERVED.intersection(parts):
        return _MISSING
    value: Any = variables.get(path.group(1), _MISSING)
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _fits_cel(value: Any) -> bool:
    """Whether cel-python can take `value` (no int beyond 64 bits, at any depth)."""
    if isinstance(value, dict):
        return all(_fits_cel(v) for v in value.values())
    if isinstance(value, list):
        return all(_fits_cel(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _INT64[0] <= value <= _INT64[1]
    return True


def string_key(expression: str, variables: dict[str, Any], what: str) -> str:
    """A key that must be a string; raises LimitKeyError naming `what` otherwise."""
    try:
        value = key_value(expression, variables)
    except ValueError as exc:
        raise LimitKeyError(f"{what}: CEL expression {expression!r} failed: {exc}") from None
    if not isinstance(value, str):
        raise LimitKeyError(
            f"{what}: CEL expression {expression!r} gave {describe(value)}, not a string"
        )
    return value


def idempotency_spec(config: Any, where: str) -> IdempotencySpec | None:
    """A workflow's `idempotency=` as data; raises ValueError naming `where`."""
    if config is None:
        return None
    if isinstance(config, TTLBasedIdempotencyConfig):
        ttl, until_done = config.ttl, False
    elif isinstance(config, StatusBasedIdempotencyConfig):
        ttl, until_done = config.fallback_ttl, True
    else:
        raise ValueError(
            f"{where}: idempotency takes TTLBasedIdempotencyConfig or "
            f"StatusBasedIdempotencyConfig, got {config!r}"
        )
    check(config.key_expression, f"{where}: idempotency key_expression")
    if ttl.total_seconds() <= 0:
        raise ValueError(f"{where}: the idempotency ttl must be positive, got {ttl}")
    return IdempotencySpec(config.key_expression, ttl.total_seconds(), until_done)


def key_run(shape: WorkflowShape, run: NewRun) -> None:
    """Evaluate a new run's keys (concurrency, idempotency) from its input and
    metadata, once; raises LimitKeyError for a key that fails or is not a string."""
    if run.keyed:
        return
    run.limit_keys = concurrency_keys(shape, run.input_json, run.metadata_json, run.run_id)
    if shape.idempotency is not None:
        variables = run_variables(run.input_json, run.metadata_json, run.run_id)
        run.idempotency_key = string_key(
            shape.idempotency.key_expression,
            variables,
            f"workflow {shape.name!r}: idempotency key_expression",
        )
    run.keyed = True


def concurrency_keys(
    shape: WorkflowShape, input_json: str, metadata_json: str, run_id: str
) -> dict[str, list[str]] | None:
    """The keys of every concurrency limit of a new run of `shape` ("" for the
    workflow's, else by task name), or None if it has none. Raises LimitKeyError."""
    if not shape.limited:
        return None
    variables = run_variables(input_json, metadata_json, run_id)
    keys: dict[str, list[str]] = {}
    scopes: Iterable[tuple[str, tuple[ConcurrencySpec, ...]]] = [
        ("", shape.concurrency),
        *((t.name, t.concurrency) for t in shape.tasks.values()),
        *([(shape.on_failure.name, shape.on_failure.concurrency)] if shape.on_failure else []),
    ]
    for scope, specs in scopes:
        if specs:
            what = f"workflow {shape.name!r}" + (f", task {scope!r}" if scope else "")
            keys[scope] = [
                string_key(spec.expression, variables, f"{what}: concurrency key") for spec in specs
            ]
    return keys


def run_variables(
    input_json: str, metadata_json: str, run_id: str, parents: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What key expressions see: `input`, `additional_metadata`, `workflow_run_id` (and
    for rate limits `parents`, the outputs of the task's parents by name)."""
    variables: dict[str, Any] = {
        "input": json.loads(input_json) if input_json else {},
        "additional_metadata": json.loads(metadata_json) if metadata_json else {},
        "workflow_run_id": run_id,
    }
    if parents is not None:
        variables["parents"] = parents
    return variables


@dataclass(frozen=True, slots=True)
class RateLimitUse:
    """One rate limit a queued task run takes units of: its rendered key and units,
    and for a dynamic key the limit and window it declares."""

    key: str
    units: int
    limit: int | None  # None: a static key (its limit is what `rate_limits.put` set)
    window: float


def rate_limit_uses(
    specs: tuple[RateLimitSpec, ...], variables: dict[str, Any], what: str
) -> list[RateLimitUse]:
    """Render a task's rate limits for one run; raises RateLimitError."""
    uses = []
    for spec in specs:
        if spec.static_key is not None:
            key = spec.static_key
        else:
            key = _rendered(str(spec.dynamic_key), variables, f"{what}: rate limit dynamic_key")
            if not isinstance(key, str):
                raise RateLimitError(
                    f"{what}: rate limit dynamic_key {spec.dynamic_key!r} gave "
                    f"{describe(key)}, not a string"
                )
        units = _int(spec.units, variables, f"{what}: rate limit {key!r} units")
        limit = (
            None
            if spec.static_key is not None
            else _int(spec.limit, variables, f"{what}: rate limit {key!r} limit")
        )
        if units < 1:
            raise RateLimitError(
                f"{what}: rate limit {key!r} units must be at least 1, got {units}"
            )
        if limit is not None and units > limit:
            raise RateLimitError(
                f"{what}: rate limit {key!r} takes {units} units but its limit is {limit}: "
                f"the task could never run"
            )
        uses.append(RateLimitUse(key, units, limit, spec.window))
    return uses


def _rendered(expression: str, variables: dict[str, Any], what: str) -> Any:
    try:
        return key_value(expression, variables)
    except ValueError as exc:
        raise RateLimitError(f"{what}: CEL expression {expression!r} failed: {exc}") from None


def _int(value: str | int | None, variables: dict[str, Any], what: str) -> int:
    """A whole number that SQLite can store (64 bits)."""
    if isinstance(value, str):
        value = _rendered(value, variables, what)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RateLimitError(f"{what} must be an integer, got {_shown(value)}")
    if value in (float("inf"), float("-inf")) or value != int(value):
        raise RateLimitError(f"{what} must be an integer, got {_shown(value)}")
    if not _INT64[0] <= int(value) <= _INT64[1]:
        raise RateLimitError(f"{what} is out of range (64-bit integers), got {_shown(value)}")
    return int(value)


def _shown(value: Any) -> str:
    try:
        return describe(value)
    except Exception:
        return repr(value)


__all__ = [
    "ENFORCED_STRATEGIES",
    "InvalidCELError",
    "LimitKeyError",
    "RateLimitError",
    "RateLimitUse",
    "concurrency_keys",
    "concurrency_specs",
    "idempotency_spec",
    "key_run",
    "key_value",
    "rate_limit_specs",
    "rate_limit_uses",
    "string_key",
]
