"""`python -m hatchlite.compat script.py [args]` or `python -m hatchlite.compat -m module
[args]`: run a program written for `hatchet_sdk` on hatchlite, without changing it."""

from __future__ import annotations

import os
import runpy
import sys

from hatchlite.compat import install

USAGE = "usage: python -m hatchlite.compat (script.py | -m module) [args ...]"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv else 2
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
