"""Every read the views need beyond the :class:`~cidash.snapshot.Snapshot`, over a :class:`~cidash.store.Store`.

The pipeline list pages with ``LIMIT``/``OFFSET`` on indexed columns (a 10,000-pipeline store stays fluid) rather
than loading everything; one pipeline's jobs come with their stored log facts; the last cache key seen in logs
follows the one rule ``cidash key`` and the dashboard share. Every statement runs through :meth:`Store.read` (the
store's own connection, under its lock): no second connection, no SQL in the views.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from cidash.metrics import DigestChange, ImageHistory, image_repository_of, image_tag_of, normalize_digest
from cidash.models import Job, Pipeline, StoredJobFacts
from cidash.stats import quantile
from cidash.store import PIPELINE_COLUMNS, from_db_time, pipeline_from_row, to_db_time

if TYPE_CHECKING:
    from collections.abc import Sequence

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


# ---------------------------------------------------------------------------------------------------------------
# The whole history's CI-image digest changes (what chooses the periods), in the database
# ---------------------------------------------------------------------------------------------------------------

#: Jobs that ran in an image their log named, as :meth:`Dataset.as_of` leaves them at ``?`` (pipeline and job
#: created by then, finished by then or not yet): a job that finished later has no log facts as of then.
_IMAGE_JOBS = (
    "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id JOIN job_facts f ON f.job_id = j.id "
    "WHERE j.project_id = ? AND f.image_name IS NOT NULL AND f.image_digest IS NOT NULL AND j.started_at IS NOT NULL"
)
_AS_OF = " AND p.created_at <= ? AND j.created_at <= ? AND (j.finished_at IS NULL OR j.finished_at <= ?)"


def _time(value: Any) -> datetime:
    out = from_db_time(value) if isinstance(value, str) else value
    assert isinstance(out, datetime)
    return out if out.tzinfo is not None else out.replace(tzinfo=UTC)


def _image_jobs_where(project_id: int, ref: str | None, as_of: datetime | None) -> tuple[str, list[Any]]:
    sql = _IMAGE_JOBS
    params: list[Any] = [project_id]
    if ref is not None:
        sql += " AND p.ref = ?"
        params.append(ref)
    if as_of is not None:
        t = to_db_time(as_of)
        sql += _AS_OF
        params.extend([t, t, t])
    return sql, params


def _ci_image_names(
    store: Store, project_id: int, ref: str | None, hint: str | None, as_of: datetime | None
) -> tuple[list[str], list[str]]:
    """The image names (with tag) and raw digests of the jobs :func:`cidash.metrics.ci_image_jobs` keeps: names
    whose repository contains ``hint`` when any job ran one, else the repository most jobs ran (ties: the one
    that ran first).

    What runs when no name matches the hint (a CI image not named ``<project>/ci`` and no ``[image] repository``).
    The jobs of each ``(name, raw digest)`` pair the project's logs named (:meth:`Store.image_names_and_digests`,
    a skip scan) are counted on the ``job_facts_image_runs`` index, one range each (the ref's jobs as of
    ``as_of``): the index is counted, no job or pipeline row is read. A ``GROUP BY`` over the ref's jobs joined to
    their pipelines took ~0.5-2 s at 50,000 pipelines (bench/README.md, "Core at scale"); this ~0.05 s. Only when
    two repositories tie on jobs is the first job of each read (:func:`_ci_image_names_grouped`)."""
    pairs = [(n, d) for n, d in store.image_names_and_digests(project_id) if normalize_digest(d) is not None]
    counts = _pair_counts(store, project_id, ref, as_of, pairs)
    repos: dict[str, list[Any]] = {}  # repository -> [jobs, names]
    digests: set[str] = set()
    for (name, raw), count in zip(pairs, counts, strict=True):
        if not count:
            continue
        digests.add(raw)
        entry = repos.setdefault(image_repository_of(name), [0, set()])
        entry[0] += count
        entry[1].add(name)
    if not repos:
        return [], []
    chosen = [r for r in repos if hint and hint in r]
    if not chosen:
        most = max(entry[0] for entry in repos.values())
        chosen = [r for r, entry in repos.items() if entry[0] == most]
        if len(chosen) > 1:
            return _ci_image_names_grouped(store, project_id, ref, hint, as_of)  # a tie: the first to run wins
    return sorted({n for r in chosen for n in repos[r][1]}), sorted(digests)


#: How many ``(name, digest)`` pairs one statement of :func:`_pair_counts` counts (SQLite joins at most 500
#: ``SELECT``s with ``UNION ALL``).
PAIRS_PER_STATEMENT = 200


def _pair_counts(
    store: Store, project_id: int, ref: str | None, as_of: datetime | None, pairs: list[tuple[str, str]]
) -> list[int]:
    """For each ``(name, raw digest)`` pair, how many jobs of ``ref`` (None: of any ref) that ran it had started
    and were in the history as of ``as_of`` (``visible_at``, see the schema): one range of the
    ``job_facts_image_runs`` index each, :data:`PAIRS_PER_STATEMENT` of them to a statement."""
    where = "a.project_id = ? AND a.image_name = ? AND a.image_digest = ? AND a.job_started_at IS NOT NULL"
    where += " AND a.pipeline_ref = ?" if ref is not None else " AND a.pipeline_ref IS NOT NULL"
    where += " AND a.visible_at <= ?" if as_of is not None else ""
    counts = [0] * len(pairs)
    for start in range(0, len(pairs), PAIRS_PER_STATEMENT):
        arms: list[str] = []
        params: list[Any] = []
        for i in range(start, min(start + PAIRS_PER_STATEMENT, len(pairs))):
            arms.append(f"SELECT {i} AS i, count(*) AS n FROM job_facts a WHERE {where}")  # (i: our own integer)
            params += [project_id, *pairs[i]]
            if ref is not None:
                params.append(ref)
            if as_of is not None:
                params.append(to_db_time(as_of))
        for i, n in store.read(" UNION ALL ".join(arms), params):
            counts[int(i)] = int(n)
    return counts


def _ci_image_names_grouped(
    store: Store, project_id: int, ref: str | None, hint: str | None, as_of: datetime | None
) -> tuple[list[str], list[str]]:
    """:func:`_ci_image_names` by a ``GROUP BY`` over the ref's jobs joined to their pipelines and facts, with
    each pair's first job (creation time, id): what breaks a tie between two repositories."""
    where, params = _image_jobs_where(project_id, ref, as_of)
    repos: dict[str, list[Any]] = {}  # repository -> [jobs, first (created_at, id), names]
    digests: set[str] = set()
    for name, raw, count, first_at, first_id in store.read(
        f"SELECT f.image_name, f.image_digest, count(*), min(j.created_at), min(j.id) {where} "
        "GROUP BY f.image_name, f.image_digest",
        params,
    ):
        if normalize_digest(raw) is None:
            continue
        digests.add(raw)
        repo = image_repository_of(name)
        entry = repos.setdefault(repo, [0, (first_at, first_id), set()])
        entry[0] += count
        entry[1] = min(entry[1], (first_at, first_id))
        entry[2].add(name)
    if not repos:
        return [], []
    chosen = [r for r in repos if hint and hint in r]
    if not chosen:
        chosen = [min(repos, key=lambda r: (-repos[r][0], repos[r][1]))]
    return sorted({n for r in chosen for n in repos[r][2]}), sorted(digests)


