"""A durable task survives SIGKILL of its worker during a sleep and during a wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from hatchlite import Hatchet
from tests.conftest import query
from tests.conftest import wait_until_sync as wait_until
from tests.procs.durable_flow import EFFECTS_ENV, SLEEP, Trip, build
from tests.test_processes import ROOT

TRIPS = 5


def start(db: str, effects: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, EFFECTS_ENV: str(effects), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.procs.durable_flow", db],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def pending_at(db: str, node: int) -> int:
    return int(
        query(
            db,
            "SELECT count(*) FROM durable_events WHERE node_id = ? AND status = 'PENDING'",
            (node,),
        )[0][0]
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.timeout(120)
def test_sigkill_during_sleep_and_during_wait(tmp_path: Path) -> None:
    db, effects, log = str(tmp_path / "durable.db"), tmp_path / "effects.log", tmp_path / "w.log"
    client = Hatchet(db=db, auto_worker=False)
    journey, _ = build(client)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        refs = journey.run_many_no_wait(
            [journey.create_bulk_run_item(Trip(n=i)) for i in range(TRIPS)]
        )
        procs.append(start(db, effects, log))
        # Killed while every journey sleeps (entry 2 is the sleep).
        wait_until(lambda: pending_at(db, 2) == TRIPS, what="all journeys asleep")
        kill(procs[-1])
        procs.append(start(db, effects, log))
        # Killed while every journey waits for its event (entry 3).
        wait_until(lambda: pending_at(db, 3) == TRIPS, timeout=30, what="all journeys waiting")
        kill(procs[-1])
        procs.append(start(db, effects, log))
        for i in range(TRIPS):
            client.event.push("journey:go", {"n": i, "other": "x"})
        results = [ref.result() for ref in refs]
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        client.close()

    lines = [line.split() for line in effects.read_text().splitlines()]
    nows: dict[str, set[str]] = defaultdict(set)
    invocations: dict[str, int] = defaultdict(int)
    for words in lines:
        if words[0] == "now":
            nows[words[1]].add(words[2])
            invocations[words[1]] += 1
    for i, result in enumerate(results):
        # aio_now() is the same instant in every replay, and the one returned.
        assert nows[str(i)] == {result["now"]}
        assert result["event"] == {"n": i, "other": "x"}
        assert result["child"] == {"souvenir": i}
        assert invocations[str(i)] == 3  # first run + a replay after each kill
    # Each child was spawned exactly once, however many times its parent replayed.
    assert sorted(w[1] for w in lines if w[0] == "child") == [str(i) for i in range(TRIPS)]
    assert query(db, "SELECT count(*) FROM workflow_runs WHERE workflow_name = 'souvenir'") == [
        (TRIPS,)
    ]
    # The sleep kept its stored wake-up time across the restart instead of starting over.
    for created, satisfied in query(
        db, "SELECT created_at, satisfied_at FROM durable_events WHERE node_id = 2"
    ):
        # (the wake-up instant is taken a moment before the entry's creation time)
        assert SLEEP.total_seconds() - 0.05 <= satisfied - created < SLEEP.total_seconds() + 1.0
    assert "Traceback" not in log.read_text()
