"""Conditions: a refund workflow that branches on a parent's output, waits for a review
event (or a day), and is cancelled by a rejection event."""

import time
from datetime import timedelta

from pydantic import BaseModel

from hatchlite import (
    Context,
    Hatchet,
    ParentCondition,
    SleepCondition,
    UserEventCondition,
    V1TaskStatus,
    or_,
)

hatchet = Hatchet()


class Refund(BaseModel):
    order_id: str
    amount: float


refund = hatchet.workflow(name="Refund", input_validator=Refund)


@refund.task()
def check(input: Refund, ctx: Context) -> dict[str, bool]:
    return {"large": input.amount > 100}


# Small refunds are approved by the rules; the task is skipped for large ones.
@refund.task(parents=[check], skip_if=[ParentCondition(parent=check, expression="output.large")])
def auto_approve(input: Refund, ctx: Context) -> dict[str, str]:
    return {"approved_by": "rules"}


# Large refunds wait for a review event, or for a day, whichever comes first; a
# rejection event cancels the task (and what follows it).
@refund.task(
    parents=[check],
    skip_if=[ParentCondition(parent=check, expression="!output.large")],
    wait_for=[
        or_(
            UserEventCondition(event_key="refund:reviewed", expression="input.ok == true"),
            SleepCondition(timedelta(days=1)),
        )
    ],
    cancel_if=[UserEventCondition(event_key="refund:rejected")],
)
def manual_approve(input: Refund, ctx: Context) -> dict[str, str]:
    review = ctx.trigger_data.get("refund:reviewed", [{}])[0]
    return {"approved_by": review.get("reviewer", "timeout")}


@refund.task(parents=[auto_approve, manual_approve])
def pay(input: Refund, ctx: Context) -> dict[str, str]:
    path = auto_approve if ctx.was_skipped(manual_approve) else manual_approve
    return {"paid": input.order_id, "approved_by": ctx.task_output(path)["approved_by"]}


def wait_until_checked(run_id: str) -> None:
    """A condition's timer starts, and its events count, once the task's parents are
    done: here, once `check` completed."""
    while True:
        task = hatchet.runs.get_details(run_id).task_runs["check"]
        if task.status == V1TaskStatus.COMPLETED:
            return
        time.sleep(0.01)


if __name__ == "__main__":
    small = refund.run(Refund(order_id="A-1", amount=20))
    print(small["pay"])  # {'paid': 'A-1', 'approved_by': 'rules'}

    large = refund.run_no_wait(Refund(order_id="B-2", amount=500))
    wait_until_checked(large.workflow_run_id)
    hatchet.event.push("refund:reviewed", {"ok": True, "reviewer": "ana"})
    result = large.result()
    print(result["auto_approve"], result["pay"]["approved_by"])  # {'skipped': True} ana

    rejected = refund.run_no_wait(Refund(order_id="C-3", amount=900))
    wait_until_checked(rejected.workflow_run_id)
    hatchet.event.push("refund:rejected", {})
    try:
        rejected.result()  # a cancelled run raises here (Hatchet's rule for result())
    except ValueError:
        print(hatchet.runs.get_status(rejected.workflow_run_id).value)  # CANCELLED
