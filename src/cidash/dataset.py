"""Loading a :class:`~cidash.metrics.Dataset` from the store (kept apart from the pure metrics).

``load_dataset(store, project, since=...)`` reads pipelines, jobs (retried ones too; metrics decide), parsed
log facts, the image-tag history, critical-file checksums and the latest stored CI config of the criteria ref,
whose cache entries are resolved with :mod:`cidash.ciconfig`.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter
from typing import Any

from cidash.errors import CidashError, UsageError
from cidash.metrics import (
    ARCHIVE_SECTIONS,
    Dataset,
    ImageHistory,
    JobCacheConfig,
    PhaseSums,
    PhaseTuple,
    StartupRecord,
    fast_constructor,
    phase_tuple,
    section_phases,
    startup_phase_sums,
)
from cidash.models import NOT_RUN_STATUSES, CacheEvent, ImageRef, Job, Pipeline, Project, Section, TraceFacts
from cidash.store import PIPELINE_COLUMNS, Store, from_db_time, to_db_time


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
            _promote_survivors()
            gc.enable()


def _promote_survivors() -> None:
    """Move every object the collector tracks into its oldest generation, without a collection: what a load
    leaves alive (a million objects at 50,000 pipelines) was allocated while the collector was paused, so it
    sits in the youngest generation, and the first collections after the pause (young, then middle, then full)
    each walked all of it (~0.5 s of ``export`` or ``compare`` at 50,000 pipelines, measured with
    ``gc.callbacks``). In the oldest generation only a full collection walks it, and the interpreter runs those
    rarely (when what survived since the last one exceeds a quarter of what it kept). Nothing is kept from
    collection: ``gc.freeze`` then ``gc.unfreeze`` hands every object back to the oldest generation (cidash
    freezes nothing else)."""
    gc.freeze()
    gc.unfreeze()


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
    as_of: datetime | None = None,
    uploads: bool = True,
    narrow: bool = False,
) -> tuple[list[Pipeline], list[Job], dict[int, TraceFacts], str, list[StartupRecord], dict[int, PhaseTuple]]:
    """The pipelines created in ``[start, end)`` (on ``ref`` when given), all their jobs (by pipeline, so a retry
    made after ``end`` still comes) and the jobs' log facts, read with a few statements per few thousand
    pipelines (each job with its facts in one joined row; its runner sections and cache events selected through
    the same pipelines); repeated strings (names, refs, SHAs, cache keys) and identical cache events and image
    references are shared rather than copied per job. ``startup_only`` (with ``as_of``): no jobs, their start-ups
    as :class:`~cidash.metrics.StartupRecord` s (:func:`_read_startup_records`)."""
    strings: dict[Any, Any] = {}
    pipelines = _read_pipelines(store, project, start, end, ref, strings=strings)
    if not pipelines:
        return [], [], {}, "", [], {}
    jobs: list[Job] = []
    facts: dict[int, TraceFacts] = {}
    records: list[StartupRecord] = []
    job_phases: dict[int, PhaseTuple] | None = {} if phases else None
    latest = ""
    for k in range(0, len(pipelines), _PIPELINES_PER_READ):  # a few thousand pipelines' rows in memory at once
        sub_start = start if k == 0 else pipelines[k].created_at
        after = k + _PIPELINES_PER_READ
        sub_end = pipelines[after].created_at if after < len(pipelines) else end
        cond, params = _span_where(project, sub_start, sub_end, ref)
        if startup_only:
            assert as_of is not None
            _read_startup_records(store, project, cond, params, as_of, strings, records)
            continue
        got = _read_jobs(
            store, project, cond, params, strings, jobs, facts, phases=job_phases, uploads=uploads, narrow=narrow
        )
        latest = max(latest, got)
    # (the jobs in no order: load_dataset sorts every span's jobs at once)
    return pipelines, jobs, facts, latest, records, job_phases or {}


def _read_pipelines(
    store: Store,
    project: Project,
    start: datetime | None,
    end: datetime | None,
    ref: str | None,
    *,
    strings: dict[Any, Any],
) -> list[Pipeline]:
    """``store.pipelines(project.id, since=start, until=end, ref=ref)`` (oldest first), built by the slot-setting
    constructor with their refs, statuses and sources shared (a window reads 12,500-15,000 pipelines at 50,000)."""
    cond, params = _span_where(project, start, end, ref)
    intern = strings.setdefault
    parse = _from_text
    new = _new_pipeline
    return [
        new(
            r[0],
            r[1],
            r[2],
            intern(r[3], r[3]),
            r[4],
            intern(r[5], r[5]),
            intern(r[6], r[6]),
            parse(r[7]),
            parse(r[8]),
            None if r[9] is None else parse(r[9]),
            None if r[10] is None else parse(r[10]),
            r[11],
            r[12],
            r[13],
        )
        for r in chain.from_iterable(
            store.read_batches(f"SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE {cond} ORDER BY created_at, id", params)
        )
    ]


def sort_jobs(jobs: list[Job]) -> None:
    """Sort ``jobs`` by creation, then id (the order of a dataset's jobs): by id, then by creation, a stable sort
    keeping the ids' order among equal times, is that order, and ~half the time of one sort by ``(created_at,
    id)`` tuples (a key tuple made and compared per job: ~50 ms for a window's 100,000 jobs)."""
    jobs.sort(key=_by_id)
    jobs.sort(key=_by_creation)


_by_id = attrgetter("id")
_by_creation = attrgetter("created_at")


_PIPELINES_PER_READ = 4000

_FACT_COLUMNS = (
    "f.job_id, f.runner_version, f.executor, f.truncated, f.startup_seconds, f.image_name, f.image_id, "
    "f.image_digest, f.image_pulled"
)


def _read_jobs(  # noqa: PLR0917
    store: Store,
    project: Project,
    cond: str,
    params: list[Any],
    strings: dict[Any, Any],
    jobs: list[Job],
    facts: dict[int, TraceFacts],
    *,
    phases: dict[int, PhaseTuple] | None,
    uploads: bool = True,
    narrow: bool = False,
) -> str:
    """Append the jobs of the pipelines matching ``cond`` to ``jobs`` and their log facts to ``facts``; return
    the latest stored time at which one of them was created or finished ("" for none). ``phases`` (unless None):
    each job's start-up phases, as the store summed them from its closed start-up sections (schema version 9;
    what :func:`cidash.metrics.startup_phases` sums from the sections, which the facts then leave out: a
    :class:`~cidash.models.Section` less for each of the ~4 per job, and no row read for it). Each job's cache
    events come in its own row as one JSON text (the ``job_facts.cache_events`` column, schema version 10:
    :mod:`cidash.store.eventstext`), decoded once per distinct text (:func:`_events_of`). The cache-upload
    sections are read for the jobs that uploaded a cache only (what the writers' windows read:
    :func:`cidash.metrics.write_window`), and not at all with ``uploads`` false. ``narrow``: only the columns the
    metrics read (:func:`_read_narrow_jobs`)."""
    of_span = f"FROM jobs j {{}} WHERE j.project_id = ? AND j.pipeline_id IN (SELECT id FROM pipelines WHERE {cond})"
    span_params = [project.id, *params]
    if narrow:
        return _read_narrow_jobs(store, project, of_span, span_params, strings, jobs, facts, phases, uploads)
    intern = strings.setdefault
    events_of = _events_of(strings)
    uploaders: list[int] = []  # the jobs that uploaded a cache (created or failed): cidash.metrics.cache_writers
    no_sections: tuple[Section, ...] = ()
    latest = ""
    unsummed: list[int] = []  # logs whose phases the store has not summed (none once at schema version 9)
    new_facts = _new_facts
    for r in store.read(
        f"SELECT {_JOB_COLUMNS}, {_FACT_COLUMNS}{_PHASE_COLUMNS if phases is not None else ''}, f.cache_events "
        + of_span.format("LEFT JOIN job_facts f ON f.job_id = j.id"),
        span_params,
    ):
        job = _job(r, intern)
        jobs.append(job)
        # stored times are fixed-width UTC text: their order is the times' order (see store.to_db_time)
        latest = max(latest, r[8])
        if r[10] is not None and r[10] > latest:
            latest = r[10]
        if r[18] is None:
            continue  # no parsed log
        if phases is not None:
            if r[27] is None:
                unsummed.append(r[1])
            elif (got_phases := r[28:32]) != _NO_PHASES:
                phases[r[1]] = got_phases
        image = None
        if r[23] is not None:
            pulled = None if r[26] is None else bool(r[26])
            key = ("image", r[23], r[24], r[25], pulled)
            image = strings.get(key)
            if image is None:
                image = strings[key] = ImageRef(r[23], r[24], r[25], pulled)
        job_id = job.id
        events, uploaded = events_of(r[-1])
        if uploaded:
            uploaders.append(job_id)
        facts[job_id] = new_facts(
            intern(r[19], r[19]), intern(r[20], r[20]), bool(r[21]), no_sections, r[22], image, events
        )
    if phases is not None and unsummed:
        _sum_phases(store, unsummed, phases)
    if uploads:
        _add_upload_sections(store, uploaders, strings, facts)
    return latest


#: The columns of a job and its log facts that a comparison reads (:func:`_read_narrow_jobs`).
_NARROW_COLUMNS = (
    "j.id, j.pipeline_id, j.name, j.status, j.ref, j.created_at, j.started_at, j.finished_at, j.queued_duration, "
    "j.failure_reason, j.retried, f.startup_seconds"
)

#: At most this many distinct ``(image name, digest)`` pairs in a project's logs are read as their number in a
#: ``CASE`` (:func:`_image_codes`); more, and each row names its image as two strings (a ``CASE`` tries its
#: pairs in turn).
_MAX_IMAGE_CODES = 16
#: The image code of a row whose ``(name, digest)`` is none of the coded pairs (its digest NULL, or a pair
#: stored after they were read): its image is read by job id after the rows (:func:`_read_images`).
_OTHER_IMAGE = -1


def _read_narrow_jobs(  # noqa: PLR0917
    store: Store,
    project: Project,
    of_span: str,
    span_params: list[Any],
    strings: dict[Any, Any],
    jobs: list[Job],
    facts: dict[int, TraceFacts],
    phases: dict[int, PhaseTuple] | None,
    uploads: bool,
) -> str:
    """:func:`_read_jobs` reading only the columns the metrics, the criteria and their evidence, ``compare``, the
    JSON, CSV and Markdown exports and the dashboard's Start-up, Caches and Images tabs read
    (:data:`_NARROW_COLUMNS`: 14 of 27, ~a quarter of the rows' fetch and of their strings at 50,000 pipelines);
    the others take fixed values: ``stage`` and ``sha`` "", ``duration``, ``runner``, ``web_url``, the runner's
    version and executor None, ``allow_failure`` and ``truncated`` false, the image's id and ``pulled`` None
    (``project_id`` is the project's). ``tests/integration/test_core_window.py`` and ``test_health_window.py``
    hold what a snapshot loaded so (:class:`cidash.snapshot.Snapshot`, ``narrow``) gives equal to a full load's.
    The loop is the load's hottest (100,000 rows at 50,000 pipelines): each row is unpacked once into
    names, and a job's decoded events and image are looked up inline (no call, no key tuple built per job), ~15 %
    of its time."""
    intern = strings.setdefault
    new_job, parse, new_facts = _new_job, _from_text, _new_facts
    events_of = _events_of(strings)
    project_id = project.id
    no_sections: tuple[Section, ...] = ()
    latest = ""
    unsummed: list[int] = []
    uploaders: list[int] = []
    decoded: dict[str | None, tuple[tuple[CacheEvent, ...], bool]] = strings[_EVENTS_KEY]  # (events_of's)
    image_sql, image_params, coded = _image_codes(store, project.id, strings)
    images: dict[tuple[str, str | None], ImageRef] = strings[_IMAGES_KEY]  # (by name and digest, uncoded)
    others: list[int] = []  # the jobs whose image is none of the coded pairs
    other = _OTHER_IMAGE
    no_phases = _NO_PHASES
    sql = (
        f"SELECT {_NARROW_COLUMNS}, {image_sql}"
        f"{_PHASE_COLUMNS if phases is not None else _NO_PHASE_COLUMNS}, f.cache_events "
        + of_span.format("LEFT JOIN job_facts f ON f.job_id = j.id")
    )
    for (
        job_id,
        pipeline_id,
        name,
        status,
        ref,
        created,
        started,
        finished,
        queued,
        failure,
        retried,
        startup,
        image_code,
        image_digest,
        summed,
        prepare,
        sources,
        cache,
        artifacts,
        events_text,
    ) in chain.from_iterable(store.read_batches(sql, [*image_params, *span_params])):
        jobs.append(
            new_job(
                project_id,
                job_id,
                pipeline_id,
                intern(name, name),
                "",
                intern(status, status),
                intern(ref, ref),
                "",
                parse(created),
                None if started is None else parse(started),
                None if finished is None else parse(finished),
                None,
                queued,
                None if failure is None else intern(failure, failure),
                False,
                bool(retried),
                None,
                None,
            )
        )
        if created > latest:  # noqa: PLR1730 (a call per row less than max()); fixed-width UTC text, as in _read_jobs
            latest = created
        if finished is not None and finished > latest:
            latest = finished
        if events_text is None:
            continue  # no parsed log (a stored log's events text is never NULL: schema version 10)
        if phases is not None:
            if summed is None:
                unsummed.append(job_id)
            elif (got_phases := (prepare, sources, cache, artifacts)) != no_phases:
                phases[job_id] = got_phases
        if image_code is None:
            image = None
        elif (image := coded.get(image_code)) is None:
            if image_code == other:  # (coded: none of the pairs)
                others.append(job_id)
            else:  # (not coded: the name, then the digest)
                image = images.get((image_code, image_digest))
                if image is None:
                    image = images[image_code, image_digest] = ImageRef(image_code, None, image_digest, None)
        got = decoded.get(events_text)
        events, uploaded = got if got is not None else events_of(events_text)
        if uploaded:
            uploaders.append(job_id)
        facts[job_id] = new_facts(None, None, False, no_sections, startup, image, events)
    if others:
        _read_images(store, others, strings, facts)
    if phases is not None and unsummed:
        _sum_phases(store, unsummed, phases)
    if uploads:
        _add_upload_sections(store, uploaders, strings, facts)
    return latest


def _image_codes(
    store: Store, project_id: int, strings: dict[Any, Any]
) -> tuple[str, list[Any], dict[int | str, ImageRef]]:
    """The narrow rows' two image columns (SQL and its parameters) and the images their values stand for.

    With at most :data:`_MAX_IMAGE_CODES` distinct ``(image_name, image_digest)`` pairs in the project's logs
    (:meth:`cidash.store.facts.FactsMixin.image_names_and_digests`, a few index seeks), the first column is the
    number of the row's pair in the returned dict (a ``CASE`` over the pairs), NULL without an image, or
    :data:`_OTHER_IMAGE` for another pair (its digest NULL, or stored since: :func:`_read_images` reads those), and
    the second NULL: a window's 100,000 rows then make no string of their image's name and digest, nor a key of
    the two to look their image up by (~50 ms at 50,000 pipelines). With more pairs (a ``CASE`` tries them in
    turn), the image's name and digest, and an empty dict. Read once per load (kept in ``strings``)."""
    got: tuple[str, list[Any], dict[int | str, ImageRef]] | None = strings.get(_IMAGE_CODES_KEY)
    if got is not None:
        return got
    images: dict[tuple[str, str | None], ImageRef] = strings.setdefault(_IMAGES_KEY, {})
    pairs = sorted(store.image_names_and_digests(project_id))
    if len(pairs) > _MAX_IMAGE_CODES:
        got = ("f.image_name, f.image_digest", [], {})
    else:
        coded: dict[int | str, ImageRef] = {}
        for i, (name, digest) in enumerate(pairs):
            image = images.get((name, digest))
            if image is None:
                image = images[name, digest] = ImageRef(name, None, digest, None)
            coded[i] = image
        whens = " ".join(f"WHEN f.image_name = ? AND f.image_digest = ? THEN {i}" for i in range(len(pairs)))
        sql = f"CASE WHEN f.image_name IS NULL THEN NULL {whens} ELSE {_OTHER_IMAGE} END, NULL"
        got = (sql, [x for pair in pairs for x in pair], coded)
    strings[_IMAGE_CODES_KEY] = got
    return got


def _read_images(store: Store, job_ids: Sequence[int], strings: dict[Any, Any], facts: dict[int, TraceFacts]) -> None:
    """The images of the jobs in ``job_ids`` (named by their narrow rows as none of the coded pairs:
    :func:`_image_codes`), put into their ``facts`` (read without them), one image per ``(name, digest)``."""
    images: dict[tuple[str, str | None], ImageRef] = strings.setdefault(_IMAGES_KEY, {})
    new_facts = _new_facts
    for k in range(0, len(job_ids), 500):
        chunk = job_ids[k : k + 500]
        for job_id, name, digest in store.read(
            f"SELECT job_id, image_name, image_digest FROM job_facts WHERE job_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            image = images.get((name, digest))
            if image is None:
                image = images[name, digest] = ImageRef(name, None, digest, None)
            f = facts[job_id]
            facts[job_id] = new_facts(
                f.runner_version, f.executor, f.truncated, f.sections, f.startup_seconds, image, f.cache
            )


#: The key in a load's shared ``strings`` of the narrow rows' image column (:func:`_image_codes`).
_IMAGE_CODES_KEY = ("image codes of the narrow rows",)


#: The key in a load's shared ``strings`` of its decoded cache events (:func:`_events_of`).
_EVENTS_KEY = ("events of a text",)


def _events_of(strings: dict[Any, Any]) -> Callable[[str | None], tuple[tuple[CacheEvent, ...], bool]]:
    """A function from a job's cache events as ``job_facts.cache_events`` holds them (a JSON
    array of ``[op, key, outcome, detail]``; ``"[]"`` or None for none) to ``(the events, uploaded)``:
    ``uploaded`` when one is an ``archive`` that created or failed (:data:`_UPLOADED`). Each distinct text is
    decoded once for the whole load (kept in ``strings``): many jobs' logs say the same events, and those jobs
    share one tuple of shared :class:`~cidash.models.CacheEvent` s (:func:`_shared_events`)."""
    decoded: dict[str | None, tuple[tuple[CacheEvent, ...], bool]] | None = strings.get(_EVENTS_KEY)
    if decoded is None:
        decoded = strings[_EVENTS_KEY] = {None: ((), False), "[]": ((), False)}
    intern = strings.setdefault

    def events_of(text: str | None) -> tuple[tuple[CacheEvent, ...], bool]:
        got = decoded.get(text)
        if got is not None:
            return got
        assert text is not None
        events: list[CacheEvent] = []
        uploaded = False
        for op, key, outcome, detail in json.loads(text):
            row = ("cache", op, key, outcome, detail)
            event = strings.get(row)
            if event is None:
                event = strings[row] = CacheEvent(op, intern(key, key), outcome, detail)
            events.append(event)
            if op == "archive" and outcome in _UPLOADED:
                uploaded = True
        got = decoded[text] = (_shared_events(events, strings) if events else (), uploaded)
        return got

    return events_of


def _add_upload_sections(
    store: Store, uploaders: Sequence[int], strings: dict[Any, Any], facts: dict[int, TraceFacts]
) -> None:
    """The cache-upload sections of the jobs in ``uploaders`` (:func:`_read_upload_sections`) put into their
    ``facts`` (read without them)."""
    sections: dict[int, list[Section]] = {}
    _read_upload_sections(store, uploaders, strings, sections)
    new_facts = _new_facts
    for job_id, got in sections.items():
        f = facts[job_id]
        facts[job_id] = new_facts(
            f.runner_version, f.executor, f.truncated, tuple(got), f.startup_seconds, f.image, f.cache
        )


def _shared_events(events: list[CacheEvent], strings: dict[Any, Any]) -> tuple[CacheEvent, ...]:
    """``tuple(events)``, one tuple for every job whose log gave the same (shared) events: many jobs restore and
    upload the same keys, and the cache metrics compute each distinct tuple's restores once
    (:func:`cidash.metrics.restore_outcomes` and the others, by identity). Keyed by the events' identities: they
    are shared through ``strings`` too, which keeps them alive."""
    key = tuple(map(id, events))  # (only ints: no other key of ``strings`` is such a tuple)
    got: tuple[CacheEvent, ...] | None = strings.get(key)
    if got is None:
        got = strings[key] = tuple(events)
    return got


#: The outcomes of an ``archive`` event of the jobs whose upload windows a metric reads: those that uploaded a
#: cache (what :func:`cidash.metrics.cache_writers` lists; :func:`cidash.metrics.write_window` is asked of them
#: only). A window reads the other jobs' upload sections no more (an eighth of the jobs upload at 50,000
#: pipelines).
_UPLOADED = frozenset({"created", "failed"})


def _read_upload_sections(
    store: Store, job_ids: Sequence[int], strings: dict[Any, Any], sections: dict[int, list[Section]]
) -> None:
    """The cache-upload sections (:data:`cidash.metrics.ARCHIVE_SECTIONS`) of ``job_ids`` into ``sections``, in
    log order, a few hundred jobs a statement by their ids (the uploaders found in the cache events just read:
    ~2.5x cheaper than selecting them through the pipelines with an ``EXISTS`` on their events per job)."""
    intern = strings.setdefault
    names = tuple(sorted(ARCHIVE_SECTIONS))
    for k in range(0, len(job_ids), 500):
        chunk = job_ids[k : k + 500]
        for job_id, name, start, end, duration in store.read(
            'SELECT job_id, name, start, "end", duration FROM job_sections '
            f"WHERE job_id IN ({','.join('?' * len(chunk))}) AND name IN ({','.join('?' * len(names))}) "
            "ORDER BY job_id, seq",
            [*chunk, *names],
        ):
            got = sections.get(job_id)
            if got is None:
                got = sections[job_id] = []
            got.append(_new_section(intern(name, name), start, end, duration))


#: The start-up phases the store summed from each log's sections (schema version 9, :mod:`cidash.store.phases`).
_PHASE_COLUMNS = ", f.phases_summed, f.startup_prepare, f.startup_sources, f.startup_cache, f.startup_artifacts"
#: :data:`_PHASE_COLUMNS`' place in a narrow row read without them (:func:`_read_narrow_jobs` unpacks one shape).
_NO_PHASE_COLUMNS = ", NULL, NULL, NULL, NULL, NULL"
#: The key in a load's shared ``strings`` of the narrow rows' image references, by name and digest.
_IMAGES_KEY = ("images of the narrow rows",)


#: The stored sums of a log without a closed start-up section (:data:`cidash.metrics.PhaseTuple`).
_NO_PHASES = (None, None, None, None)


def _sum_phases(store: Store, job_ids: Sequence[int], phases: dict[int, PhaseTuple]) -> None:
    """Each job's start-up phases summed from its stored closed start-up sections (in log order, as
    :func:`cidash.metrics.startup_phases` sums them): for logs the store has not summed."""
    phase_of = section_phases()
    startup = tuple(sorted(phase_of))
    for k in range(0, len(job_ids), 500):
        chunk = job_ids[k : k + 500]
        by_job: dict[int, list[tuple[str, float]]] = {}
        for job_id, name, duration in store.read(
            f"SELECT job_id, name, duration FROM job_sections WHERE job_id IN ({','.join('?' * len(chunk))}) "
            f"AND name IN ({','.join('?' * len(startup))}) AND duration IS NOT NULL ORDER BY job_id, seq",
            [*chunk, *startup],
        ):
            by_job.setdefault(job_id, []).append((phase_of[name], duration))
        for job_id, durations in by_job.items():
            phases[job_id] = phase_tuple(startup_phase_sums(durations))


def _read_startup_records(  # noqa: PLR0917
    store: Store,
    project: Project,
    cond: str,
    params: list[Any],
    as_of: datetime,
    strings: dict[Any, Any],
    records: list[StartupRecord],
) -> None:
    """Append to ``records`` the start-ups of the jobs of the pipelines matching ``cond`` as of ``as_of``, for a
    span read for its start-up values only (the baseline of ``check`` and ``export``): one narrow row per job
    that has one, the rules of :meth:`Dataset.as_of` and :func:`cidash.metrics.counted_jobs` applied in SQL (the
    pipeline and the job created by then, the job finished by then or not at all, so its log facts count; it ran;
    ``retried`` when a later attempt was created by then), instead of a :class:`~cidash.models.Job` and its
    facts per job (a third of the time of those at 60,000 jobs). :func:`cidash.metrics.startup_seconds` reads
    them; ``tests/unit/test_dataset_records.py`` holds them equal to the jobs' start-ups."""
    t = to_db_time(as_of)
    not_run = sorted(NOT_RUN_STATUSES)
    intern = strings.setdefault
    parse = _from_text
    append = records.append
    new = tuple.__new__  # (a record made as the tuple it is: no call of the named tuple's __new__ per job)
    record = StartupRecord
    for pipeline_id, job_id, name, started, seconds, retried in chain.from_iterable(
        store.read_batches(
            "SELECT j.pipeline_id, j.id, j.name, j.started_at, f.startup_seconds, CASE WHEN j.retried = 1 AND EXISTS "
            "(SELECT 1 FROM jobs k WHERE k.project_id = j.project_id AND k.pipeline_id = j.pipeline_id "
            "AND k.name = j.name AND k.id > j.id AND k.created_at <= ?) THEN 1 ELSE 0 END "
            "FROM jobs j JOIN job_facts f ON f.job_id = j.id WHERE j.project_id = ? "
            f"AND j.pipeline_id IN (SELECT id FROM pipelines WHERE {cond} AND created_at <= ?) "
            # (the job's creation kept off its index: the pipelines' jobs come through theirs)
            f"AND {store.noindex('j.created_at')} <= ? AND (j.finished_at IS NULL OR j.finished_at <= ?) "
            "AND j.started_at IS NOT NULL "
            f"AND j.status NOT IN ({','.join('?' * len(not_run))}) AND f.startup_seconds IS NOT NULL",
            [t, project.id, *params, t, t, t, *not_run],
        )
    ):
        append(new(record, (pipeline_id, job_id, intern(name, name), parse(started), seconds, bool(retried))))


_new_job = fast_constructor(Job)
_new_pipeline = fast_constructor(Pipeline)
_new_section = fast_constructor(Section)
_new_facts = fast_constructor(TraceFacts)


def _job(r: Any, intern: Callable[[Any, Any], Any]) -> Job:
    """A job from a row of :data:`_JOB_COLUMNS`, its repeated strings interned."""
    started, finished = r[9], r[10]
    job: Job = _new_job(
        r[0],
        r[1],
        r[2],
        intern(r[3], r[3]),
        intern(r[4], r[4]),
        intern(r[5], r[5]),
        intern(r[6], r[6]),
        intern(r[7], r[7]),
        _from_text(r[8]),
        None if started is None else _from_text(started),
        None if finished is None else _from_text(finished),
        r[11],
        r[12],
        intern(r[13], r[13]),
        bool(r[14]),
        bool(r[15]),
        intern(r[16], r[16]),
        r[17],
    )
    return job


#: A stored time (the store's fixed-width UTC text) as a datetime: what :func:`cidash.store.from_db_time` does for
#: a value that is not None, without its call per column.
_from_text = datetime.fromisoformat


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
    startup_ref: str | None = None,
    uploads: bool = True,
    narrow: bool = False,
) -> Dataset:
    """Everything metrics read for ``project``, pipelines created since ``since`` (all when None).

    ``config_ref``: whose CI config to resolve (default: the project's default branch, else any ref).
    ``as_of``: the history as it stood then (``--now``): see :meth:`Dataset.as_of`; the CI config is the one of the
    newest pipeline created by then.
    ``spans``: only the pipelines created in these spans (and all their jobs), instead of ``since``: what
    :func:`cidash.snapshot.build_snapshot` loads (the periods the criteria judge), with ``image_history`` (the
    whole history's CI-image changes, from the database) that chooses them; the facts keep the cache-upload
    sections only, the start-up phases being summed into :attr:`~cidash.metrics.Dataset.phases_by_job`;
    ``startup_only``: spans read for their start-up values only (the baseline, which only the start-up
    criterion reads), unless they overlap ``spans`` or ``as_of`` is None: their pipelines, and their jobs'
    start-ups as of ``as_of`` as :attr:`~cidash.metrics.Dataset.startup_records` (no jobs, no facts);
    ``phases`` false: no start-up phases either (``check``, whose criteria read start-ups as a whole: the phases
    of :attr:`~cidash.metrics.JobStartup.phases` come out empty); ``ref``: only the pipelines of that ref in
    ``spans`` (the criteria ref: every criterion judges it, see :func:`cidash.snapshot.build_snapshot`);
    ``startup_ref``: only the pipelines of that ref in the ``startup_only`` spans (the start-up criterion judges
    the baseline on the criteria ref only); ``uploads`` false: a window's facts without the cache-upload sections
    (``compare``, which reads no writer's upload window); ``narrow``: a window's jobs without the columns no
    metric reads (:func:`_read_narrow_jobs`: ``compare``, ``export`` in JSON, CSV or Markdown).
    """
    settled = False  # True: nothing loaded was created or finished after as_of (as_of() has nothing to drop)
    records: list[StartupRecord] = []  # of the spans read for their start-up values only
    phases_by_job: dict[int, PhaseTuple] = {}  # of a window's jobs (their facts without those sections)
    if spans is None:
        pipelines = tuple(store.pipelines(project.id, since=since))
        ids = {p.id for p in pipelines}
        jobs = tuple(j for j in store.jobs(project.id, since=since) if j.pipeline_id in ids)
        facts = _facts(store, [j.id for j in jobs])
    else:
        all_pipelines: list[Pipeline] = []
        all_jobs: list[Job] = []
        facts = {}
        newest_job = ""
        full = merge_spans(spans)
        light: list[Span] = []
        for span in merge_spans(startup_only):
            if as_of is None or any(_overlap(span, other) for other in full):
                full = merge_spans([*full, span])  # a span read in full anyway (records need a time to hold)
            else:
                light.append(span)
        for start, end, startups in sorted(
            [(a, b, False) for a, b in full] + [(a, b, True) for a, b in light],
            key=lambda s: s[0] or datetime.min.replace(tzinfo=UTC),
        ):
            span_ref = ref if ref is not None or not startups else startup_ref
            ps, js, fs, latest, rs, phs = _load_span(
                store,
                project,
                start,
                end,
                startup_only=startups,
                phases=phases,
                ref=span_ref,
                as_of=as_of,
                uploads=uploads,
                narrow=narrow,
            )
            newest_job = max(newest_job, latest)
            all_pipelines.extend(ps)
            all_jobs.extend(js)
            facts.update(fs)
            records.extend(rs)
            phases_by_job.update(phs)
        sort_jobs(all_jobs)  # the order of the whole-history load
        pipelines, jobs = tuple(all_pipelines), tuple(all_jobs)
        latest_job = from_db_time(newest_job) if newest_job else None
        if as_of is not None and (latest_job is None or latest_job <= as_of):
            # the jobs' times were compared as stored, while reading them (a scan of 100,000 jobs' datetimes less)
            t = as_of
            settled = all(p.created_at <= t and (p.finished_at is None or p.finished_at <= t) for p in pipelines)
    tags = tuple(s.tag for s in store.image_tags(project.id))
    if spans is None:
        checksums = tuple(store.file_checksums(project.id))
    else:  # those of the loaded pipelines' commits only (stale caches compare a pipeline's with the one before)
        shas = sorted({p.sha for p in pipelines})
        checksums = tuple(
            c for k in range(0, len(shas), 2000) for c in store.file_checksums(project.id, shas=shas[k : k + 2000])
        )
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
        startup_records=tuple(records),
        phases_by_job=PhaseSums(phases_by_job) if spans is not None and phases else None,
    )
    if as_of is not None:
        ds.records_resolved_at(as_of)
    if settled and as_of is not None and all(tg.created_at is None or tg.created_at <= as_of for tg in tags):
        ds.mark_as_of(as_of)
    return ds.as_of(as_of)
