"""Loading a :class:`~cidash.metrics.Dataset` from the store (kept apart from the pure metrics).

``load_dataset(store, project, since=...)`` reads pipelines, jobs (retried ones too; metrics decide), parsed
log facts, the image-tag history, critical-file checksums and the latest stored CI config of the criteria ref,
whose cache entries are resolved with :mod:`cidash.ciconfig`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cidash.errors import CidashError, UsageError
from cidash.metrics import ARCHIVE_SECTIONS, STARTUP_PHASES, Dataset, ImageHistory, JobCacheConfig
from cidash.models import CacheEvent, ImageRef, Job, Pipeline, Project, Section, TraceFacts
from cidash.store import Store, from_db_time, to_db_time


def cache_configs_from_text(text: str, name: str) -> tuple[JobCacheConfig, ...]:
    """The cache entries of a CI file's jobs, as metrics need them. Raises InputError for broken YAML."""
    from cidash.ciconfig import load_ci_text

    ci = load_ci_text(text, name)
    out = []
    for job, cache in ci.cache_entries():
        if cache.key_files:
            prefix = cache.prefix if cache.prefix is not None else str(cache.index)
            kind = "files_commits" if cache.files_commits else "files"
            key = f"{prefix}-{{{kind}: {', '.join(sorted(cache.key_files))}}}"
        else:
            key = cache.key if cache.key is not None else "default"
        out.append(
            JobCacheConfig(
                job=job.name,
                index=cache.index,
                key=key,
                key_files=len(cache.key_files),
                policy=cache.policy,
                resource_group=job.resource_group,
                line=cache.line or None,
            )
        )
    return tuple(out)


def _facts(store: Store, job_ids: Sequence[int]) -> dict[int, TraceFacts]:
    return store.job_facts(job_ids)  # the store reads a whole dataset's ids in one range scan per table


def resolve_project(store: Store, wanted: str | None, configured: Iterable[str] = ()) -> Project:
    """The project to report on: ``wanted`` (path or id), else the only configured one, else the only stored one."""
    if wanted:
        project = store.project(wanted)
        if project is None:
            raise UsageError(f"project {wanted} is not in the store {store.location}", hint="run 'cidash sync' first")
        return project
    configured = tuple(configured)
    if len(configured) == 1:
        project = store.project(configured[0])
        if project is None:
            raise UsageError(
                f"project {configured[0]} is not in the store {store.location}", hint="run 'cidash sync' first"
            )
        return project
    projects = store.projects()
    if not projects:
        raise UsageError(f"the store {store.location} holds no project yet", hint="run 'cidash sync' first")
    if len(projects) > 1:
        names = ", ".join(p.path for p in projects[:5])
        raise UsageError(f"the store holds several projects ({names}); choose one with --project")
    return projects[0]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk load and its evaluation (restored after, also on errors).

    Loading a 10,000-pipeline store allocates about a million small objects (jobs, facts, sections), none of them
    in reference cycles; each allocation burst triggers collections that rescan everything already loaded, which
    took 30-50 % of the load. Reference counting still frees everything as usual. ``cidash check``, ``compare``,
    ``export`` and the dashboard's loads use it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: A span of pipeline creation times ``[start, end)`` (None: unbounded on that side).
Span = tuple[datetime | None, datetime | None]


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """``spans`` as disjoint spans, oldest first (overlapping or touching spans joined)."""
    lo = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(spans, key=lambda s: s[0] or lo)
    out: list[Span] = []
    for start, end in ordered:
        if out:
            p_start, p_end = out[-1]
            if p_end is None or (start is not None and start <= p_end) or start is None:
                out[-1] = (p_start, None if p_end is None or end is None else max(p_end, end))
                continue
        out.append((start, end))
    return out


#: The runner sections a windowed dataset keeps: those of the start-up phases (:func:`cidash.metrics.startup_phases`)
#: and the cache uploads (:func:`cidash.metrics.write_window`); no metric reads the others (script, artifacts
#: upload, user sections), which are most of a log's sections.
def _kept_sections() -> tuple[str, ...]:
    from cidash.logparse import SECTION_PHASES

    startup = [name for name, phase in SECTION_PHASES.items() if phase in STARTUP_PHASES]
    return tuple(sorted({*startup, *ARCHIVE_SECTIONS}))


_JOB_COLUMNS = (
    "j.project_id, j.id, j.pipeline_id, j.name, j.stage, j.status, j.ref, j.sha, j.created_at, j.started_at, "
    "j.finished_at, j.duration, j.queued_duration, j.failure_reason, j.allow_failure, j.retried, j.runner, j.web_url"
)


def _span_where(
    project: Project, start: datetime | None, end: datetime | None, ref: str | None = None
) -> tuple[str, list[Any]]:
    """The pipelines of ``project`` created in ``[start, end)`` (on ``ref`` when given), as an SQL condition on
    ``pipelines``."""
    where: list[str] = ["project_id = ?"]
    params: list[Any] = [project.id]
    if ref is not None:
        where.append("ref = ?")
        params.append(ref)
    if start is not None:
        where.append("created_at >= ?")
        params.append(to_db_time(start))
    if end is not None:
        where.append("created_at < ?")
        params.append(to_db_time(end))
    return " AND ".join(where), params