def _hinted_image_names(store: Store, project_id: int, hint: str | None) -> tuple[list[str], list[str]]:
    """Every image name whose repository contains ``hint`` and every valid raw digest any log of the project
    named (from the ``job_facts_image_runs`` index, not the history): a superset of :func:`_ci_image_names`' answer
    that selects the same jobs whenever one of them ran such an image (the names and digests no job of the ref
    ran by then select nothing). Empty names: no log named such an image."""
    if not hint:
        return [], []
    names: set[str] = set()
    digests: set[str] = set()
    for name, raw in store.image_names_and_digests(project_id):  # (a skip scan of the index)
        if normalize_digest(raw) is None:
            continue
        digests.add(raw)
        if hint in image_repository_of(name):
            names.add(name)
    return sorted(names), sorted(digests)


def _in(values: list[str]) -> str:
    return ",".join("?" * len(values))


def _pipelines_created(store: Store, project_id: int, ids: set[int]) -> dict[int, datetime]:
    """The creation time of each pipeline in ``ids`` (a few: those where the CI image changed)."""
    if not ids:
        return {}
    wanted = sorted(ids)
    rows = store.read(
        f"SELECT id, created_at FROM pipelines WHERE project_id = ? AND id IN ({_in([str(i) for i in wanted])})",
        [project_id, *wanted],
    )
    return {pid: _time(at) for pid, at in rows}


