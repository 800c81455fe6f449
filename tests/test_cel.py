"""CEL in durable waits: an expression that can never be a bool is refused when the wait
is created, and one that fails on an event (missing field, payload not an object,
result not a bool) does not match and is logged once per wait condition."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from hatchlite import (
    DurableContext,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    UserEventCondition,
)
from hatchlite.cel import (
    CELResult,
    InvalidCELError,
    check_boolean,
    evaluate,
    non_boolean_reason,
)
from hatchlite.store.durable import ReportedOnce
from tests.conftest import outcome, query, wait_until

pytestmark = pytest.mark.timeout(20)

ARITHMETIC = "an arithmetic expression"


# -- static check ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        # never a bool
        ("input.count + 1", ARITHMETIC),
        ("input.a - input.b", ARITHMETIC),
        ("input.n * 2 % 3", ARITHMETIC),
        ("(input.n / 2)", ARITHMETIC),
        ('input.name + "x"', ARITHMETIC),
        ("-input.n", "a negation (unary minus)"),
        ("1", "an int literal"),
        ("-1", "an int literal"),
        ("1u", "a uint literal"),
        ("1.5", "a double literal"),
        ('"yes"', "a string literal"),
        ('b"yes"', "a bytes literal"),
        ("null", "null"),
        ("[true]", "a list literal"),
        ('{"a": true}', "a map literal"),
        ("size(input.items)", "a call to size(), which returns an int"),
        ("input.items.size()", "a call to .size(), which returns an int"),
        ("int(input.n)", "a call to int(), which returns an int"),
        ("string(input.flag)", "a call to string(), which returns a string"),
        ('timestamp("2024-01-01T00:00:00Z")', "a call to timestamp(), which returns a timestamp"),
        ("type(input)", "a call to type(), which returns a type"),
        ("input.items.map(x, x > 1)", "a call to .map(), which returns a list"),
        ("input.ok ? 1 : 2", "a conditional (?:) whose branches are never boolean"),
        # boolean
        ("true", None),
        ("input.n == 1", None),
        ("input.n + 1 > 2", None),
        ('"a" in input.tags', None),
        ("input.a && input.b", None),
        ("input.a || size(input.b) > 0", None),
        ("!input.done", None),
        ("(input.n != 1)", None),
        ("has(input.amount)", None),
        ('input.name.startsWith("a")', None),
        ('input.name.endsWith("a")', None),
        ('input.name.contains("a")', None),
        ('input.name.matches("^a")', None),
        ("input.items.exists(x, x > 1)", None),
        ("input.items.all(x, x > 1)", None),
        ("input.items.exists_one(x, x > 1)", None),
        ("bool(input.flag)", None),
        # depends on the data: checked when evaluated
        ("input.flag", None),
        ("(input.flag)", None),
        ("input.flags[0]", None),
        ('input.flags["a"]', None),
        ("input.ok ? input.a : input.b", None),
        ("input.ok ? true : 1", None),
        ("dyn(input.flag)", None),
        ("my_function(input)", None),
    ],
)
def test_static_check_classifies_expressions(expression: str, reason: str | None) -> None:
    assert non_boolean_reason(expression) == reason


def test_check_boolean_names_the_expression_and_the_reason() -> None:
    with pytest.raises(InvalidCELError) as info:
        check_boolean("input.count + 1", "condition on event 'order'")
    assert str(info.value) == (
        "condition on event 'order': CEL expression 'input.count + 1' is not boolean: "
        "it is an arithmetic expression"
    )
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidCELError, match=r"^here: invalid CEL expression 'input\.n >'"):
        check_boolean("input.n >", "here")
    check_boolean("input.flag", "here")  # dynamic: accepted


@pytest.mark.parametrize(
    ("expression", "input", "result"),
    [
        ("input.n == 1", {"n": 1}, CELResult(value=True)),
        ("input.n == 1", {"n": 2}, CELResult(value=False)),
        ("input.flag", {"flag": False}, CELResult(value=False)),
        (
            "input.missing == 1",
            {"other": 1},
            CELResult(error="no such member in mapping: 'missing'"),
        ),
        ("input.n", {"n": 3}, CELResult(error="returned int 3, not a bool")),
        ("input.s", {"s": "x"}, CELResult(error='returned string "x", not a bool')),
        ("input.v", {"v": None}, CELResult(error="returned null, not a bool")),
        ("input.x == 1", [1, 2], CELResult(error="a list value does not support field selection")),
        ("input.x == 1", "s", CELResult(error="a string value does not support field selection")),
        ("nope(1)", {}, CELResult(error="undeclared reference to 'nope'")),
        # `||` forgives an error on one side when the other is true, as CEL does
        ("input.missing == 1 || input.n == 1", {"n": 1}, CELResult(value=True)),
    ],
)
def test_evaluate_says_what_went_wrong(expression: str, input: Any, result: CELResult) -> None:
    assert evaluate(expression, {"input": input}) == result
    assert result.ok is (result.error is None)


def test_evaluate_reports_a_parse_error() -> None:
    result = evaluate("input.n >", {"input": {}})
    assert result.value is None
    assert result.error is not None
    assert result.error.startswith("invalid CEL expression 'input.n >'")


def test_reported_conditions_are_bounded() -> None:
    seen = ReportedOnce(size=2)
    assert seen.first(("t", 1, 0))
    assert not seen.first(("t", 1, 0))
    assert seen.first(("t", 1, 1))
    assert seen.first(("t", 2, 0))  # evicts the oldest, ("t", 1, 0)
    assert not seen.first(("t", 2, 0))
    assert seen.first(("t", 1, 0))


# -- durable waits, end to end -------------------------------------------------------


def wait_status(db: str, task_id: str) -> str | None:
    rows = query(
        db, "SELECT status FROM durable_events WHERE task_run_id = ? AND node_id = 1", (task_id,)
    )
    return str(rows[0][0]) if rows else None


def cel_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hatchlite" and r.levelno == logging.WARNING and "CEL" in r.getMessage()
    ]


def waiter(hatchet: Hatchet, expression: str) -> Any:
    @hatchet.durable_task(name="waiter")
    async def wait(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        return {"event": await ctx.aio_wait_for_event("order", expression)}

    return wait


async def test_failing_expression_never_matches_and_is_logged_once(
    hatchet: Hatchet, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hatchlite")
    ref = await waiter(hatchet, "input.missing == 1").aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: wait_status(db_path, task_id) == "PENDING")

    for _ in range(3):
        await hatchet.event.aio_push("order", {"other": 1})
    assert wait_status(db_path, task_id) == "PENDING"
    [warning] = cel_warnings(caplog)
    assert task_id in warning
    assert "'input.missing == 1'" in warning
    assert "no such member in mapping: 'missing'" in warning
    assert "'order'" in warning

    await hatchet.event.aio_push("order", {"missing": 1})
    assert await outcome(ref) == {"event": {"missing": 1}}
    assert len(cel_warnings(caplog)) == 1


async def test_result_that_is_not_a_bool_is_logged(
    hatchet: Hatchet, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hatchlite")
    ref = await waiter(hatchet, "input.flag").aio_run(wait_for_result=False)
    await wait_until(lambda: wait_status(db_path, ref.workflow_run_id) == "PENDING")
    await hatchet.event.aio_push("order", {"flag": 3})
    await hatchet.event.aio_push("order", {"flag": False})  # a bool: no match, no log
    [warning] = cel_warnings(caplog)
    assert "returned int 3, not a bool" in warning
    await hatchet.event.aio_push("order", {"flag": True})
    assert await outcome(ref) == {"event": {"flag": True}}


async def test_a_payload_that_is_not_an_object_is_refused_at_the_push(
    hatchet: Hatchet, db_path: str
) -> None:
    ref = await waiter(hatchet, "input.x == 1").aio_run(wait_for_result=False)
    task_id = ref.workflow_run_id
    await wait_until(lambda: wait_status(db_path, task_id) == "PENDING")
    with pytest.raises(ValueError, match="must be a dict"):
        await hatchet.event.aio_push("order", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got str"):
        await hatchet.event.aio_push("order", "x")  # type: ignore[arg-type]
    assert query(db_path, "SELECT count(*) FROM events") == [(0,)]
    assert wait_status(db_path, task_id) == "PENDING"
    await hatchet.event.aio_push("order", {"x": 1})
    assert await outcome(ref) == {"event": {"x": 1}}


async def test_failing_expression_on_an_earlier_event_is_logged(
    hatchet: Hatchet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hatchlite")
    await hatchet.event.aio_push("order", {"other": 1}, scope="s")
    await hatchet.event.aio_push("order", {"n": 1}, scope="s")

    @hatchet.durable_task()
    async def lookback(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
        event = await ctx.aio_wait_for_event(
            "order", "input.n == 1", scope="s", lookback_window=timedelta(minutes=5)
        )
        return {"event": event}

    assert await outcome(await lookback.aio_run(wait_for_result=False)) == {"event": {"n": 1}}
    [warning] = cel_warnings(caplog)
    assert "no such member in mapping: 'n'" in warning


async def test_a_failing_log_handler_does_not_undo_the_push(hatchet: Hatchet, db_path: str) -> None:
    def broken(record: logging.LogRecord) -> bool:
        raise RuntimeError("log handler broke")

    logger = logging.getLogger("hatchlite")
    ref = await waiter(hatchet, "input.missing == 1").aio_run(wait_for_result=False)
    await wait_until(lambda: wait_status(db_path, ref.workflow_run_id) == "PENDING")
    logger.addFilter(broken)
    try:
        pushed = await hatchet.event.aio_push("order", {"other": 1})
    finally:
        logger.removeFilter(broken)
    assert query(db_path, "SELECT count(*) FROM events WHERE id = ?", (pushed.event_id,)) == [(1,)]
    await hatchet.event.aio_push("order", {"missing": 1})
    assert await outcome(ref) == {"event": {"missing": 1}}


@pytest.mark.parametrize("form", ["wait_for_event", "condition"])
async def test_non_boolean_expression_fails_the_task_at_the_wait(
    hatchet: Hatchet, db_path: str, form: str
) -> None:
    @hatchet.durable_task()
    async def counting(input: EmptyModel, ctx: DurableContext) -> None:
        if form == "wait_for_event":
            await ctx.aio_wait_for_event("order", "input.count + 1")
        else:
            await ctx.aio_wait_for("w", UserEventCondition("order", "input.count + 1"))

    ref = await counting.aio_run(wait_for_result=False)
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await outcome(ref)
    [error] = info.value.exceptions
    assert error.exc_type == "InvalidCELError"
    assert (
        "condition on event 'order': CEL expression 'input.count + 1' is not boolean: "
        "it is an arithmetic expression"
    ) in error.exc
    [(status,)] = query(
        db_path, "SELECT status FROM workflow_runs WHERE id = ?", (ref.workflow_run_id,)
    )
    assert status == "FAILED"
    assert query(db_path, "SELECT count(*) FROM durable_events") == [(0,)]
