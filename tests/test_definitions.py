"""Definition-time validation and Hatchet's naming rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hatchlite import (
    Context,
    EmptyModel,
    Hatchet,
    InvalidDefinitionError,
    TaskDefaults,
)


def noop(input: EmptyModel, ctx: Context) -> None:
    return None


def test_task_names_are_lower_cased_and_suffixed(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="MyFlow")

    @wf.task()
    def StepOne(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.task(name="Second", parents=[StepOne])
    def second(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.on_failure_task()
    def OnFail(input: EmptyModel, ctx: Context) -> None:
        return None

    @wf.on_success_task()
    def done(input: EmptyModel, ctx: Context) -> None:
        return None

    assert wf.name == "MyFlow"
    assert [t.name for t in wf.all_tasks] == [
        "stepone",
        "second",
        "done-on-success",
        "onfail-on-failure",
    ]
    shape = wf.shape()
    assert shape.tasks["done-on-success"].parents == ("second",)
    assert shape.tasks["stepone"].descendants == ("second", "done-on-success")


def test_standalone_is_a_one_task_workflow(hatchet: Hatchet) -> None:
    @hatchet.task()
    def SayHi(input: EmptyModel, ctx: Context) -> None:
        return None

    assert SayHi.name == "SayHi"
    assert [t.name for t in SayHi.tasks] == ["sayhi"]
    assert not SayHi.shape().is_dag


def test_duplicate_task_name_is_rejected(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="dup")
    wf.task(name="step")(noop)
    with pytest.raises(InvalidDefinitionError, match=r"workflow 'dup', task 'step': duplicate"):
        wf.task(name="STEP")(noop)


def test_parent_from_another_workflow_is_rejected(hatchet: Hatchet) -> None:
    first = hatchet.workflow(name="first")
    other = hatchet.workflow(name="other")
    parent = first.task(name="p")(noop)
    with pytest.raises(InvalidDefinitionError, match="belongs to workflow 'first'"):
        other.task(name="child", parents=[parent])(noop)


def test_parent_must_be_a_task_defined_earlier(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="order")
    with pytest.raises(InvalidDefinitionError, match="parents must be Task objects"):
        wf.task(name="child", parents=["p"])(noop)  # type: ignore[list-item]
    # A task of this workflow that was never added (e.g. built and discarded) is unknown.
    stray = wf.task(name="a")(noop)
    wf.tasks.remove(stray)
    with pytest.raises(InvalidDefinitionError, match="not a task defined earlier"):
        wf.task(name="b", parents=[stray])(noop)


def test_cycle_is_rejected(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="cyclic")
    a = wf.task(name="a")(noop)
    b = wf.task(name="b", parents=[a])(noop)
    a.parents.append(b)  # only reachable by mutation; still caught before running
    with pytest.raises(InvalidDefinitionError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        wf.shape()


def test_bad_task_function_signature(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="sig")

    def no_ctx(input: EmptyModel) -> None:
        return None

    with pytest.raises(InvalidDefinitionError, match=r"takes \(input, ctx\)"):
        wf.task()(no_ctx)


def test_only_one_on_failure_task(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="onf")
    wf.task(name="a")(noop)
    wf.on_failure_task(name="f1")(noop)
    with pytest.raises(InvalidDefinitionError, match="already has an on_failure task"):
        wf.on_failure_task(name="f2")(noop)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slot_cost": 0}, "slot_cost must be a positive integer"),
        ({"retries": -1}, "retries must be 0 or more"),
        ({"execution_timeout": timedelta(0)}, "timeouts must be positive"),
        ({"execution_timeout": "soon"}, "invalid execution_timeout"),
        ({"backoff_factor": 0}, "backoff_factor must be positive"),
    ],
)
def test_bad_task_parameters(hatchet: Hatchet, kwargs: dict[str, object], message: str) -> None:
    wf = hatchet.workflow(name="params")
    with pytest.raises(InvalidDefinitionError, match=message):
        wf.task(name="t", **kwargs)(noop)  # type: ignore[arg-type]


def test_bad_input_validator(hatchet: Hatchet) -> None:
    with pytest.raises(InvalidDefinitionError, match="input_validator"):
        hatchet.workflow(name="bad", input_validator=object())  # type: ignore[arg-type]


def test_task_defaults_apply_only_where_decorator_default(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(
        name="defaults",
        task_defaults=TaskDefaults(
            execution_timeout=timedelta(seconds=5), retries=3, backoff_factor=2.0
        ),
    )
    a = wf.task(name="a")(noop)
    b = wf.task(name="b", retries=1, execution_timeout=timedelta(seconds=9))(noop)
    # Passing the decorator's own default explicitly still takes the workflow value.
    c = wf.task(name="c", retries=0)(noop)
    onf = wf.on_failure_task()(noop)
    assert (a.retries, a.execution_timeout, a.backoff_factor) == (3, timedelta(seconds=5), 2.0)
    assert (b.retries, b.execution_timeout) == (1, timedelta(seconds=9))
    assert c.retries == 3
    assert (onf.retries, onf.execution_timeout) == (0, timedelta(seconds=60))
    assert a.schedule_timeout == timedelta(minutes=5)


def test_string_durations_are_accepted_with_a_warning(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="strings")
    with pytest.warns(DeprecationWarning):
        t = wf.task(execution_timeout="1m30s")(noop)
    assert t.execution_timeout == timedelta(seconds=90)


def test_namespace_applies_to_workflow_names(db_path: str) -> None:
    from hatchlite import ClientConfig

    client = Hatchet(db=db_path, config=ClientConfig(namespace="Team"))
    try:
        wf = client.workflow(name="Flow")
        assert wf.name == "team_Flow"
        assert client.config.apply_namespace("team_Flow") == "team_Flow"
    finally:
        client.close()


def test_worker_rejects_non_workflows(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="w")
    task = wf.task(name="a")(noop)
    with pytest.raises(TypeError, match="must be Workflow or Standalone"):
        hatchet.worker("w", workflows=[task])
    empty = hatchet.workflow(name="empty")
    with pytest.raises(ValueError, match="at least one task"):
        hatchet.worker("w", workflows=[empty])
