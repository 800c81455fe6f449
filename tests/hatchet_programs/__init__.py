"""Programs written for Hatchet's SDK (they import `hatchet_sdk` only), run on hatchlite
through `hatchlite.compat` by the tests, and imported under the real SDK by
bench/migration_check.py."""
