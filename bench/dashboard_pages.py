"""Server time of the dashboard's pages on a database of N stored runs (issue 13: "with
100,000 stored runs the runs page renders in under 200 ms of server time").

    python bench/dashboard_pages.py [--n N] [--requests R] [--db PATH] [--quick]

The database (a temp file, or `--db` to keep and reuse it) is filled through the public
API with a worker: 90% single-task runs (one in 50 failing, metadata `batch=<k>`) and 10%
three-task DAGs, all finished. Then each page is requested R times in this process
through Starlette's TestClient (so the figures include the client's own overhead, a
little above the server time) and the median and p90 are printed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings

from pydantic import BaseModel

from hatchlite import Context, Hatchet

CHUNK = 2_000


class Item(BaseModel):
    n: int


def fill(db: str, n: int) -> None:
    hatchet = Hatchet(db=db)

    @hatchet.task(name="noop", input_validator=Item)
    def noop(input: Item, ctx: Context) -> dict[str, int]:
        if input.n % 50 == 0:
            raise ValueError(f"bad item {input.n}")
        return {"n": input.n}

    dag = hatchet.workflow(name="dag3", input_validator=Item)

    @dag.task()
    def first(input: Item, ctx: Context) -> dict[str, int]:
        return {"a": 1}

    @dag.task(parents=[first])
    def second(input: Item, ctx: Context) -> dict[str, int]:
        return {"b": 1}

    @dag.task(parents=[second])
    def third(input: Item, ctx: Context) -> dict[str, int]:
        return {"c": 1}

    singles = n * 9 // 10
    started = time.perf_counter()
    for start in range(0, singles, CHUNK):
        noop.run_many_no_wait(
            [
                noop.create_bulk_run_item(
                    input=Item(n=i), additional_metadata={"batch": str(start // CHUNK)}
                )
                for i in range(start, min(start + CHUNK, singles))
            ]
        )
    for start in range(0, n - singles, CHUNK):
        dag.run_many_no_wait(
            [
                dag.create_bulk_run_item(input=Item(n=i))
                for i in range(start, min(start + CHUNK, n - singles))
            ]
        )
    while True:
        metrics = hatchet.metrics.get_task_metrics()
        if metrics.queued + metrics.running == 0:
            break
        time.sleep(0.5)
    hatchet.close()
    print(f"filled {n:,} runs in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def measure(db: str, requests: int) -> list[tuple[str, float, float]]:
    with warnings.catch_warnings():  # Starlette's notice about its test client's httpx
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from hatchlite.dashboard import create_app

    app = create_app(db, read_only=True)
    client = TestClient(app)
    hatchet = app.state.dashboard.hatchet
    run_id = hatchet.runs.list(limit=1).rows[0].metadata.id
    pages = [
        "/",
        "/?status=FAILED",
        "/?page=1000",
        "/?meta=batch%3D3",
        f"/runs/{run_id}",
        "/workflows",
        "/rate-limits",
        "/events",
        "/workers",
    ]
    out = []
    for path in pages:
        client.get(path)  # warm the caches
        times = []
        for _ in range(requests):
            began = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")
        times.sort()
        out.append((path, statistics.median(times), times[max(0, int(len(times) * 0.9) - 1)]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--db", help="keep the database here (filled if it does not exist)")
    parser.add_argument("--quick", action="store_true", help="N=10,000, 5 requests a page")
    args = parser.parse_args()
    if args.quick:
        args.n, args.requests = 10_000, 5
    warnings.simplefilter("ignore", DeprecationWarning)  # (the TestClient's httpx notice too)
    db = args.db or os.path.join(tempfile.mkdtemp(), "dashboard.db")
    if not os.path.exists(db):
        fill(db, args.n)
    print(
        f"hatchlite {importlib.metadata.version('hatchlite')} | Python "
        f"{platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    print(f"{args.n:,} stored runs (all in the last day), {args.requests} requests a page")
    print(f"{'page':30s} {'median ms':>10s} {'p90 ms':>8s}")
    for path, median, p90 in measure(db, args.requests):
        shown = path if not path.startswith("/runs/") else "/runs/<id>"
        print(f"{shown:30s} {median:10.1f} {p90:8.1f}")


if __name__ == "__main__":
    main()
