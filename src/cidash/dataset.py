"""Loading a :class:`~cidash.metrics.Dataset` from the store (kept apart from the pure metrics).

``load_dataset(store, project, since=...)`` reads pipelines, jobs (retried ones too; metrics decide), parsed
log facts, the image-tag history, critical-file checksums and the latest stored CI config of the criteria ref,
whose cache entries are resolved with :mod:`cidash.ciconfig`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from cidash.errors import CidashError, UsageError
from cidash.metrics import Dataset, ImageHistory, JobCacheConfig
from cidash.models import Job, Pipeline, Project, TraceFacts
from cidash.store import Store


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


def _load_span(
    store: Store, project: Project, start: datetime | None, end: datetime | None
) -> tuple[list[Pipeline], list[Job], dict[int, TraceFacts]]:
    """The pipelines created in ``[start, end)``, all their jobs (looked up by pipeline, so a retry made after
    ``end`` still comes) and the jobs' log facts."""
    pipelines = store.pipelines(project.id, since=start, until=end)
    jobs: list[Job] = []
    ids = [p.id for p in pipelines]
    for i in range(0, len(ids), _CHUNK):
        jobs.extend(store.jobs(project.id, pipeline_ids=ids[i : i + _CHUNK]))
    return pipelines, jobs, _facts(store, [j.id for j in jobs])


_CHUNK = 500


def load_dataset(
    store: Store,
    project: Project,
    *,
    since: datetime | None = None,
    config_ref: str | None = None,
    as_of: datetime | None = None,
    spans: Sequence[Span] | None = None,
    image_history: ImageHistory | None = None,
) -> Dataset:
    """Everything metrics read for ``project``, pipelines created since ``since`` (all when None).

    ``config_ref``: whose CI config to resolve (default: the project's default branch, else any ref).
    ``as_of``: the history as it stood then (``--now``): see :meth:`Dataset.as_of`; the CI config is the one of the
    newest pipeline created by then.
    ``spans``: only the pipelines created in these spans (and all their jobs), instead of ``since``: what
    :func:`cidash.snapshot.build_snapshot` loads (the periods the criteria judge), with ``image_history`` (the
    whole history's CI-image changes, from the database) that chooses them.
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
        for start, end in merge_spans(spans):
            ps, js, fs = _load_span(store, project, start, end)
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
