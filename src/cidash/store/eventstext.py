"""Each parsed log's cache events as one JSON text beside its facts (schema version 10).

``job_facts.cache_events`` holds the log's ``cache_events`` rows in log order (``seq``) as one JSON array of
``[op, key, outcome, detail]`` (``"[]"``: the log named no cache): what a window's reader
(:mod:`cidash.dataset`) decodes once per distinct text. Before, the reader built that text per job with a
correlated ``json_group_array`` subquery over ``cache_events``: ~0.28 s of SQLite's time for the 100,000 jobs of a
50,000-pipeline store's window, against ~0.06 s to fetch a stored text. The rows in ``cache_events`` stay what the
other readers use (the key recompute, :meth:`~cidash.store.facts.FactsMixin.cache_events`, the queries by key).

The text is written in the transaction that writes the rows, from the same events
(:meth:`cidash.store.facts.FactsMixin.save_many_job_facts`, :func:`events_text`), and filled by the migration
from the stored rows (:func:`fill_cache_events_text`), both by :func:`events_text`: the same events always give
the same text, so many jobs' logs share one text and one decoded tuple.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

#: No cache event: the text of a log that named no cache.
NO_EVENTS = "[]"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_SET = "UPDATE job_facts SET cache_events = ? WHERE job_id = ?"


def events_text(events: Iterable[Sequence[Any]]) -> str:
    """The column's text for one log's events ``(op, key, outcome, detail)`` in log order."""
    rows = [[op, key, outcome, detail] for op, key, outcome, detail in events]
    return _encode(rows) if rows else NO_EVENTS


def fill_cache_events_text(conn: Any) -> None:
    """The migration's step: write every stored log's text from its ``cache_events`` rows (a log without any keeps
    the column's default, :data:`NO_EVENTS`). ``conn``: the store's connection (SQLite or
    :class:`cidash.store.pg.PgConnection`), in a transaction."""
    rows = conn.execute("SELECT job_id, op, key, outcome, detail FROM cache_events ORDER BY job_id, seq")
    updates: list[tuple[str, int]] = []
    for job_id, events in groupby(rows, key=itemgetter(0)):
        updates.append((events_text(r[1:] for r in events), job_id))
        if len(updates) >= 10_000:
            conn.executemany(_SET, updates)
            updates = []
    if updates:
        conn.executemany(_SET, updates)
