"""The `hatchlite` command, run as the installed console script in subprocesses against a
database with a known history: JSON parsed back, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until_sync

HATCHLITE = shutil.which("hatchlite")
pytestmark = pytest.mark.skipif(HATCHLITE is None, reason="the hatchlite script is not installed")

APP = textwrap.dedent(
    '''
    """The application the CLI tests operate."""
    from pydantic import BaseModel

    from hatchlite import Context, EmptyModel, Hatchet

    hatchet = Hatchet()


    class Order(BaseModel):
        sku: str
        qty: int = 1


    checkout = hatchet.workflow(name="checkout", input_validator=Order)


    @checkout.task()
    def price(input: Order, ctx: Context) -> dict[str, float]:
        ctx.log(f"pricing {input.sku}")
        return {"total": 2.5 * input.qty}


    @checkout.task(parents=[price])
    def charge(input: Order, ctx: Context) -> dict[str, float]:
        if input.sku == "bad":
            raise ValueError("card declined")
        return {"charged": ctx.task_output(price)["total"]}


    @hatchet.task(name="greet")
    def greet(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"hello": "world"}
    '''
)

HISTORY = textwrap.dedent(
    """
    from datetime import datetime, timedelta, timezone

    from cliapp import Order, checkout, greet, hatchet

    worker = hatchet.worker("history", workflows=[checkout, greet])
    ok = checkout.run_no_wait(Order(sku="A", qty=3))
    bad = checkout.run_no_wait(Order(sku="bad"))
    import threading
    threading.Thread(target=worker.start, daemon=True).start()
    ok.result()
    try:
        bad.result()
    except Exception:
        pass
    hatchet.event.push("order:placed", {"sku": "A"})
    greet.create_cron("nightly", "0 3 * * *")
    greet.schedule(datetime.now(timezone.utc) + timedelta(hours=1))
    worker.stop()
    print(ok.workflow_run_id, bad.workflow_run_id)
    """
)


def hatchlite(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert HATCHLITE is not None
    return subprocess.run(
        [HATCHLITE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )


def ok_json(*args: str, **kwargs: Any) -> Any:
    proc = hatchlite(*args, "--json", **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cliapp")
    (folder / "cliapp.py").write_text(APP)
    return folder


@pytest.fixture(scope="module")
def history(app: Path) -> Iterator[tuple[str, str, str]]:
    """A database with a completed and a failed checkout, an event, a cron and a
    schedule: (path, the completed run's id, the failed run's id)."""
    db = str(app / "history.db")
    proc = subprocess.run(
        [sys.executable, "-c", HISTORY],
        cwd=app,
        env={
            **os.environ,
            "HATCHLITE_DB": db,
            "PYTHONPATH": str(app),
            "HATCHLITE_AUTO_WORKER": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    ok, bad = proc.stdout.split()
    yield db, ok, bad


def test_help_and_version() -> None:
    proc = hatchlite("--help")
    assert proc.returncode == 0
    for command in ("worker", "run", "runs", "events", "cron", "scheduled", "workers"):
        assert command in proc.stdout
    assert hatchlite("--version").returncode == 0
    assert hatchlite("no-such-command").returncode == 2


def test_runs_list_and_show(history: tuple[str, str, str]) -> None:
    db, ok, bad = history
    rows = ok_json("runs", "list", "--db", db)
    statuses = {r["workflow_run_external_id"]: r["status"] for r in rows}
    assert statuses[ok] == "COMPLETED" and statuses[bad] == "FAILED"
    failed = ok_json("runs", "list", "--db", db, "--status", "failed", "--workflow", "checkout")
    assert [r["workflow_run_external_id"] for r in failed] == [bad]

    shown = ok_json("runs", "show", ok, "--db", db)
    assert shown["run"]["output"] == {"price": {"total": 7.5}, "charge": {"charged": 7.5}}
    assert {t["status"] for t in shown["tasks"]} == {"COMPLETED"}
    table = hatchlite("runs", "show", bad, "--db", db)
    assert table.returncode == 0
    assert "charge" in table.stdout and "card declined" in table.stdout


def test_runs_logs(history: tuple[str, str, str]) -> None:
    db, ok, _ = history
    lines = ok_json("runs", "logs", ok, "--db", db)
    assert any(line["message"] == "pricing A" and line["task"] == "price" for line in lines)


def test_unknown_ids_are_one_line_and_exit_2(history: tuple[str, str, str]) -> None:
    db, _, _ = history
    assert "nope" in one_line_error(hatchlite("runs", "show", "nope", "--db", db))
    assert "nope" in one_line_error(hatchlite("runs", "cancel", "nope", "--db", db))
    assert "nope" in one_line_error(hatchlite("runs", "replay", "nope", "--db", db))
    assert "nope" in one_line_error(hatchlite("cron", "delete", "nope", "--db", db))
    assert "nope" in one_line_error(hatchlite("scheduled", "delete", "nope", "--db", db))
    assert "nope" in one_line_error(hatchlite("workflows", "pause", "nope", "--db", db))
    assert "nope" in one_line_error(hatchlite("run", "nope", "--db", db))


def test_bad_input_is_refused_and_changes_nothing(history: tuple[str, str, str]) -> None:
    db, _, _ = history
    before = ok_json("runs", "list", "--db", db)
    assert "not valid JSON" in one_line_error(
        hatchlite("run", "checkout", "--db", db, "--input", "{nope", "--no-wait")
    )
    assert "JSON object" in one_line_error(
        hatchlite("run", "checkout", "--db", db, "--input", "[1]", "--no-wait")
    )
    assert "not valid JSON" in one_line_error(
        hatchlite("events", "push", "k", "--db", db, "--payload", "{")
    )
    assert "invalid --older-than" in one_line_error(
        hatchlite("runs", "purge", "--db", db, "--older-than", "soon")
    )
    assert ok_json("runs", "list", "--db", db) == before


def test_missing_foreign_and_newer_databases(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.db")
    assert "no hatchlite database" in one_line_error(hatchlite("runs", "list", "--db", missing))
    assert not Path(missing).exists()  # nothing was created
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    assert "not a hatchlite database" in one_line_error(
        hatchlite("workflows", "list", "--db", str(foreign))
    )
    env_db = hatchlite("runs", "list", env={"HATCHLITE_DB": missing})
    assert missing in one_line_error(env_db)


def test_a_database_from_a_newer_hatchlite(history: tuple[str, str, str], tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    shutil.copy(history[0], newer)
    conn = sqlite3.connect(newer)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {version + 1}")
    conn.commit()
    conn.close()
    assert "newer hatchlite" in one_line_error(hatchlite("runs", "list", "--db", str(newer)))


def test_events_crons_schedules_workers(history: tuple[str, str, str]) -> None:
    db, _, _ = history
    events = ok_json("events", "list", "--db", db)
    assert [e["key"] for e in events] == ["order:placed"]
    crons = ok_json("cron", "list", "--db", db)
    assert [(c["name"], c["cron"]) for c in crons] == [("nightly", "0 3 * * *")]
    assert crons[0]["next_fire"] is not None
    schedules = ok_json("scheduled", "list", "--db", db)
    assert [s["workflow_name"] for s in schedules] == ["greet"]
    workers = ok_json("workers", "list", "--db", db)
    assert [w["name"] for w in workers] == ["history"]
    assert "history" in hatchlite("workers", "list", "--db", db).stdout


def test_writes_on_a_copy(history: tuple[str, str, str], tmp_path: Path) -> None:
    """Push, delete a cron and a schedule, pause and unpause, replay, purge."""
    db = str(tmp_path / "copy.db")
    shutil.copy(history[0], db)
    _, ok, bad = history
    pushed = ok_json("events", "push", "order:paid", "--db", db, "--payload", '{"sku": "A"}')
    assert pushed["key"] == "order:paid"
    cron_id = ok_json("cron", "list", "--db", db)[0]["metadata"]["id"]
    assert ok_json("cron", "delete", cron_id, "--db", db) == {"deleted": cron_id}
    assert ok_json("cron", "list", "--db", db) == []
    schedule_id = ok_json("scheduled", "list", "--db", db)[0]["metadata"]["id"]
    ok_json("scheduled", "delete", schedule_id, "--db", db)
    assert ok_json("scheduled", "list", "--db", db) == []

    ok_json("workflows", "pause", "checkout", "--db", db)
    paused = {w["name"]: w["is_paused"] for w in ok_json("workflows", "list", "--db", db)}
    assert paused["checkout"] is True
    ok_json("workflows", "unpause", "checkout", "--db", db)
    paused = {w["name"]: w["is_paused"] for w in ok_json("workflows", "list", "--db", db)}
    assert paused["checkout"] is False

    assert ok_json("runs", "replay", bad, "--db", db) == {"replayed": [bad]}
    statuses = {
        r["workflow_run_external_id"]: r["status"] for r in ok_json("runs", "list", "--db", db)
    }
    assert statuses[bad] == "QUEUED"
    assert ok_json("runs", "cancel", bad, "--db", db) == {
        "cancelled": [bad],
        "already_finished": {},
    }
    assert ok_json("runs", "cancel", ok, "--db", db) == {
        "cancelled": [],
        "already_finished": {ok: "COMPLETED"},
    }
    # Two runs and two events (the history's and the one pushed above).
    assert ok_json("runs", "purge", "--db", db, "--older-than", "0s") == {"deleted": 4}
    remaining = [r["workflow_run_external_id"] for r in ok_json("runs", "list", "--db", db)]
    assert remaining == []


def test_run_without_a_worker_says_how_to_start_one(
    history: tuple[str, str, str], tmp_path: Path
) -> None:
    db = str(tmp_path / "idle.db")
    shutil.copy(history[0], db)
    message = one_line_error(hatchlite("run", "greet", "--db", db))
    assert "no running worker serves workflow 'greet'" in message
    assert "hatchlite worker" in message
    queued = ok_json("run", "greet", "--db", db, "--no-wait")
    assert ok_json("runs", "show", queued["run_id"], "--db", db)["run"]["status"] == "QUEUED"


def test_worker_serves_a_module_while_run_waits(app: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    assert HATCHLITE is not None
    worker = subprocess.Popen(
        [HATCHLITE, "worker", "cliapp", "--db", db, "--name", "cli-worker"],
        cwd=app,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_sync(
            lambda: (
                Path(db).exists()
                and hatchlite("workers", "list", "--db", db, "--json").stdout.count("cli-worker")
                > 0
            ),
            timeout=30,
            what="the worker to register",
        )
        done = ok_json("run", "checkout", "--db", db, "--input", '{"sku": "B", "qty": 2}')
        assert done["status"] == "COMPLETED"
        assert done["output"] == {"price": {"total": 5.0}, "charge": {"charged": 5.0}}

        failed = hatchlite("run", "checkout", "--db", db, "--input", '{"sku": "bad"}', "--json")
        assert failed.returncode == 1, failed.stderr
        assert json.loads(failed.stdout)["status"] == "FAILED"
        assert "card declined" in json.loads(failed.stdout)["error"]

        shown = hatchlite("run", "greet", "--db", db)  # the live display, then the output
        assert shown.returncode == 0, shown.stderr
        assert '"hello": "world"' in shown.stdout
        assert "greet" in shown.stderr and "COMPLETED" in shown.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            output, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
    assert worker.returncode == 0, output
    assert "Traceback" not in output


def test_worker_refuses_a_missing_module(tmp_path: Path) -> None:
    message = one_line_error(hatchlite("worker", "no_such_module", "--db", str(tmp_path / "x.db")))
    assert "no_such_module" in message


def test_usage_errors_and_user_text_are_one_plain_line(history: tuple[str, str, str]) -> None:
    db, _, _ = history
    assert "--status" in one_line_error(hatchlite("runs", "list", "--db", db, "--status", "x"))
    assert "Missing argument" in one_line_error(hatchlite("runs", "show", "--db", db))
    assert "key=value" in one_line_error(hatchlite("runs", "list", "--db", db, "--metadata", "k"))
    # Brackets are text, not rich markup: shown as given, never a crash.
    assert "abc[/q]" in one_line_error(hatchlite("runs", "show", "abc[/q]", "--db", db))
    assert "[bold]nope" in one_line_error(hatchlite("run", "[bold]nope", "--db", db))


def test_an_empty_file_is_not_a_database(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert "empty file" in one_line_error(hatchlite("runs", "list", "--db", str(empty)))
    assert empty.stat().st_size == 0


def test_worker_on_a_foreign_database_or_a_broken_module_exits_at_once(
    app: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    message = one_line_error(hatchlite("worker", "cliapp", "--db", str(foreign), cwd=app))
    assert "not a hatchlite database" in message
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    message = one_line_error(
        hatchlite("worker", "broken", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    )
    assert "RuntimeError: boom at import" in message and "broken.py, line 1" in message


def test_run_refuses_a_paused_workflow(history: tuple[str, str, str], tmp_path: Path) -> None:
    db = str(tmp_path / "paused.db")
    shutil.copy(history[0], db)
    ok_json("workflows", "pause", "greet", "--db", db)
    assert "is paused" in one_line_error(hatchlite("run", "greet", "--db", db))