def image_history(store: Store, project_id: int, ref: str, hint: str | None, as_of: datetime | None) -> ImageHistory:
    """:func:`cidash.metrics.image_digest_changes` of ``ref``'s whole history as of ``as_of``, computed in the
    database: only the jobs whose digest differs from the previous CI-image job's come back
    (:func:`_digest_changes`), so neither the memory nor the Python work grows with the history.

    The images that count are first taken from the index of the images the project's logs named
    (:func:`_hinted_image_names`); only when no job of ``ref`` ran one of them by ``as_of`` are they chosen from
    the history itself (:func:`_ci_image_names`: the repository most jobs ran)."""
    names, digests = _hinted_image_names(store, project_id, hint)
    found = _digest_changes(store, project_id, ref, as_of, names=names, digests=digests) if names else None
    if found is None:
        names, digests = _ci_image_names(store, project_id, ref, hint, as_of)
        found = _digest_changes(store, project_id, ref, as_of, names=names, digests=digests) if names else None
    changes, split_at = found or ([], {})

    def last_digest() -> str | None:
        """The digest of the newest CI-image job of any ref (``ci_image_jobs(ds, hint)[-1][1]``)."""
        hinted = _hinted_image_names(store, project_id, hint)
        got = _newest_digest(store, project_id, as_of, *hinted) if hinted[0] else None
        if got is None:
            any_names, any_digests = _ci_image_names(store, project_id, None, hint, as_of)
            got = _newest_digest(store, project_id, as_of, any_names, any_digests) if any_names else None
        return normalize_digest(got[0][0]) if got else None

    return ImageHistory(ref, hint, as_of, tuple(changes), split_at, last_digest)


def _newest_digest(
    store: Store, project_id: int, as_of: datetime | None, names: list[str], digests: list[str]
) -> list[Any] | None:
    """The raw digest of the newest job of any ref that ran one of ``names`` with one of ``digests`` (a one-row
    list), None when none did.

    From the ``job_facts_image_order`` index (:data:`_NEWEST_DIGEST`): each ref's newest such job, one backward
    seek per ref, the newest of those. The join of every job of the history to its pipeline and facts, sorted by
    start, cost ~0.1 s at 10,000 pipelines and ~0.45 s at 50,000 (``ImageHistory.last_digest``: the image-size
    criterion asks for it when the candidate period has no job); this ~1 ms."""
    params: list[Any] = [project_id, project_id, project_id, *names, *digests]
    if as_of is not None:
        params.append(to_db_time(as_of))
    where = _image_order_where(names, digests, as_of, ref="r.ref")
    return list(store.read(_NEWEST_DIGEST.format(where=where), params)) or None


#: The raw digest of the newest job (start order) of any ref that a ``{where}`` (:func:`_image_order_where`, its
#: ref the walked one) selects: ``r`` walks the project's refs in the ``job_facts_image_order`` index (a skip scan:
#: each step one seek to the next ref), each ref's newest selected job is one backward seek from its end, and the
#: newest of those wins. Parameters: the project id twice, then the where's without the ref.
_NEWEST_DIGEST = """
WITH RECURSIVE r(ref) AS (
    SELECT (SELECT min(a.pipeline_ref) FROM job_facts a WHERE a.project_id = ? AND a.image_name IS NOT NULL
        AND a.image_digest IS NOT NULL AND a.job_started_at IS NOT NULL)
    UNION ALL
    SELECT (SELECT min(a.pipeline_ref) FROM job_facts a WHERE a.project_id = ? AND a.image_name IS NOT NULL
        AND a.image_digest IS NOT NULL AND a.job_started_at IS NOT NULL AND a.pipeline_ref > r.ref)
    FROM r WHERE r.ref IS NOT NULL
), newest(job_id) AS (
    SELECT (SELECT a.job_id FROM job_facts a WHERE {where} ORDER BY a.job_started_at DESC, a.job_id DESC LIMIT 1)
    FROM r WHERE r.ref IS NOT NULL
)
SELECT f.image_digest FROM newest JOIN job_facts f ON f.job_id = newest.job_id
ORDER BY f.job_started_at DESC, f.job_id DESC LIMIT 1
"""


