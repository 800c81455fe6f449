"""Retries with backoff, a timeout, and an on-failure task."""

from datetime import timedelta

from hatchlite import (
    Context,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    NonRetryableException,
)

hatchet = Hatchet()

flaky = hatchet.workflow(name="Flaky")


@flaky.task(retries=3, backoff_factor=2, backoff_max_seconds=1)
def call_api(input: EmptyModel, ctx: Context) -> dict[str, int]:
    # Attempts 1 and 2 fail; retry k waits min(backoff_max_seconds, 2**k) s: 1 s each here.
    if ctx.retry_count < 2:
        raise ConnectionError("service unavailable")
    return {"attempts": ctx.attempt_number}


@flaky.task(parents=[call_api], execution_timeout=timedelta(seconds=5))
def validate(input: EmptyModel, ctx: Context) -> dict[str, bool]:
    if ctx.task_output(call_api)["attempts"] > 10:
        raise NonRetryableException("too many attempts; do not retry")
    return {"ok": True}


@flaky.on_failure_task()
def alert(input: EmptyModel, ctx: Context) -> dict[str, list[str]]:
    return {"failed": sorted(ctx.task_run_errors)}


if __name__ == "__main__":
    print(flaky.run())  # {'call_api': {'attempts': 3}, 'validate': {'ok': True}}

    broken = hatchet.workflow(name="Broken")

    @broken.task(retries=1)
    def always_fails(input: EmptyModel, ctx: Context) -> None:
        raise ValueError("bad data")

    try:
        broken.run()
    except FailedTaskRunExceptionGroup as group:
        print(group.exceptions[0].exc_type, group.exceptions[0].exc)  # ValueError bad data
