"""Type checking: decorators keep users' input and output types (async included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")
SAMPLE = Path(__file__).with_name("typing_sample.py")
USER_SCRIPT = Path(__file__).with_name("typing_user_script.py")


def check(path: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(["--strict", "--no-incremental", str(path)])
    return out + err, status


def test_decorated_tasks_keep_their_types(tmp_path: Path) -> None:
    out, status = check(SAMPLE)
    assert status == 0, out
    # And the types are real, not Any: a wrong annotation is caught.
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        SAMPLE.read_text() + "\n\ndef bad() -> None:\n"
        "    value: str = async_standalone.run(In(x=1))\n"
        "    print(value)\n"
    )
    out, status = check(wrong)
    assert status == 1 and 'type "Out", variable has type "str"' in out, out


def check_as_user(script: Path) -> tuple[str, int]:
    """`mypy --strict` in the script's own directory, outside the repository: hatchlite
    is found only through the installed package, as it is for a user."""
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", script.name],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    return proc.stdout + proc.stderr, proc.returncode


def test_user_script_type_checks_against_the_installed_package(tmp_path: Path) -> None:
    script = tmp_path / USER_SCRIPT.name
    shutil.copyfile(USER_SCRIPT, script)
    out, status = check_as_user(script)
    assert status == 0, out
    # The installed package's types are real, not Any: a wrong return type is caught.
    wrong = tmp_path / "wrong_user_script.py"
    wrong.write_text(
        USER_SCRIPT.read_text() + "\n\ndef bad(order: Order) -> str:\n"
        "    return send_receipt.run(order)\n"
    )
    out, status = check_as_user(wrong)
    assert status == 1 and '(got "Receipt", expected "str")' in out, out
