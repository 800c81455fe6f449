"""A worker process and a trigger-only process (a web app, say) on one database file.

`python worker_and_webapp.py worker` serves; with no argument, this script starts that
worker as a subprocess, triggers a run from this trigger-only process, and stops it.
"""

import os
import signal
import subprocess
import sys

from pydantic import BaseModel

from hatchlite import Context, Hatchet


class Resize(BaseModel):
    image: str
    width: int


IS_WORKER = sys.argv[1:] == ["worker"]
# Both processes use $HATCHLITE_DB (default ./hatchlite.db). Only the worker executes;
# the other process only enqueues and waits (the same as HATCHLITE_AUTO_WORKER=0).
hatchet = Hatchet(auto_worker=IS_WORKER)


@hatchet.task(input_validator=Resize, retries=2)
def resize(input: Resize, ctx: Context) -> dict[str, str]:
    ctx.log(f"resizing {input.image} to {input.width}px")
    return {"thumbnail": f"{input.image}@{input.width}w", "worker_pid": str(os.getpid())}


def serve() -> None:
    # Serves until SIGINT/SIGTERM, then finishes running tasks and exits.
    hatchet.worker("image-worker", slots=8, workflows=[resize]).start()


def web_app() -> None:
    ref = resize.run_no_wait(Resize(image="cat.png", width=128))
    # Later, perhaps in another request: look the run up by id and wait for it.
    result = hatchet.runs.get_run_ref(ref.workflow_run_id).result()
    print(result["resize"]["thumbnail"])  # cat.png@128w
    print(result["resize"]["worker_pid"] != str(os.getpid()))  # True


if __name__ == "__main__":
    if IS_WORKER:
        serve()
    else:
        worker = subprocess.Popen([sys.executable, __file__, "worker"])
        try:
            web_app()
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
