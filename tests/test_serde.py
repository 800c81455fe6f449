"""The pydantic serialization context (`hatchlite.serde`, Hatchet's `hatchet_sdk.serde`)
is given wherever hatchlite stores or loads inputs and outputs."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer, ValidationInfo, model_validator

from hatchlite import Context, DurableContext, EmptyModel, Hatchet
from hatchlite.serde import is_in_hatchet_serialization_context
from tests.conftest import query, wait_until

seen: list[tuple[str, bool]] = []


def pack(value: str, info: Any) -> str:
    inside = is_in_hatchet_serialization_context(info.context)
    seen.append(("dump", inside))
    return f"PACKED:{value}" if inside else value


class Packed(BaseModel):
    text: Annotated[str, PlainSerializer(pack, str)]

    @model_validator(mode="before")
    @classmethod
    def unpack(cls, data: Any, info: ValidationInfo) -> Any:
        inside = is_in_hatchet_serialization_context(info.context)
        seen.append(("load", inside))
        if inside and isinstance(data, dict) and data["text"].startswith("PACKED:"):
            data = {"text": data["text"].removeprefix("PACKED:")}
        return data


def test_inputs_and_outputs_round_trip_through_the_context(db_path: str) -> None:
    client = Hatchet(db=db_path)
    wf = client.workflow(name="packed", input_validator=Packed)

    @wf.task()
    def model_out(input: Packed, ctx: Context) -> Packed:
        return Packed(text=input.text + "!")

    @wf.task()
    def dict_out(input: Packed, ctx: Context) -> dict[str, Packed]:
        return {"p": Packed(text="inner")}

    @wf.task(parents=[model_out, dict_out])
    def reader(input: Packed, ctx: Context) -> dict[str, str]:
        inner = ctx.task_output(dict_out)["p"]
        return {"model": ctx.task_output(model_out).text, "dict": inner.text}

    try:
        result = wf.run(Packed(text="hi"))
    finally:
        client.close()
    assert result["reader"] == {"model": "hi!", "dict": "inner"}
    stored = {
        str(name): json.loads(str(output))
        for name, output in query(db_path, "SELECT task_name, output FROM task_runs")
    }
    assert stored["model_out"] == {"text": "PACKED:hi!"}
    assert stored["dict_out"] == {"p": {"text": "PACKED:inner"}}
    [(stored_input,)] = query(db_path, "SELECT input FROM workflow_runs")
    assert json.loads(str(stored_input)) == {"text": "PACKED:hi"}


def test_a_durable_event_payload_validator_loads_in_the_context(db_path: str) -> None:
    client = Hatchet(db=db_path)

    @client.durable_task()
    async def waiter(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
        payload = await ctx.aio_wait_for_event("packed:ready", payload_validator=Packed)
        return {"text": payload.text}

    async def scenario() -> dict[str, str]:
        ref = await waiter.aio_run_no_wait()
        await wait_until(
            lambda: query(db_path, "SELECT count(*) FROM durable_conditions") != [(0,)]
        )
        await client.event.aio_push("packed:ready", {"text": "PACKED:sent"})
        return await ref.aio_result()

    try:
        assert asyncio.run(scenario()) == {"text": "sent"}
    finally:
        client.close()
