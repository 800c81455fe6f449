"""Hatchet's serde example, written for Hatchet's SDK: a custom serializer compresses a
field only when Hatchet (here hatchlite) stores the output, and a validator decompresses
it when it is read back."""

from __future__ import annotations

import base64
import zlib
from typing import Annotated, Any

from hatchet_sdk import Context, EmptyModel, Hatchet
from hatchet_sdk.serde import is_in_hatchet_serialization_context
from pydantic import BaseModel, PlainSerializer, ValidationInfo, model_validator

hatchet = Hatchet()


def compress(value: str, info: Any) -> str:
    if is_in_hatchet_serialization_context(info.context):
        return base64.b64encode(zlib.compress(value.encode())).decode()
    return value


class Secret(BaseModel):
    result: Annotated[str, PlainSerializer(compress, str)]

    @model_validator(mode="before")
    @classmethod
    def decompress(cls, data: Any, info: ValidationInfo) -> Any:
        if is_in_hatchet_serialization_context(info.context):
            data["result"] = zlib.decompress(base64.b64decode(data["result"])).decode()
        return data


class Final(BaseModel):
    final_result: str


serde_workflow = hatchet.workflow(name="serde-example", input_validator=EmptyModel)


@serde_workflow.task()
def generate(input: EmptyModel, ctx: Context) -> Secret:
    return Secret(result="my_result")


@serde_workflow.task(parents=[generate])
def read(input: EmptyModel, ctx: Context) -> Final:
    return Final(final_result=ctx.task_output(generate).result)


def main() -> None:
    result = serde_workflow.run()
    assert result["generate"]["result"] != "my_result"  # stored compressed
    assert result["read"]["final_result"] == "my_result"  # read back decoded
    print("serde ok")


if __name__ == "__main__":
    main()
