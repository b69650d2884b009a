"""The PostgreSQL dialect of the store, moved to :mod:`cidash.store.pg`; this old path keeps working."""

from __future__ import annotations

from cidash.store.pg import (
    MIGRATION_LOCK,
    URL_SCHEMES,
    PgConnection,
    connect,
    glob_to_regex,
    is_postgres_url,
    lease_lock_key,
    pg_ddl,
    pg_sql,
    redact_url,
    store_error,
)

__all__ = [
    "MIGRATION_LOCK",
    "URL_SCHEMES",
    "PgConnection",
    "connect",
    "glob_to_regex",
    "is_postgres_url",
    "lease_lock_key",
    "pg_ddl",
    "pg_sql",
    "redact_url",
    "store_error",
]
