"""Type checking: decorators keep users' input and output types (async included)."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")
SAMPLE = Path(__file__).with_name("typing_sample.py")


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
