"""Checked by mypy in tests/test_typing.py: decorators keep the types users write."""

from pydantic import BaseModel

from hatchlite import Context, DurableContext, EmptyModel, Hatchet

hatchet = Hatchet(db=":memory:")


class In(BaseModel):
    x: int


class Out(BaseModel):
    y: int


@hatchet.task(input_validator=In)
async def async_standalone(input: In, ctx: Context) -> Out:
    return Out(y=input.x)


@hatchet.task()
def sync_standalone(input: EmptyModel, ctx: Context) -> dict[str, int]:
    return {"y": 1}


@hatchet.durable_task()
async def durable_standalone(input: EmptyModel, ctx: DurableContext) -> Out:
    await ctx.aio_now()
    return Out(y=1)


wf = hatchet.workflow(name="typed", input_validator=In)


@wf.task()
async def first(input: In, ctx: Context) -> Out:
    return Out(y=input.x)


@wf.task(parents=[first])
def second(input: In, ctx: Context) -> dict[str, int]:
    return {"z": ctx.task_output(first).y}


def check() -> None:
    out: Out = async_standalone.run(In(x=1))
    plain: dict[str, int] = sync_standalone.run()
    durable: Out = durable_standalone.run()
    first_out: dict[str, int] = second.mock_run(parent_outputs={"first": {"y": 1}})
    result: dict[str, object] = wf.run(In(x=1))
    print(out, plain, durable, first_out, result)
