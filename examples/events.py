"""Event-triggered workflows: `on_events` with a wildcard, filters by scope with their
payload, and reading back what an event started."""

from pydantic import BaseModel

from hatchlite import BulkPushEventWithMetadata, Context, DefaultFilter, Hatchet

hatchet = Hatchet()


class Order(BaseModel):  # a triggered run's input is the event's payload
    total: float


# Every order event starts an audit run (a workflow with no filters: one run an event).
audit = hatchet.workflow(name="Audit", on_events=["order:*"], input_validator=Order)


@audit.task()
def record(input: Order, ctx: Context) -> dict[str, object]:
    return {"event": ctx.triggering_event_key, "total": input.total}


# Large orders of the "eu" scope start a review, with the filter's payload.
review = hatchet.workflow(
    name="Review",
    on_events=["order:placed"],
    input_validator=Order,
    default_filters=[
        DefaultFilter(expression="input.total > 100", scope="eu", payload={"queue": "eu-large"})
    ],
)


@review.task()
def assign(input: Order, ctx: Context) -> dict[str, object]:
    return {"queue": ctx.filter_payload["queue"], "by_event": ctx.was_triggered_by_event}


if __name__ == "__main__":
    big = hatchet.event.push("order:placed", {"total": 250}, scope="eu")
    small = hatchet.event.push("order:placed", {"total": 20}, scope="eu")
    hatchet.event.bulk_push(
        [
            BulkPushEventWithMetadata(key="order:shipped", payload={"total": 250}),
            BulkPushEventWithMetadata(key="user:created", payload={"total": 0}),  # no listener
        ]
    )

    # What each event started (runs are created in the push's own transaction).
    started = [len(hatchet.event.get(e.event_id).triggered_runs) for e in (big, small)]
    print(started)  # [2, 1]
    run = hatchet.runs.list(triggering_event_external_id=big.event_id, workflow_ids=[review.id])
    assigned = hatchet.runs.get_run_ref(run.rows[0].metadata.id).result()["assign"]
    print(assigned)  # {'queue': 'eu-large', 'by_event': True}

    audits = hatchet.runs.list(workflow_ids=[audit.id]).rows
    keys = sorted(
        hatchet.runs.get_run_ref(r.metadata.id).result()["record"]["event"] for r in audits
    )
    print(keys)  # ['order:placed', 'order:placed', 'order:shipped']

    # Try a filter expression before creating the filter.
    print(hatchet.cel.debug("input.total > 100", {"total": 20}).result)  # output=False
