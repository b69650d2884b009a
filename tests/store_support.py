"""Stores as an older cidash left them, for the migration tests (tests/unit/test_store.py) and the upgrade of an
older store by the commands (tests/integration/test_store_upgrade.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: The columns schema version 9 added to ``job_facts`` (a store of version 8 has none of them).
V9_COLUMNS = ("phases_summed", "startup_prepare", "startup_sources", "startup_cache", "startup_artifacts")
#: The column schema version 10 added to ``job_facts``.
V10_COLUMNS = ("cache_events",)
#: The index schema version 11 added (it replaced :data:`V7_IMAGE_INDEX`).
V11_INDEXES = ("job_facts_image_runs",)
#: The index schema version 7 made, which version 11 replaced.
V7_IMAGE_INDEX = "CREATE INDEX job_facts_image ON job_facts (project_id, image_name, image_digest)"


def as_version_9(path: Path) -> Path:
    """Turn the SQLite store at ``path`` (schema version 11) into what cidash at schema version 9 left."""
    return _drop(path, 9, V10_COLUMNS, V11_INDEXES)


def as_version_8(path: Path) -> Path:
    """Turn the SQLite store at ``path`` (schema version 11) into what cidash at schema version 8 left."""
    return _drop(path, 8, (*V9_COLUMNS, *V10_COLUMNS), V11_INDEXES)


def _drop(path: Path, version: int, columns: tuple[str, ...], indexes: tuple[str, ...] = ()) -> Path:
    conn = sqlite3.connect(path)
    for index in indexes:
        conn.execute(f"DROP INDEX {index}")
    if indexes:
        conn.execute(V7_IMAGE_INDEX)
    for column in columns:
        conn.execute(f"ALTER TABLE job_facts DROP COLUMN {column}")
    conn.execute("DELETE FROM schema_migrations WHERE version > ?", (version,))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    return path
