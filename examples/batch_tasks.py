"""A batch task: runs triggered one by one, handled together (one bulk call for many)."""

import asyncio
from datetime import timedelta

from pydantic import BaseModel

from hatchlite import BatchMemberId, Context, Hatchet

hatchet = Hatchet()


class Email(BaseModel):
    customer: str
    to: str


@hatchet.batch_task(
    input_validator=Email,
    batch_max_size=10,  # flush when 10 members wait ...
    batch_max_interval=timedelta(milliseconds=200),  # ... or the oldest has waited 200 ms
    batch_group_key="input.customer",  # a batch never mixes customers
)
async def send(inputs: dict[BatchMemberId, Email], ctx: Context) -> dict[BatchMemberId, dict]:
    # One request to the mail service for the whole batch; an output per member.
    print(f"sending {len(inputs)} for {next(iter(inputs.values())).customer}")
    return {member: {"sent_to": email.to} for member, email in inputs.items()}


async def main() -> None:
    emails = [Email(customer="acme", to=f"user{i}@acme.test") for i in range(10)]
    emails.append(Email(customer="globex", to="boss@globex.test"))
    results = await send.aio_run_many([send.create_bulk_run_item(e) for e in emails])
    print(results[0])  # {'sent_to': 'user0@acme.test'}
    print(results[-1])  # {'sent_to': 'boss@globex.test'}
    await hatchet.aio_close()


asyncio.run(main())
