"""The way back to Hatchet: bench/migration_check.py imports every program in
tests/hatchet_programs under the real hatchet_sdk and builds each workflow's registration
message. It needs hatchet-sdk (a network install, or a cached venv), so it runs only when
asked: HATCHLITE_MIGRATION_CHECK=1, and HATCHLITE_MIGRATION_PYTHON=/path/to/python to use
an interpreter that already has hatchet_sdk instead of the script's cached venv."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "migration_check.py"
PROGRAMS = sorted(
    p.stem for p in (ROOT / "tests" / "hatchet_programs").glob("*.py") if not p.name.startswith("_")
)

pytestmark = pytest.mark.skipif(
    os.environ.get("HATCHLITE_MIGRATION_CHECK") != "1",
    reason="needs hatchet-sdk; set HATCHLITE_MIGRATION_CHECK=1 to run bench/migration_check.py",
)


@pytest.mark.timeout(900)  # a first run installs hatchet-sdk into the cached venv
def test_hatchet_programs_are_valid_for_the_real_sdk() -> None:
    cmd = [sys.executable, str(SCRIPT)]
    if python := os.environ.get("HATCHLITE_MIGRATION_PYTHON"):
        cmd += ["--python", python]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=880)
    out = proc.stdout + proc.stderr
    assert not proc.stdout.startswith("skipped:"), f"asked for, but skipped:\n{out}"
    assert proc.returncode == 0, out
    assert PROGRAMS, "no programs in tests/hatchet_programs"
    for program in PROGRAMS:
        pattern = rf"^ok tests\.hatchet_programs\.{program} "
        assert re.search(pattern, proc.stdout, re.M), f"no ok line for {program}:\n{out}"
    assert "FAIL" not in proc.stdout, out