#: How many digest changes :data:`_DIGEST_CHANGES` walks to before the ordered pass takes over from the last
#: one (:func:`_digest_changes_after`). A step costs ~8 µs on SQLite and ~17 µs on PostgreSQL, a row of the
#: pass ~1 µs (bench/README.md): a history whose digest changes every few jobs (an image rebuilt by every
#: pipeline) is read faster row by row, and 256 steps cost ~2-4 ms before the pass starts.
WALK_STEPS = 256


def _digest_changes(
    store: Store, project_id: int, ref: str, as_of: datetime | None, *, names: list[str], digests: list[str]
) -> tuple[list[DigestChange], dict[int, datetime]] | None:
    """The digest changes among ``ref``'s jobs that ran one of ``names`` with one of ``digests`` (oldest first)
    and the creation time of each pipeline where one happened; None when no such job ran by ``as_of``.

    The database walks the ``job_facts_image_order`` index (schema version 8: the ref's jobs that ran a named
    image, in start order, with the copies of their pipeline's ref, their start and their entry in the history
    kept beside their facts) from change to change (:data:`_DIGEST_CHANGES`) and sends only the first job and the
    jobs whose raw digest differs from the previous job's: the history's few changes cost a few index seeks. The
    ordered pass over every such job (one Python call per row, ~1 µs: ~0.2 s at 50,000 pipelines) only takes
    over after :data:`WALK_STEPS` changes. A ``LAG`` window over the same index keeps the work in the database but
    costs more than the Python pass on SQLite (its window machinery: 0.66 s at 50,000 pipelines, bench/README.md
    "Core at scale")."""
    params: list[Any] = [project_id, ref, *names, *digests]
    if as_of is not None:
        params.append(to_db_time(as_of))
    rows: Sequence[Any] | None = _digest_runs(store, project_id, ref, as_of, names=names, digests=digests)
    if rows is None:  # runs that overlap (a digest back again), or too many: the walk from change to change
        walk = _DIGEST_CHANGES.format(where=_image_order_where(names, digests, as_of))
        rows = store.read(walk, [*params, *params, WALK_STEPS, *params])
    if not rows:
        return None  # no CI-image job ran by as_of
    # (job, name, raw digest, previous job's name, previous job's raw digest): every job between two rows ran the
    # earlier row's digest (the later row is the first that did not)
    found = [(r[1], r[3], r[4], r[5], p[4]) for p, r in pairwise(rows)]
    if rows[-1][0] >= WALK_STEPS:  # the walk stopped there: the ordered pass reads the rest
        found += _digest_changes_after(store, rows[-1], params, names=names, digests=digests, as_of=as_of)
    changes: list[DigestChange] = []
    split_at: dict[int, datetime] = {}
    kept = [f for f in found if _changed(f[4], f[2])]
    jobs = _job_starts(store, project_id, [f[0] for f in kept])
    created = _pipelines_created(store, project_id, {jobs[f[0]][0] for f in kept})
    for job_id, name, raw, prev_name, prev_raw in kept:
        pipeline_id, started = jobs[job_id]
        old, new = normalize_digest(prev_raw), normalize_digest(raw)
        assert old is not None and new is not None
        changes.append(
            DigestChange(_time(started), job_id, pipeline_id, old, new, image_tag_of(prev_name), image_tag_of(name))
        )
        split_at[pipeline_id] = created[pipeline_id]
    return changes, split_at


#: At most this many ``(name, digest)`` pairs are read as runs (:func:`_digest_runs`: two seeks each, in one
#: statement); more, and the walk finds the changes.
MAX_RUN_PAIRS = 128


