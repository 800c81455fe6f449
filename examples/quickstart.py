"""A DAG and a standalone task, run in one process with no server."""

from pydantic import BaseModel

from hatchlite import Context, Hatchet

hatchet = Hatchet()  # state goes to ./hatchlite.db (or $HATCHLITE_DB)


class Order(BaseModel):
    items: list[float]
    coupon: float = 0.0


checkout = hatchet.workflow(name="Checkout", input_validator=Order)


@checkout.task()
def subtotal(input: Order, ctx: Context) -> dict[str, float]:
    return {"amount": sum(input.items)}


@checkout.task(parents=[subtotal])
def discount(input: Order, ctx: Context) -> dict[str, float]:
    return {"amount": min(input.coupon, ctx.task_output(subtotal)["amount"])}


@checkout.task(parents=[subtotal])
async def shipping(input: Order, ctx: Context) -> dict[str, float]:
    return {"amount": 0.0 if ctx.task_output(subtotal)["amount"] > 50 else 4.99}


@checkout.task(parents=[subtotal, discount, shipping])
def total(input: Order, ctx: Context) -> dict[str, float]:
    amount = (
        ctx.task_output(subtotal)["amount"]
        - ctx.task_output(discount)["amount"]
        + ctx.task_output(shipping)["amount"]
    )
    return {"amount": round(amount, 2)}


class Greeting(BaseModel):
    text: str


@hatchet.task(input_validator=Order)
def greet(input: Order, ctx: Context) -> Greeting:
    return Greeting(text=f"thanks for ordering {len(input.items)} items")


if __name__ == "__main__":
    result = checkout.run(Order(items=[20.0, 15.5], coupon=5.0))
    print(result["total"])  # {'amount': 35.49}
    print(greet.run(Order(items=[1.0])).text)  # thanks for ordering 1 items
