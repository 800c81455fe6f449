"""Side effects of worker processes, recorded for the tests that kill and restart them:
one line per effect appended to the file `HATCHLITE_TEST_EFFECTS` names (an O_APPEND
write of one line is atomic, so processes may share the file)."""

from __future__ import annotations

import os
from pathlib import Path

EFFECTS_ENV = "HATCHLITE_TEST_EFFECTS"


def record(*words: object) -> None:
    """Append `words` and this process's pid, as one line."""
    line = " ".join(str(w) for w in (*words, os.getpid())) + "\n"
    fd = os.open(os.environ[EFFECTS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(effects: Path) -> list[list[str]]:
    """The recorded lines, split into words (none if nothing was recorded)."""
    return [line.split() for line in effects.read_text().splitlines()] if effects.exists() else []