def _overlap(a: Span, b: Span) -> bool:
    lo = datetime.min.replace(tzinfo=UTC)
    hi = datetime.max.replace(tzinfo=UTC)
    return (a[0] or lo) < (b[1] or hi) and (b[0] or lo) < (a[1] or hi)


def _load_span(
    store: Store,
    project: Project,
    start: datetime | None,
    end: datetime | None,
    *,
    startup_only: bool = False,
    phases: bool = True,
    ref: str | None = None,
) -> tuple[list[Pipeline], list[Job], dict[int, TraceFacts]]:
    """The pipelines created in ``[start, end)`` (on ``ref`` when given), all their jobs (by pipeline, so a retry
    made after ``end`` still comes) and the jobs' log facts, read with a few statements; repeated strings (names,
    refs, SHAs, cache keys) and identical cache events and image references are shared rather than copied per
    job."""
    pipelines = store.pipelines(project.id, since=start, until=end, ref=ref)
    if not pipelines:
        return [], [], {}
    strings: dict[Any, Any] = {}
    intern = strings.setdefault
    when = from_db_time
    jobs: list[Job] = []
    for k in range(0, len(pipelines), _PIPELINES_PER_READ):  # a few thousand pipelines' rows in memory at once
        sub_start = start if k == 0 else pipelines[k].created_at
        after = k + _PIPELINES_PER_READ
        sub_end = pipelines[after].created_at if after < len(pipelines) else end
        cond, params = _span_where(project, sub_start, sub_end, ref)
        for r in store.read(
            f"SELECT {_JOB_COLUMNS} FROM jobs j WHERE j.project_id = ? AND j.pipeline_id IN "
            f"(SELECT id FROM pipelines WHERE {cond})",
            [project.id, *params],
        ):
            jobs.append(_job(r, intern, when))
    jobs.sort(key=lambda j: (j.created_at, j.id))
    facts = _span_facts(store, [j.id for j in jobs], strings, startup_only=startup_only, phases=phases)
    return pipelines, jobs, facts


_PIPELINES_PER_READ = 4000
_JOBS_PER_READ = 30_000


def _job(r: Any, intern: Callable[[Any, Any], Any], when: Callable[[str | None], datetime | None]) -> Job:
    """A job from a row of :data:`_JOB_COLUMNS`, its repeated strings interned."""
    created = when(r[8])
    assert created is not None
    return Job(
        r[0],
        r[1],
        r[2],
        intern(r[3], r[3]),
        intern(r[4], r[4]),
        intern(r[5], r[5]),
        intern(r[6], r[6]),
        intern(r[7], r[7]),
        created,
        when(r[9]),
        when(r[10]),
        r[11],
        r[12],
        intern(r[13], r[13]),
        bool(r[14]),
        bool(r[15]),
        intern(r[16], r[16]),
        r[17],
    )


def _span_facts(
    store: Store, job_ids: list[int], strings: dict[Any, Any], *, startup_only: bool = False, phases: bool = True
) -> dict[int, TraceFacts]:
    """The log facts of ``job_ids`` (one span's jobs, ids close together: primary-key range scans filtered here,
    :data:`_JOBS_PER_READ` jobs' rows in memory at once); ``startup_only``: without runner sections and cache
    events."""
    ids = sorted(job_ids)
    out: dict[int, TraceFacts] = {}
    for k in range(0, len(ids), _JOBS_PER_READ):
        chunk = ids[k : k + _JOBS_PER_READ]
        out.update(_facts_range(store, chunk, strings, startup_only=startup_only, phases=phases))
    return out