def _digest_runs(
    store: Store, project_id: int, ref: str, as_of: datetime | None, *, names: list[str], digests: list[str]
) -> list[tuple[Any, ...]] | None:
    """The rows :data:`_DIGEST_CHANGES` gives (``step, job, start, name, raw digest, the previous job's name``),
    found from each raw digest's first and last job instead of a walk over the history's jobs: when no two
    digests' spans of jobs (in start order) overlap, the history is one run per digest, the runs in the order of
    their first jobs, and each run's first job is a change whose previous job is the previous run's last. The
    first and the last job of each ``(name, digest)`` pair that ran (:meth:`Store.image_names_and_digests`) are
    two seeks in the ``job_facts_image_runs`` index (schema version 11), all in one statement: ~1 ms where the
    walk read every CI-image job of the ref between two changes in the database (60-100 ms at 50,000 pipelines on
    SQLite: each step scans the run of the digest it leaves). None when two runs overlap (a digest came back:
    the walk finds each change), when there are more than :data:`WALK_STEPS` changes or :data:`MAX_RUN_PAIRS`
    pairs; ``[]`` when no such job ran by ``as_of``. ``tests/integration/test_image_history_props.py`` holds the
    changes equal to the ordered pass's on random histories (both backends)."""
    wanted_names, wanted_digests = set(names), set(digests)
    pairs = sorted(
        (n, d) for n, d in store.image_names_and_digests(project_id) if n in wanted_names and d in wanted_digests
    )
    if not pairs:
        return []
    if len(pairs) > MAX_RUN_PAIRS:
        return None
    where = (
        "a.project_id = ? AND a.pipeline_ref = ? AND a.image_name = ? AND a.image_digest = ? "
        "AND a.image_name IS NOT NULL AND a.image_digest IS NOT NULL AND a.job_started_at IS NOT NULL"
        + (" AND a.visible_at <= ?" if as_of is not None else "")
    )
    arms: list[str] = []
    params: list[Any] = []
    for name, digest in pairs:
        for order in ("", " DESC"):
            arms.append(
                "SELECT * FROM (SELECT a.job_id, a.job_started_at, a.image_name, a.image_digest FROM job_facts a "
                f"WHERE {where} ORDER BY a.job_started_at{order}, a.job_id{order} LIMIT 1) AS s{len(arms)}"
            )
            params += [project_id, ref, name, digest]
            if as_of is not None:
                params.append(to_db_time(as_of))
    # each digest's first and last job: (start, job id, name) of each (stored times are fixed-width UTC text, in
    # the order the index keeps them; job ids are unique)
    spans: dict[str, list[tuple[str, int, str]]] = {}
    for job_id, started, name, digest in store.read(" UNION ALL ".join(arms), params):
        key = (started, job_id, name)
        got = spans.get(digest)
        if got is None:
            spans[digest] = [key, key]
        elif key < got[0]:
            got[0] = key
        elif key > got[1]:
            got[1] = key
    if not spans:
        return []
    runs = sorted((first, last, digest) for digest, (first, last) in spans.items())
    if len(runs) - 1 > WALK_STEPS or any(a[1] >= b[0] for a, b in pairwise(runs)):
        return None
    rows: list[tuple[Any, ...]] = []
    previous_name = None
    for step, ((started, job_id, name), last, digest) in enumerate(runs):
        rows.append((step, job_id, started, name, digest, previous_name))
        previous_name = last[2]
    return rows


def _digest_changes_after(
    store: Store, last: Any, params: list[Any], *, names: list[str], digests: list[str], as_of: datetime | None
) -> list[tuple[int, str, str, str, str]]:
    """The digest changes after the walk's ``last`` row (``step, job, start, name, raw digest, ...``), as
    :func:`_digest_changes` lists them, by one ordered pass over the rest of the index: every row comes to Python
    (``store.scan``), its name and digest as their index in ``names`` and ``digests`` (integers to compare), and
    only the rows whose digest differs from the previous row's are kept."""
    name_code = "CASE a.image_name " + " ".join(f"WHEN ? THEN {i}" for i in range(len(names))) + " END"
    digest_code = "CASE a.image_digest " + " ".join(f"WHEN ? THEN {i}" for i in range(len(digests))) + " END"
    where = _image_order_where(names, digests, as_of)
    sql = (
        f"SELECT a.job_id, {name_code}, {digest_code} FROM job_facts a WHERE {where} "
        "AND (a.job_started_at, a.job_id) > (?, ?) ORDER BY a.job_started_at, a.job_id"
    )
    found: list[tuple[int, str, str, str, str]] = []
    prev = [names.index(last[3]), digests.index(last[4])]  # the previous row's name and digest codes

    def visit(row: Any) -> None:
        prev_d = prev[1]
        if row[2] != prev_d:
            found.append((row[0], names[row[1]], digests[row[2]], names[prev[0]], digests[prev_d]))
        prev[0], prev[1] = row[1], row[2]

    store.scan(sql, [*names, *digests, *params, last[2], last[1]], visit)
    return found


