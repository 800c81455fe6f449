"""The worker as a service: SIGTERM drains, a second signal exits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from hatchlite import Hatchet
from tests.conftest import query
from tests.conftest import wait_until_sync as wait_until
from tests.procs.slow_worker import EFFECTS_ENV, build
from tests.test_processes import ROOT


def start(db: str, effects: Path, seconds: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        EFFECTS_ENV: str(effects),
        "PYTHONPATH": str(ROOT),
        "SLOW_SECONDS": str(seconds),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.procs.slow_worker", db],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def notes(effects: Path) -> list[str]:
    return (
        [line.split()[0] for line in effects.read_text().splitlines()] if effects.exists() else []
    )


def test_sigterm_waits_for_the_running_task_then_exits(tmp_path: Path) -> None:
    db, effects = str(tmp_path / "svc.db"), tmp_path / "effects.log"
    client = Hatchet(db=db, auto_worker=False)
    slow = build(client)
    proc = start(db, effects, seconds=0.5)
    try:
        ref = slow.run_no_wait()
        wait_until(lambda: "start" in notes(effects), what="the task to start")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()
        assert notes(effects) == ["setup", "start", "end", "teardown", "exited"]
        assert ref.result() == {"pid": proc.pid}
        assert query(db, "SELECT status FROM workers") == [("INACTIVE",)]
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()


def test_second_signal_exits_at_once_and_the_task_is_requeued(tmp_path: Path) -> None:
    db, effects = str(tmp_path / "svc.db"), tmp_path / "effects.log"
    client = Hatchet(db=db, auto_worker=False)
    slow = build(client)
    first = start(db, effects, seconds=30)
    second = None
    try:
        ref = slow.run_no_wait()
        wait_until(lambda: "start" in notes(effects), what="the task to start")
        first.send_signal(signal.SIGTERM)
        assert first.stdout is not None
        for line in first.stdout:  # the worker logs when it starts draining
            if b"draining" in line:
                break
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=10)
        assert first.returncode != 0
        assert "end" not in notes(effects)
        # The next worker finds the task run its dead predecessor held and runs it again.
        second = start(db, effects, seconds=0.01)
        assert ref.result() == {"pid": second.pid}
        attempts = query(db, "SELECT status FROM task_attempts ORDER BY id")
        assert ("REASSIGNED",) in attempts
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
        client.close()
