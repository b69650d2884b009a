"""Every read the views need beyond the :class:`~cidash.snapshot.Snapshot`, over a :class:`~cidash.store.Store`.

The pipeline list pages with ``LIMIT``/``OFFSET`` on indexed columns (a 10,000-pipeline store stays fluid) rather
than loading everything; one pipeline's jobs come with their stored log facts; the last cache key seen in logs
follows the one rule ``cidash key`` and the dashboard share. Every statement runs through :meth:`Store.read` (the
store's own connection, under its lock): no second connection, no SQL in the views.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cidash.models import Job, Pipeline, StoredJobFacts
from cidash.stats import quantile
from cidash.store import PIPELINE_COLUMNS, pipeline_from_row

if TYPE_CHECKING:
    from cidash.store import Store

# ---------------------------------------------------------------------------------------------------------------
# Pipelines, paged
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineFilter:
    """``/`` filter text: ``ref:X status:Y source:Z`` terms and bare words (matching any of the three)."""

    ref: str | None = None
    status: str | None = None
    source: str | None = None
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PipelineFilter:
        ref = status = source = None
        words = []
        for term in text.split():
            key, sep, value = term.partition(":")
            if sep and key in ("ref", "status", "source") and value:
                if key == "ref":
                    ref = value
                elif key == "status":
                    status = value
                else:
                    source = value
            else:
                words.append(term)
        return cls(ref, status, source, tuple(words))

    def sql(self) -> tuple[str, list[Any]]:
        """The WHERE terms (joined by AND; empty for no filter) and their parameters. Every value matches as a
        substring, ``%``, ``_`` and ``\\`` taken literally."""
        where: list[str] = []
        params: list[Any] = []
        for col, value in (("ref", self.ref), ("status", self.status), ("source", self.source)):
            if value is not None:
                where.append(f"{col} LIKE ? ESCAPE '\\'")
                params.append(_like(value))
        for w in self.words:
            where.append(
                "(ref LIKE ? ESCAPE '\\' OR status LIKE ? ESCAPE '\\' OR source LIKE ? ESCAPE '\\' "
                "OR CAST(id AS TEXT) = ?)"
            )
            params.extend([_like(w), _like(w), _like(w), w.lstrip("#")])
        return " AND ".join(where), params


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class PipelineRow:
    pipeline: Pipeline
    jobs: int
    startup_median: float | None
    image: str
    cache_hits: int
    cache_misses: int
    cache_other: int

    @property
    def cache_summary(self) -> str:
        total = self.cache_hits + self.cache_misses + self.cache_other
        if total == 0:
            return "—"
        parts = [f"{self.cache_hits} hit"]
        if self.cache_misses:
            parts.append(f"{self.cache_misses} miss")
        if self.cache_other:
            parts.append(f"{self.cache_other} other")
        return ", ".join(parts)


def count_pipelines(store: Store, project_id: int, filt: PipelineFilter) -> int:
    where, params = filt.sql()
    sql = "SELECT count(*) FROM pipelines WHERE project_id = ?" + (f" AND {where}" if where else "")
    return int(store.read(sql, [project_id, *params])[0][0])


def query_pipelines(
    store: Store, project_id: int, filt: PipelineFilter, *, offset: int = 0, limit: int = 100
) -> list[PipelineRow]:
    """One page of pipelines, newest first, with per-pipeline start-up, image and cache summaries."""
    where, params = filt.sql()
    sql = (
        f"SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE project_id = ?"
        + (f" AND {where}" if where else "")
        + " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    pipelines = [pipeline_from_row(r) for r in store.read(sql, [project_id, *params, limit, offset])]
    if not pipelines:
        return []
    ids = [p.id for p in pipelines]
    marks = ",".join("?" * len(ids))
    startups: dict[int, list[float]] = defaultdict(list)
    images: dict[int, Counter[str]] = defaultdict(Counter)
    njobs: Counter[int] = Counter()
    for pid, startup, image_name in store.read(
        "SELECT j.pipeline_id, f.startup_seconds, f.image_name FROM jobs j LEFT JOIN job_facts f ON f.job_id = j.id "
        f"WHERE j.project_id = ? AND j.pipeline_id IN ({marks}) AND j.retried = 0",
        [project_id, *ids],
    ):
        njobs[pid] += 1
        if startup is not None:
            startups[pid].append(float(startup))
        if image_name:
            label = image_name.rsplit("/", 1)[-1]
            images[pid][label] += 1
    cache: dict[int, Counter[str]] = defaultdict(Counter)
    for pid, outcome, count in store.read(
        "SELECT j.pipeline_id, c.outcome, count(*) FROM jobs j JOIN cache_events c ON c.job_id = j.id "
        f"WHERE j.project_id = ? AND j.pipeline_id IN ({marks}) AND c.op = 'restore' GROUP BY 1, 2",
        [project_id, *ids],
    ):
        cache[pid][outcome] += count
    rows = []
    for p in pipelines:
        c = cache.get(p.id, Counter())
        rows.append(
            PipelineRow(
                p,
                njobs[p.id],
                quantile(startups[p.id], 0.5) if startups.get(p.id) else None,
                images[p.id].most_common(1)[0][0] if images.get(p.id) else "—",
                c.get("hit", 0),
                c.get("miss", 0),
                sum(v for k, v in c.items() if k not in ("hit", "miss")),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------
# One pipeline's jobs
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    job: Job
    facts: StoredJobFacts | None

    def phases(self) -> dict[str, float | None]:
        f = self.facts
        if f is None:
            return {}
        return {
            "prepare": f.prepare_seconds,
            "sources": f.sources_seconds,
            "cache": f.cache_seconds,
            "artifacts": f.artifacts_seconds,
            "script": f.script_seconds,
            "upload": f.upload_seconds,
        }


def pipeline_jobs(store: Store, pipeline_id: int) -> list[JobRow]:
    """A pipeline's jobs (oldest first) with their stored log facts."""
    jobs = store.jobs(pipeline_id=pipeline_id)
    jobs.sort(key=lambda j: (j.created_at, j.id))
    facts = store.stored_job_facts([j.id for j in jobs])
    return [JobRow(j, facts.get(j.id)) for j in jobs]
