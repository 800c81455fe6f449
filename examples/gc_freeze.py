"""Start-up objects frozen out of the garbage collector's way (docs/deployment.md)."""

import gc

from hatchlite import Context, EmptyModel, Hatchet

hatchet = Hatchet()  # state goes to ./hatchlite.db (or $HATCHLITE_DB)


@hatchet.task()
def ping(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"reply": "pong"}


if __name__ == "__main__":
    # Start-up is over (imports, definitions): what is alive now stays alive, so the
    # collector's full passes need not walk it again and again.
    gc.collect()
    gc.freeze()
    print(ping.run())  # {'reply': 'pong'}
