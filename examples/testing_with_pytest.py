"""Testing workflows with the pytest plugin: each test gets its own database and a test
clock, and the application's workflows, defined on its module-level `Hatchet()`, run
there. Run it with `pytest examples/testing_with_pytest.py`, or as a script."""

import subprocess
import sys
from datetime import timedelta

import pytest
from pydantic import BaseModel

from hatchlite import Context, DurableContext, Hatchet, UserEventCondition, V1TaskStatus
from hatchlite.testing import HatchetTest

# -- the application (usually a module of its own) --------------------------------------

hatchet = Hatchet()


class Signup(BaseModel):
    email: str


onboarding = hatchet.workflow(name="onboarding", input_validator=Signup)


@onboarding.task()
def create_account(input: Signup, ctx: Context) -> dict[str, str]:
    return {"account": input.email.split("@")[0]}


@onboarding.task(parents=[create_account])
def send_welcome(input: Signup, ctx: Context) -> dict[str, str]:
    return {"sent_to": ctx.task_output(create_account)["account"]}


@hatchet.durable_task(name="trial", input_validator=Signup)
async def trial(input: Signup, ctx: DurableContext) -> dict[str, str]:
    await ctx.aio_sleep_for(timedelta(days=14))  # a two-week trial
    chosen = await ctx.aio_wait_for("plan", UserEventCondition(event_key="plan:chosen"))
    return {"plan": chosen["CREATE"]["plan:chosen"][0]["plan"]}


# -- its tests (usually tests/test_*.py) -------------------------------------------------


@pytest.fixture
def app(hatchet_test: HatchetTest) -> HatchetTest:
    """Usually in conftest.py: every workflow of the application, served in each test."""
    hatchet_test.serve(hatchet)
    return hatchet_test


def test_onboarding_welcomes_the_new_account(app: HatchetTest) -> None:
    result = onboarding.run(Signup(email="ada@example.com"))
    assert result["send_welcome"] == {"sent_to": "ada"}
    assert [run.status for run in app.runs()] == [V1TaskStatus.COMPLETED]


@pytest.mark.asyncio  # not needed with asyncio_mode = "auto"
async def test_the_trial_waits_two_weeks_then_for_a_plan(hatchet_test: HatchetTest) -> None:
    hatchet_test.serve(trial)
    start = hatchet_test.clock.now()
    ref = await trial.aio_run_no_wait(Signup(email="ada@example.com"))
    await hatchet_test.aio_run_until_idle()  # the two weeks pass at once
    assert hatchet_test.clock.now() - start >= timedelta(days=14)
    [run] = await hatchet_test.aio_runs()
    assert run.status == V1TaskStatus.RUNNING  # waiting for the event
    await hatchet_test.aio_push_event("plan:chosen", {"plan": "pro"})
    assert await ref.aio_result() == {"plan": "pro"}


if __name__ == "__main__":
    # pytest in a process of its own: it imports this file again, and one process must
    # not define the same workflows from two modules (`__main__` and this one).
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    code = subprocess.call(command)
    print("pytest exit code", code)  # pytest exit code 0
    sys.exit(code)
