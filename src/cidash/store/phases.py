"""Each parsed log's start-up phases, summed by the store from its stored sections (schema version 9).

``job_facts.startup_prepare``, ``startup_sources``, ``startup_cache`` and ``startup_artifacts`` hold, once
``phases_summed`` is 1, the closed sections of :data:`cidash.models.STARTUP_SECTION_PHASES` summed per phase in
log order from the job's ``job_sections`` rows as stored (NULL: no such closed section): what
:func:`cidash.metrics.startup_phases` computes from the sections, so a window of 100,000 jobs reads four columns
per job instead of ~300,000 section rows. They are written in the transaction that writes the sections
(:meth:`cidash.store.facts.FactsMixin.save_many_job_facts`, summed from the sections it writes, in their order:
:func:`section_sums`) and filled by the migration from the stored rows (:func:`sum_startup_phases`).
Not :func:`cidash.logparse.phase_durations` (the sync's ``prepare_seconds``... columns, which a caller may leave
out): the store does not parse, it adds up what it keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cidash.models import STARTUP_PHASE_NAMES, STARTUP_SECTION_PHASES, Section

#: The columns, in :data:`cidash.models.STARTUP_PHASE_NAMES` order.
STARTUP_COLUMNS: tuple[str, ...] = tuple(f"startup_{phase}" for phase in STARTUP_PHASE_NAMES)

_SET = "UPDATE job_facts SET phases_summed = 1, " + ", ".join(f"{c} = ?" for c in STARTUP_COLUMNS) + " WHERE job_id = ?"
_CLEAR = "UPDATE job_facts SET phases_summed = 1, " + ", ".join(f"{c} = NULL" for c in STARTUP_COLUMNS) + " WHERE "


def phase_sums(durations: Iterable[tuple[str, float]]) -> tuple[float | None, ...]:
    """The four columns of one job from its closed start-up sections ``(phase, duration)`` in log order: each
    phase's durations added left to right from 0.0, as :func:`cidash.metrics.startup_phases` adds them."""
    totals: dict[str, float] = {}
    for phase, duration in durations:
        totals[phase] = totals.get(phase, 0.0) + duration
    return tuple(totals.get(phase) for phase in STARTUP_PHASE_NAMES)


def section_sums(sections: Iterable[Section]) -> tuple[float | None, ...]:
    """The four columns of one log from its sections in log order (as the store writes them, ``seq`` = the
    position): what :func:`sum_startup_phases` reads back from its stored rows, without reading them."""
    phase_of = STARTUP_SECTION_PHASES
    return phase_sums((phase_of[x.name], x.duration) for x in sections if x.duration is not None and x.name in phase_of)


def write_sums(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write ``(prepare, sources, cache, artifacts, job_id)`` rows (:func:`section_sums` plus the job) in one
    statement per row, marking each log's phases as summed."""
    if rows:
        conn.executemany(_SET, rows)


def sum_startup_phases(conn: Any, job_ids: Sequence[int] | None = None) -> None:
    """Write the start-up phase columns of the facts of ``job_ids`` (None: every stored log) from their stored
    sections. ``conn``: the store's connection (SQLite or :class:`cidash.store.pg.PgConnection`), in a
    transaction."""
    names = sorted(STARTUP_SECTION_PHASES)
    select = (
        "SELECT job_id, name, duration FROM job_sections WHERE name IN "
        f"({','.join('?' * len(names))}) AND duration IS NOT NULL"
    )
    if job_ids is None:
        conn.execute(_CLEAR + "phases_summed IS NULL")
        _write(conn, conn.execute(select + " ORDER BY job_id, seq", names))
        return
    unique = sorted(set(job_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        conn.execute(_CLEAR + f"job_id IN ({marks})", chunk)
        rows = conn.execute(select + f" AND job_id IN ({marks}) ORDER BY job_id, seq", [*names, *chunk]).fetchall()
        _write(conn, rows)


def _write(conn: Any, rows: Iterable[Sequence[Any]]) -> None:
    phase_of = STARTUP_SECTION_PHASES
    updates: list[tuple[Any, ...]] = []
    current = None
    durations: list[tuple[str, float]] = []
    for job_id, name, duration in rows:
        if job_id != current:
            if durations:
                updates.append((*phase_sums(durations), current))
                durations = []
            if len(updates) >= 10_000:
                conn.executemany(_SET, updates)
                updates = []
            current = job_id
        durations.append((phase_of[name], duration))
    if durations:
        updates.append((*phase_sums(durations), current))
    if updates:
        conn.executemany(_SET, updates)
