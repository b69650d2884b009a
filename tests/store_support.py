"""Stores as an older cidash left them, for the migration tests (tests/unit/test_store.py) and the upgrade of an
older store by the commands (tests/integration/test_store_upgrade.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: The columns schema version 9 added to ``job_facts`` (a store of version 8 has none of them).
V9_COLUMNS = ("phases_summed", "startup_prepare", "startup_sources", "startup_cache", "startup_artifacts")


def as_version_8(path: Path) -> Path:
    """Turn the SQLite store at ``path`` (schema version 9) into what cidash at schema version 8 left."""
    conn = sqlite3.connect(path)
    for column in V9_COLUMNS:
        conn.execute(f"ALTER TABLE job_facts DROP COLUMN {column}")
    conn.execute("DELETE FROM schema_migrations WHERE version >= 9")
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()
    return path