def _facts_range(
    store: Store, job_ids: list[int], strings: dict[Any, Any], *, startup_only: bool, phases: bool
) -> dict[int, TraceFacts]:
    intern = strings.setdefault
    wanted = set(job_ids)
    lo, hi = job_ids[0], job_ids[-1]
    names = _kept_sections() if phases else tuple(sorted(ARCHIVE_SECTIONS))
    sections: dict[int, list[Section]] = {}
    for job_id, name, start, end, duration in (
        ()
        if startup_only
        else store.read(
            'SELECT job_id, name, start, "end", duration FROM job_sections WHERE job_id BETWEEN ? AND ? '
            f"AND name IN ({','.join('?' * len(names))}) ORDER BY job_id, seq",
            [lo, hi, *names],
        )
    ):
        if job_id in wanted:
            got = sections.get(job_id)
            if got is None:
                got = sections[job_id] = []
            got.append(Section(intern(name, name), start, end, duration))
    cache: dict[int, list[CacheEvent]] = {}
    for job_id, op, key, outcome, detail in (
        ()
        if startup_only
        else store.read(
            "SELECT job_id, op, key, outcome, detail FROM cache_events WHERE job_id BETWEEN ? AND ? "
            "ORDER BY job_id, seq",
            [lo, hi],
        )
    ):
        if job_id in wanted:
            row = ("cache", op, key, outcome, detail)
            event = strings.get(row)
            if event is None:
                event = strings[row] = CacheEvent(op, intern(key, key), outcome, detail)
            cache.setdefault(job_id, []).append(event)
    out: dict[int, TraceFacts] = {}
    for r in store.read(
        "SELECT job_id, runner_version, executor, truncated, startup_seconds, image_name, image_id, image_digest, "
        "image_pulled FROM job_facts WHERE job_id BETWEEN ? AND ? ORDER BY job_id",
        [lo, hi],
    ):
        job_id = r[0]
        if job_id not in wanted:
            continue
        image = None
        if r[5] is not None:
            pulled = None if r[8] is None else bool(r[8])
            key = ("image", r[5], r[6], r[7], pulled)
            image = strings.get(key)
            if image is None:
                image = strings[key] = ImageRef(r[5], r[6], r[7], pulled)
        out[job_id] = TraceFacts(
            intern(r[1], r[1]),
            intern(r[2], r[2]),
            bool(r[3]),
            tuple(sections.get(job_id, ())),
            r[4],
            image,
            tuple(cache.get(job_id, ())),
        )
    return out


def load_dataset(
    store: Store,
    project: Project,
    *,
    since: datetime | None = None,
    config_ref: str | None = None,
    as_of: datetime | None = None,
    spans: Sequence[Span] | None = None,
    startup_only: Sequence[Span] = (),
    phases: bool = True,
    image_history: ImageHistory | None = None,
    ref: str | None = None,
) -> Dataset:
    """Everything metrics read for ``project``, pipelines created since ``since`` (all when None).

    ``config_ref``: whose CI config to resolve (default: the project's default branch, else any ref).
    ``as_of``: the history as it stood then (``--now``): see :meth:`Dataset.as_of`; the CI config is the one of the
    newest pipeline created by then.
    ``spans``: only the pipelines created in these spans (and all their jobs), instead of ``since``: what
    :func:`cidash.snapshot.build_snapshot` loads (the periods the criteria judge), with ``image_history`` (the
    whole history's CI-image changes, from the database) that chooses them; ``startup_only``: spans whose jobs'
    facts are read for their start-ups only (no runner sections, no cache events: the baseline, which only the
    start-up criterion reads), unless they overlap ``spans``; ``phases`` false: the runner sections of the
    start-up phases are left out too (``check``, whose criteria read start-ups as a whole: the phases of
    :attr:`~cidash.metrics.JobStartup.phases` come out empty); ``ref``: only the pipelines of that ref in
    ``spans`` (the criteria ref: every criterion judges it, see :func:`cidash.snapshot.build_snapshot`).
    """
    if spans is None:
        pipelines = tuple(store.pipelines(project.id, since=since))
        ids = {p.id for p in pipelines}
        jobs = tuple(j for j in store.jobs(project.id, since=since) if j.pipeline_id in ids)
        facts = _facts(store, [j.id for j in jobs])
    else:
        all_pipelines: list[Pipeline] = []
        all_jobs: list[Job] = []
        facts = {}
        full = merge_spans(spans)
        light: list[Span] = []
        for span in merge_spans(startup_only):
            if any(_overlap(span, other) for other in full):
                full = merge_spans([*full, span])  # a span read in full anyway
            else:
                light.append(span)
        for start, end, startups in sorted(
            [(a, b, False) for a, b in full] + [(a, b, True) for a, b in light],
            key=lambda s: s[0] or datetime.min.replace(tzinfo=UTC),
        ):
            ps, js, fs = _load_span(store, project, start, end, startup_only=startups, phases=phases, ref=ref)
            all_pipelines.extend(ps)
            all_jobs.extend(js)
            facts.update(fs)
        all_jobs.sort(key=lambda j: (j.created_at, j.id))  # the order of the whole-history load
        pipelines, jobs = tuple(all_pipelines), tuple(all_jobs)
    tags = tuple(s.tag for s in store.image_tags(project.id))
    checksums = tuple(store.file_checksums(project.id))
    ref = config_ref or project.default_branch
    stored = store.latest_ci_config(project.id, ref, created_by=as_of) if ref else None
    if stored is None:
        stored = store.latest_ci_config(project.id, created_by=as_of)
    caches: tuple[JobCacheConfig, ...] = ()
    known = False
    if stored is not None and stored.content is not None:
        try:
            caches = cache_configs_from_text(stored.content, stored.path)
            known = True
        except CidashError:
            known = False
    ds = Dataset(
        project=project,
        pipelines=pipelines,
        jobs=jobs,
        facts=facts,
        image_tags=tags,
        checksums=checksums,
        ci_caches=caches,
        ci_config_ref=(stored.ref if stored else None) or ref,
        ci_config_sha=stored.sha if stored else None,
        ci_config_known=known,
        image_history=image_history,
    )
    return ds.as_of(as_of)
