"""`python -m hatchlite.cli` is the `hatchlite` command."""

from hatchlite.cli import main

main()
