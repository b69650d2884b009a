"""The local store: every synced project's CI history, kept longer than GitLab keeps it.

One file (default ``<platformdirs data dir>/cidash.db``, ``--db`` overrides) opened in WAL mode with a busy
timeout, so a ``cidash sync`` can write while the dashboard, ``cidash check`` or a second sync read or wait.
The schema is versioned (``PRAGMA user_version`` plus the ``schema_migrations`` table) and migrated forward on
open; a file written by a newer cidash, a corrupt file or a lock held too long raises :class:`StoreError` with
a one-line reason, never a traceback.

PostgreSQL: :meth:`Store.open` also takes a ``postgresql://`` URL (``[store] url``, ``--db URL``). The schema, the
migrations and the queries are the same; the few dialect differences (types, placeholders, the schema
version, locking) are listed in :mod:`cidash.store.pg`, and ``Store.backend`` says which one is open.

Reading: use the :class:`Store` methods (they return :mod:`cidash.models` dataclasses). Read-only SQL on the
tables (documented in :mod:`cidash.store.schema`) is also a supported contract (``Store.connection`` or
``sqlite3`` with ``mode=ro``): columns are only ever added, never renamed or removed, within a schema version's
lifetime.

Conventions: times are TEXT in UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, so string comparison is time
order); durations are REAL seconds; sizes INTEGER bytes; booleans INTEGER 0/1; ids are GitLab's ids.

The package, one module per idea:

- :mod:`~cidash.store.schema`: the tables, ``SCHEMA_VERSION`` and ``MIGRATIONS``.
- :mod:`~cidash.store.rows`: store times, the portable upsert, row <-> model converters.
- :mod:`~cidash.store.base`: opening, migrating, transactions (SQLite or PostgreSQL).
- :mod:`~cidash.store.pg`: the PostgreSQL dialect.
- one mixin per concern, put together in :mod:`~cidash.store.store`: :mod:`~cidash.store.pipelines` (projects,
  pipelines, jobs), :mod:`~cidash.store.facts` (parsed logs), :mod:`~cidash.store.registry` (image tags),
  :mod:`~cidash.store.repository` (files, CI config, resource groups), :mod:`~cidash.store.syncstate` (cursors,
  runs, leases, deferred records), :mod:`~cidash.store.totals` (running counter totals),
  :mod:`~cidash.store.audit`, :mod:`~cidash.store.retention` (prune, counts).
"""

from __future__ import annotations

from cidash.store.base import DEFAULT_BUSY_TIMEOUT
from cidash.store.rows import PIPELINE_COLUMNS, from_db_time, pipeline_from_row, to_db_time, upsert_sql
from cidash.store.schema import MIGRATIONS, SCHEMA_VERSION
from cidash.store.store import Store
from cidash.store.syncstate import DeferredItem, SyncLease

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "MIGRATIONS",
    "PIPELINE_COLUMNS",
    "SCHEMA_VERSION",
    "DeferredItem",
    "Store",
    "SyncLease",
    "from_db_time",
    "pipeline_from_row",
    "to_db_time",
    "upsert_sql",
]
