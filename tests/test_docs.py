"""Examples are tests: every code block in README.md and docs/ that names an example
file must match that file, and every example file runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKED = re.compile(r"<!-- example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.S)
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_match_example_files(page: Path) -> None:
    text = page.read_text()
    for match in MARKED.finditer(text):
        example = ROOT / match["path"]
        assert example.exists(), f"{page.name} names a missing file {match['path']}"
        assert match["code"] == example.read_text(), f"{page.name}: {match['path']} differs"
    bare = [m.start() for m in re.finditer(r"```python\n", text)]
    marked = [m.start() + len(m.group(0).split("\n")[0]) + 1 for m in MARKED.finditer(text)]
    assert sorted(bare) == sorted(marked), f"{page.name} has a python block with no example file"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\((?!https?://)([^)#]+)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HATCHLITE_DB": str(tmp_path / "example.db"), "PYTHONPATH": str(ROOT)}
    env.pop("HATCHLITE_AUTO_WORKER", None)
    proc = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = re.findall(r"print\(.*\)  # (.*)", example.read_text())
    for line in expected:
        assert line in proc.stdout, f"{example.name}: expected {line!r} in output:\n{proc.stdout}"
