"""A program written for Hatchet's SDK, run on hatchlite: the two lines at the top make
`hatchet_sdk` imports give hatchlite (or run the file unchanged with
`python -m hatchlite.compat examples/hatchet_program.py`)."""

from hatchlite import compat

compat.install()

from datetime import timedelta  # noqa: E402

from hatchet_sdk import Context, DurableContext, EmptyModel, Hatchet  # noqa: E402
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus  # noqa: E402

hatchet = Hatchet()  # no token, no server: the database is HATCHLITE_DB or hatchlite.db

greetings = hatchet.workflow(name="greetings")


@greetings.task()
def hello(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"text": "hello"}


@greetings.task(parents=[hello])
def shout(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"text": ctx.task_output(hello)["text"].upper()}


@hatchet.durable_task(name="nap")
async def nap(input: EmptyModel, ctx: DurableContext) -> dict[str, bool]:
    await ctx.aio_sleep_for(timedelta(seconds=1))
    return {"rested": True}


if __name__ == "__main__":
    print(greetings.run())  # {'hello': {'text': 'hello'}, 'shout': {'text': 'HELLO'}}
    ref = nap.run_no_wait()
    print(ref.result())  # {'rested': True}
    print(hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.COMPLETED)  # True
