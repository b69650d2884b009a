"""Parsed job logs: facts, sections and cache events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from cidash.errors import StoreError
from cidash.models import (
    CacheEvent,
    CacheOp,
    CacheOutcome,
    ImageRef,
    Section,
    StoredCacheEvent,
    StoredJobFacts,
    TraceFacts,
)
from cidash.store.base import StoreBase
from cidash.store.eventstext import events_text
from cidash.store.phases import section_sums, write_sums
from cidash.store.rows import _bool_or_none, _now, to_db_time, upsert_sql

_FACTS_UPSERT = upsert_sql(
    "job_facts",
    "job_id, project_id, runner_version, executor, truncated, startup_seconds, image_name, image_id, image_digest, "
    "image_pulled, prepare_seconds, sources_seconds, cache_seconds, artifacts_seconds, script_seconds, "
    "upload_seconds, log_bytes, parsed_at, cache_events",
    1,
)


class FactsMixin(StoreBase):
    """Parsed job logs: facts, sections and cache events."""

    # -- job facts ---------------------------------------------------------------------------------------------

    def save_job_facts(
        self,
        job_id: int,
        facts: TraceFacts,
        *,
        project_id: int | None = None,
        log_bytes: int | None = None,
        parsed_at: datetime | None = None,
        phases: Mapping[str, float] | None = None,
    ) -> None:
        """Store one job's parsed log (replacing an earlier parse) and mark the job's log ``parsed``.

        ``phases``: seconds per phase of :data:`cidash.models.PHASES` (what
        :func:`cidash.logparse.phase_durations` sums); a phase left out is stored NULL. The store does not parse:
        the caller (the sync) computes what it stores."""
        self.save_many_job_facts(
            [(job_id, facts, log_bytes)],
            project_id=project_id,
            parsed_at=parsed_at,
            phases=None if phases is None else {job_id: phases},
        )

    def save_many_job_facts(
        self,
        items: Sequence[tuple[int, TraceFacts, int | None]],
        *,
        project_id: int | None = None,
        parsed_at: datetime | None = None,
        phases: Mapping[int, Mapping[str, float]] | None = None,
    ) -> None:
        """:meth:`save_job_facts` for many ``(job_id, facts, log_bytes)`` at once, in one transaction (``phases``:
        each job's seconds per phase, by job id; a job left out gets NULL phase columns).

        A handful of statements per batch instead of six per job: each SQLite call releases and re-takes the GIL,
        which a sync's busy download threads make expensive.
        """
        items = list({item[0]: item for item in items}.values())  # a job given twice: its last facts
        if not items:
            return
        with self.transaction():
            ids = [job_id for job_id, _, _ in items]
            projects: dict[int, int] = {}
            if project_id is None:
                for chunk_start in range(0, len(ids), 500):
                    chunk = ids[chunk_start : chunk_start + 500]
                    marks = ",".join("?" * len(chunk))
                    for row in self._query(f"SELECT id, project_id FROM jobs WHERE id IN ({marks})", chunk):
                        projects[int(row[0])] = int(row[1])
                missing = [i for i in ids if i not in projects]
                if missing:
                    raise StoreError(f"job {missing[0]} is not in the store; upsert it before its facts")
            when = to_db_time(parsed_at or _now())
            fact_rows: list[tuple[Any, ...]] = []
            section_rows: list[tuple[Any, ...]] = []
            cache_rows: list[tuple[Any, ...]] = []
            sum_rows: list[tuple[Any, ...]] = []
            no_phases: Mapping[str, float] = {}
            for job_id, facts, log_bytes in items:
                pid = project_id if project_id is not None else projects[job_id]
                job_phases = no_phases if phases is None else phases.get(job_id, no_phases)
                image = facts.image
                fact_rows.append(
                    (
                        job_id,
                        pid,
                        facts.runner_version,
                        facts.executor,
                        int(facts.truncated),
                        facts.startup_seconds,
                        image.name if image else None,
                        image.id if image else None,
                        image.digest if image else None,
                        None if image is None or image.pulled is None else int(image.pulled),
                        job_phases.get("prepare"),
                        job_phases.get("sources"),
                        job_phases.get("cache"),
                        job_phases.get("artifacts"),
                        job_phases.get("script"),
                        job_phases.get("upload"),
                        log_bytes,
                        when,
                        events_text((c.op, c.key, c.outcome, c.detail) for c in facts.cache),
                    )
                )
                section_rows.extend(
                    (job_id, i, x.name, x.start, x.end, x.duration) for i, x in enumerate(facts.sections)
                )
                sum_rows.append((*section_sums(facts.sections), job_id))
                cache_rows.extend((job_id, i, pid, c.op, c.key, c.outcome, c.detail) for i, c in enumerate(facts.cache))
            id_rows = [(job_id,) for job_id in ids]
            conn = self._conn

            def go() -> None:
                conn.executemany("DELETE FROM job_sections WHERE job_id = ?", id_rows)
                conn.executemany("DELETE FROM cache_events WHERE job_id = ?", id_rows)
                conn.executemany(_FACTS_UPSERT, fact_rows)
                conn.executemany(
                    'INSERT INTO job_sections (job_id, seq, name, start, "end", duration) VALUES (?, ?, ?, ?, ?, ?)',
                    section_rows,
                )
                conn.executemany(
                    "INSERT INTO cache_events (job_id, seq, project_id, op, key, outcome, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    cache_rows,
                )
                conn.executemany("UPDATE jobs SET log_state = 'parsed' WHERE id = ?", id_rows)
                self._copy_job_columns(job_ids=ids)
                write_sums(conn, sum_rows)  # the sections just written, summed (schema version 9)

            self._run(go)

    def stored_job_facts(self, job_ids: Iterable[int]) -> dict[int, StoredJobFacts]:
        """Facts with phase columns for the given jobs (jobs without parsed logs are absent)."""
        result: dict[int, StoredJobFacts] = {}
        for job_id, project_id, facts, r in self._read_facts(job_ids):
            result[job_id] = StoredJobFacts(
                job_id=job_id,
                project_id=project_id,
                facts=facts,
                prepare_seconds=r[10],
                sources_seconds=r[11],
                cache_seconds=r[12],
                artifacts_seconds=r[13],
                script_seconds=r[14],
                upload_seconds=r[15],
                log_bytes=r[16],
            )
        return result

    def job_facts(self, job_ids: Iterable[int]) -> dict[int, TraceFacts]:
        """Parsed log facts of the given jobs (jobs without parsed logs are absent)."""
        return {job_id: facts for job_id, _, facts, _ in self._read_facts(job_ids)}

    def image_names_and_digests(self, project_id: int) -> list[tuple[str, str]]:
        """The distinct ``(image_name, image_digest)`` pairs the project's parsed logs named (both set), from the
        ``job_facts_image_runs`` index (in no order a caller may rely on), by a skip scan: the next name after the last
        one found, then each name's next digest, one index seek each. ``SELECT DISTINCT`` walked the whole index:
        0.05 s on SQLite for 400,000 logs naming three pairs, and on PostgreSQL ~0.13 s of wall clock at 50,000
        pipelines (``cidash.queries.image_history`` asks for them on every ``check``); the same SQL runs on both
        (``min`` and ``>`` agree on the order, whatever the collation)."""
        names = self._query(
            "WITH RECURSIVE n(name) AS (SELECT (SELECT min(image_name) FROM job_facts WHERE project_id = ?) "
            "UNION ALL SELECT (SELECT min(image_name) FROM job_facts WHERE project_id = ? AND image_name > n.name) "
            "FROM n WHERE n.name IS NOT NULL) SELECT name FROM n WHERE name IS NOT NULL",
            [project_id, project_id],
        )
        out: list[tuple[str, str]] = []
        for (name,) in names:
            digests = self._query(
                "WITH RECURSIVE d(digest) AS (SELECT (SELECT min(image_digest) FROM job_facts WHERE project_id = ? "
                "AND image_name = ?) UNION ALL SELECT (SELECT min(image_digest) FROM job_facts WHERE project_id = ? "
                "AND image_name = ? AND image_digest > d.digest) FROM d WHERE d.digest IS NOT NULL) "
                "SELECT digest FROM d WHERE digest IS NOT NULL",
                [project_id, name, project_id, name],
            )
            out.extend((name, digest) for (digest,) in digests)
        return out

    def _read_facts(self, job_ids: Iterable[int]) -> Iterator[tuple[int, int, TraceFacts, Sequence[Any]]]:
        """(job id, project id, facts, the job_facts row) of the given jobs that have facts, by job id.

        Many ids close together (a whole dataset) are read with one primary-key range scan per table and filtered
        here, a few times faster than ``IN (...)`` lists of 500; sparse ids still use ``IN`` lists.
        """
        ids = sorted(set(job_ids))
        if not ids:
            return
        groups: list[tuple[list[int], str, list[int], set[int] | None]]
        if len(ids) > 2000 and ids[-1] - ids[0] < 4 * len(ids):
            groups = [(ids, "job_id BETWEEN ? AND ?", [ids[0], ids[-1]], set(ids))]
        else:
            groups = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                groups.append((chunk, f"job_id IN ({','.join('?' * len(chunk))})", chunk, None))
        section = Section
        event = CacheEvent
        for _, where, params, wanted in groups:
            sections: dict[int, list[Section]] = {}
            for r in self._query(
                f'SELECT job_id, name, start, "end", duration FROM job_sections WHERE {where} ORDER BY job_id, seq',
                params,
            ):
                if wanted is None or r[0] in wanted:
                    got = sections.get(r[0])
                    if got is None:
                        got = sections[r[0]] = []
                    got.append(section(r[1], r[2], r[3], r[4]))
            cache: dict[int, list[CacheEvent]] = {}
            for r in self._query(
                f"SELECT job_id, op, key, outcome, detail FROM cache_events WHERE {where} ORDER BY job_id, seq",
                params,
            ):
                if wanted is None or r[0] in wanted:
                    cache.setdefault(r[0], []).append(event(r[1], r[2], r[3], r[4]))
            for r in self._query(
                "SELECT job_id, project_id, runner_version, executor, truncated, startup_seconds, image_name, "
                "image_id, image_digest, image_pulled, prepare_seconds, sources_seconds, cache_seconds, "
                f"artifacts_seconds, script_seconds, upload_seconds, log_bytes FROM job_facts WHERE {where} "
                "ORDER BY job_id",
                params,
            ):
                if wanted is not None and r[0] not in wanted:
                    continue
                image = ImageRef(r[6], r[7], r[8], _bool_or_none(r[9])) if r[6] is not None else None
                facts = TraceFacts(
                    r[2], r[3], bool(r[4]), tuple(sections.get(r[0], ())), r[5], image, tuple(cache.get(r[0], ()))
                )
                yield r[0], r[1], facts, r

    def cache_events(
        self,
        project_id: int | None = None,
        *,
        key: str | None = None,
        op: str | None = None,
        job_ids: Iterable[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StoredCacheEvent]:
        """Cache events, ordered by job id then log order; ``since``/``until`` filter on the job's created_at."""
        where: list[str] = []
        params: list[Any] = []
        if project_id is not None:
            where.append("c.project_id = ?")
            params.append(project_id)
        if key is not None:
            where.append("c.key = ?")
            params.append(key)
        if op is not None:
            where.append("c.op = ?")
            params.append(op)
        if job_ids is not None:
            ids = list(job_ids)
            where.append(f"c.job_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        if since is not None:
            where.append("j.created_at >= ?")
            params.append(to_db_time(since))
        if until is not None:
            where.append("j.created_at < ?")
            params.append(to_db_time(until))
        sql = (
            "SELECT c.project_id, c.job_id, c.seq, c.op, c.key, c.outcome, c.detail FROM cache_events c "
            "LEFT JOIN jobs j ON j.id = c.job_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY c.job_id, c.seq"
        return [
            StoredCacheEvent(
                project_id=r[0],
                job_id=r[1],
                seq=r[2],
                op=cast(CacheOp, r[3]),
                key=r[4],
                outcome=cast(CacheOutcome, r[5]),
                detail=r[6],
            )
            for r in self._query(sql, params)
        ]
