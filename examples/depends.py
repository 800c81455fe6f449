"""Dependencies: values a task gets beside (input, ctx), made afresh for every attempt."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from pydantic import BaseModel

from hatchlite import Context, Depends, Hatchet

hatchet = Hatchet()


class Order(BaseModel):
    sku: str
    qty: int


def get_settings(input: Order, ctx: Context) -> dict[str, float]:
    return {"unit_price": 2.5}  # a `def` runs in a worker thread


async def get_price(
    input: Order,
    ctx: Context,
    settings: Annotated[dict[str, float], Depends(get_settings)],  # a dependency's own
) -> float:
    return settings["unit_price"] * input.qty


@asynccontextmanager
async def open_db(input: Order, ctx: Context) -> AsyncIterator[list[str]]:
    print("db opened")  # db opened
    yield []  # the task gets what is yielded
    print("db closed")  # db closed


@hatchet.task(input_validator=Order, retries=1)
def place_order(
    input: Order,
    ctx: Context,
    db: Annotated[list[str], Depends(open_db)],
    price: Annotated[float, Depends(get_price)],
) -> dict[str, float]:
    db.append(input.sku)
    print(f"placing {input.sku}")  # placing apple
    return {"price": price}


if __name__ == "__main__":
    print(place_order.run(Order(sku="apple", qty=4)))  # {'price': 10.0}

    # A unit test passes the values itself: nothing is resolved.
    fakes = {"db": [], "price": 1.0}
    print(place_order.mock_run(Order(sku="pear", qty=1), dependencies=fakes))  # {'price': 1.0}