def _image_order_where(names: list[str], digests: list[str], as_of: datetime | None, *, ref: str = "?") -> str:
    """The terms that select in ``job_facts a`` a job of the ref ``ref`` (a parameter, or a column) that ran one of
    ``names`` with one of ``digests`` and is in the history as of ``as_of`` (the ``job_facts_image_order`` index's
    own conditions among them, so the index answers); its parameters: project id, the ref when ``ref`` is ``?``,
    ``names``, ``digests``, then ``as_of`` unless None."""
    sql = (
        f"a.project_id = ? AND a.pipeline_ref = {ref} AND a.image_name IS NOT NULL AND a.image_digest IS NOT NULL "
        f"AND a.job_started_at IS NOT NULL AND a.image_name IN ({_in(names)}) AND a.image_digest IN ({_in(digests)})"
    )
    return sql + (" AND a.visible_at <= ?" if as_of is not None else "")


#: ``ref``'s CI-image jobs where the raw digest changed, by a recursive walk: ``c`` starts at the first such job
#: in start order (``job_started_at, job_id``: ``job_id`` is unique, so the order is total) and each step seeks the
#: index to the first later job whose digest differs from the current one's (the rows in between are read by the
#: database, not sent), until there is none or :data:`WALK_STEPS` steps are made. Each row comes as ``step, job,
#: start, name, raw digest`` and the name the job just before it ran (one more seek, backwards: the tag that
#: changed with the digest is the previous job's, not the previous change's). Written once for SQLite and
#: PostgreSQL (``{where}``: :func:`_image_order_where`); parameters: the where's twice, the step limit, the
#: where's.
_DIGEST_CHANGES = """
WITH RECURSIVE c(step, job_id) AS (
    SELECT 0, head.job_id FROM (
        SELECT a.job_id FROM job_facts a WHERE {where} ORDER BY a.job_started_at, a.job_id LIMIT 1
    ) AS head
    UNION ALL
    SELECT c.step + 1, (
        SELECT a.job_id FROM job_facts a WHERE {where}
        AND (a.job_started_at, a.job_id) > (f.job_started_at, f.job_id) AND a.image_digest <> f.image_digest
        ORDER BY a.job_started_at, a.job_id LIMIT 1
    ) FROM c JOIN job_facts f ON f.job_id = c.job_id WHERE c.step < ?
)
SELECT c.step, f.job_id, f.job_started_at, f.image_name, f.image_digest, (
    SELECT a.image_name FROM job_facts a WHERE {where}
    AND (a.job_started_at, a.job_id) < (f.job_started_at, f.job_id)
    ORDER BY a.job_started_at DESC, a.job_id DESC LIMIT 1
) FROM c JOIN job_facts f ON f.job_id = c.job_id ORDER BY c.step
"""


def _changed(old_raw: str, new_raw: str) -> bool:
    """True when two raw digests name different images (both valid: :func:`normalize_digest` of each differ)."""
    old, new = normalize_digest(old_raw), normalize_digest(new_raw)
    return old is not None and new is not None and old != new


def _job_starts(store: Store, project_id: int, ids: list[int]) -> dict[int, tuple[int, Any]]:
    """The pipeline and the stored start of each job in ``ids`` (a few: those where the CI image changed)."""
    if not ids:
        return {}
    wanted = sorted(set(ids))
    marks = _in([str(i) for i in wanted])
    rows = store.read(
        f"SELECT id, pipeline_id, started_at FROM jobs WHERE project_id = ? AND id IN ({marks})", [project_id, *wanted]
    )
    return {job_id: (pipeline_id, started) for job_id, pipeline_id, started in rows}
