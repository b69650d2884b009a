"""The store's schema: every table, and the migrations that build it (append; never edit an applied one).

Tables (schema version 10)
-------------------------

``schema_migrations(version PK, description, applied_at)``
    One row per applied migration.
``projects(id PK, path UNIQUE, web_url, default_branch, added_at)``
    Every project ever synced into this store (``path`` is ``path_with_namespace``).
``pipelines(id PK, project_id, iid, ref, sha, status, source, created_at, updated_at, started_at, finished_at,
duration, queued_duration, web_url, synced_at, jobs_synced_for)``
    All fields of :class:`cidash.models.Pipeline`. ``jobs_synced_for`` is sync's bookkeeping: the
    ``updated_at`` for which the pipeline's jobs were last fully listed (NULL or different: jobs still to sync).
    Indexes: ``(project_id, created_at)``,
    ``(project_id, ref, created_at)``, ``(project_id, sha)``.
``jobs(id PK, project_id, pipeline_id, name, stage, status, ref, sha, created_at, started_at, finished_at,
duration, queued_duration, failure_reason, allow_failure, retried, runner, web_url, log_state, synced_at)``
    All fields of :class:`cidash.models.Job`; ``retried`` = 1 when a later attempt of the same job name exists
    in the same pipeline. ``log_state`` is sync's bookkeeping: NULL (log not fetched yet), ``parsed`` (a
    ``job_facts`` row exists), ``skipped`` (name does not match ``[sync] job_patterns``), ``unavailable``
    (GitLab had no log: erased or expired). Indexes: ``(project_id, pipeline_id)``,
    ``(project_id, name, created_at)``, ``(project_id, created_at)``.
``job_facts(job_id PK, project_id, runner_version, executor, truncated, startup_seconds, image_name, image_id,
image_digest, image_pulled, prepare_seconds, sources_seconds, cache_seconds, artifacts_seconds, script_seconds,
upload_seconds, log_bytes, parsed_at)``
    One row per parsed log (:class:`cidash.models.TraceFacts` + :class:`cidash.models.StoredJobFacts`).
    ``image_pulled`` is NULL when the log does not say. Phase columns are, as the sync computes them,
    :func:`cidash.logparse.phase_durations` (closed runner sections summed per phase): prepare =
    resolve_secrets + prepare_executor + prepare_script; sources = get_sources + clear_worktree; cache =
    restore_cache; artifacts = download_artifacts; script = step_script / build_script / ``step_*``; upload =
    after_script + archive_cache* + upload_artifacts_* + cleanup_file_variables. NULL = no such closed section.
``job_sections(job_id, seq, name, start, end, duration; PK (job_id, seq))``
    The log's sections in order; ``end``/``duration`` NULL when never closed (unix seconds, REAL).
``cache_events(job_id, seq, project_id, op, key, outcome, detail; PK (job_id, seq))``
    Cache restore/archive attempts in log order (``op`` restore|archive; ``outcome`` hit|miss|failed|skipped|
    created|up_to_date|empty|unknown). Index ``(project_id, key)``.
``image_tags(project_id, repository, tag, digest, total_size, created_at, location, first_seen, last_seen;
PK (repository, tag, digest))``
    Tag history: one row per (repository, tag, digest) ever seen; ``digest`` is '' when the registry gave none.
    The current digest of a tag is its row with the greatest ``last_seen``.
``file_checksums(project_id, sha, path, blob_id, last_commit_id, content_sha256; PK (project_id, sha, path))``
    Critical files at each pipeline SHA, from the repository-files HEAD headers. ``blob_id`` NULL: the file
    does not exist at that commit.
``ci_configs(project_id, sha, path, ref, content, fetched_at; PK (project_id, sha, path))``
    The CI file text at the latest pipeline SHA of each ref (``ref``: the ref it was fetched for; ``content``
    NULL when the file does not exist there).
``resource_groups(project_id, key, process_mode, seen_at; PK (project_id, key))``
    The project's resource groups as last synced.
``sync_state(project_id, kind, cursor, updated_at; PK (project_id, kind))``
    Sync cursors (e.g. ``pipelines_updated_after``, ``jobs_max_id``, ``last_sync``). A cursor is written in the
    same transaction as the rows it covers.
``sync_runs(id PK, project_id, started_at, finished_at, status, requests, bytes, pipelines, jobs, logs, error,
warnings, deferred)``
    One row per sync of one project (``status`` running|ok|error|interrupted; a ``running`` row whose process died
    is marked ``interrupted`` by the next sync of the project). ``warnings``/``deferred``: how many warnings the
    sync gave and how many items it left for the next sync (schema version 2).
``sync_leases(project_id PK, owner, pid, host, acquired_at, expires_at)``
    Who is syncing a project now (schema version 2). A sync takes the lease before its first request, renews it
    while it runs and deletes it at the end; a lease past ``expires_at``, or held by a process on this host that no
    longer exists, is free.
``sync_deferred(project_id, kind, item_id, reason, first_seen, last_seen, attempts; PK (project_id, kind, item_id))``
    Records a sync could not use this time (``kind`` pipeline|job: rejected at the wire, or their fetch failed),
    fetched again by id on the next sync until they can be stored (schema version 2).
``audit(id PK, at, actor, project, action, target, request, result, dry_run, extra)``
    Every mutating action (``extra`` is a JSON object of strings). Never holds a token.
``instance_versions(project_id PK, version, revision, checked_at)``
    The GitLab version each project's instance reported (NULL: the token may not read it; schema version 4).
``metric_totals(project_id, name, labels, value, updated_at; PK (project_id, name, labels))``
    Running totals of the exported counters (schema version 5): they only grow, across prune and restarts.
``metric_counted(project_id, kind, item_id; PK (kind, item_id))``
    The pipelines, jobs and logs (``kind``) already added to ``metric_totals``: each is counted once. Never pruned.
``counted`` (schema version 6)
    A column of ``pipelines``, ``jobs`` and ``job_facts``: 1 once the row's item is in ``metric_counted``, else
    NULL. The partial indexes ``pipelines_uncounted``, ``jobs_uncounted`` (finished rows) and
    ``job_facts_uncounted`` hold only the NULL rows, so finding what to count costs what changed.
``job_facts_image`` (schema version 7; replaced by ``job_facts_image_runs`` in version 11)
    An index of ``job_facts (project_id, image_name, image_digest)``: the images and digests a project's logs
    named, without reading its history (:func:`cidash.queries.image_history`).
``pipeline_ref``, ``job_started_at``, ``visible_at`` (schema version 8)
    Columns of ``job_facts``, copies the store keeps of the parsed log's job: its pipeline's ``ref``, its
    ``started_at``, and the time it entered the history (the latest of the pipeline's ``created_at``, its own
    ``created_at`` and its ``finished_at``: the job and its log facts are in the history as of T when
    ``visible_at <= T``, see :meth:`cidash.metrics.Dataset.as_of`). Written with the facts and rewritten whenever
    the job or its pipeline is written; NULL while the job or its pipeline is not stored. The partial index
    ``job_facts_image_order`` on ``(project_id, pipeline_ref, job_started_at, job_id, image_name, image_digest,
    visible_at)`` lists a ref's jobs that ran a named image, in start order (:func:`cidash.queries.image_history`).
``phases_summed``, ``startup_prepare``, ``startup_sources``, ``startup_cache``, ``startup_artifacts`` (schema version 9)
    Columns of ``job_facts``: once ``phases_summed`` is 1, the log's closed start-up sections
    (:data:`cidash.models.STARTUP_SECTION_PHASES`) summed per phase in log order from its ``job_sections`` rows
    (NULL: no such closed section), written with the sections (:mod:`cidash.store.phases`); what
    :func:`cidash.metrics.startup_phases` gives, without reading the sections.
``cache_events`` (schema version 10)
    A column of ``job_facts``, never NULL: the log's ``cache_events`` rows in log order as one JSON array of
    ``[op, key, outcome, detail]`` (``"[]"``: none; so a job joined to no facts row is the one with NULL), written
    with the rows (:mod:`cidash.store.eventstext`): what a window's
    reader decodes, without a subquery per job.
``job_facts_image_runs`` (schema version 11, replacing ``job_facts_image``)
    An index of ``job_facts`` on ``(project_id, image_name, image_digest, pipeline_ref, job_started_at, job_id,
    visible_at)``: the images and digests a project's logs named (``Store.image_names_and_digests``), and each
    ref's jobs that ran one of them in start order, so the first and last are one seek each
    (:func:`cidash.queries.image_history`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cidash.store.eventstext import fill_cache_events_text
from cidash.store.phases import sum_startup_phases

SCHEMA_VERSION = 11

_V1 = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL
);
CREATE TABLE projects (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, web_url TEXT NOT NULL, default_branch TEXT,
    added_at TEXT NOT NULL
);
CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, iid INTEGER, ref TEXT NOT NULL, sha TEXT NOT NULL,
    status TEXT NOT NULL, source TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, started_at TEXT,
    finished_at TEXT, duration REAL, queued_duration REAL, web_url TEXT, synced_at TEXT NOT NULL,
    jobs_synced_for TEXT
);
CREATE INDEX pipelines_project_created ON pipelines (project_id, created_at);
CREATE INDEX pipelines_project_ref ON pipelines (project_id, ref, created_at);
CREATE INDEX pipelines_project_sha ON pipelines (project_id, sha);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, pipeline_id INTEGER NOT NULL, name TEXT NOT NULL,
    stage TEXT NOT NULL, status TEXT NOT NULL, ref TEXT NOT NULL, sha TEXT NOT NULL, created_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, duration REAL, queued_duration REAL, failure_reason TEXT,
    allow_failure INTEGER NOT NULL DEFAULT 0, retried INTEGER NOT NULL DEFAULT 0, runner TEXT, web_url TEXT,
    log_state TEXT, synced_at TEXT NOT NULL
);
CREATE INDEX jobs_project_pipeline ON jobs (project_id, pipeline_id);
CREATE INDEX jobs_project_name_created ON jobs (project_id, name, created_at);
CREATE INDEX jobs_project_created ON jobs (project_id, created_at);
CREATE TABLE job_facts (
    job_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, runner_version TEXT, executor TEXT,
    truncated INTEGER NOT NULL DEFAULT 0, startup_seconds REAL, image_name TEXT, image_id TEXT, image_digest TEXT,
    image_pulled INTEGER, prepare_seconds REAL, sources_seconds REAL, cache_seconds REAL, artifacts_seconds REAL,
    script_seconds REAL, upload_seconds REAL, log_bytes INTEGER, parsed_at TEXT NOT NULL
);
CREATE INDEX job_facts_project ON job_facts (project_id);
CREATE TABLE job_sections (
    job_id INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, start REAL NOT NULL, "end" REAL,
    duration REAL, PRIMARY KEY (job_id, seq)
);
CREATE TABLE cache_events (
    job_id INTEGER NOT NULL, seq INTEGER NOT NULL, project_id INTEGER NOT NULL, op TEXT NOT NULL,
    key TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT, PRIMARY KEY (job_id, seq)
);
CREATE INDEX cache_events_project_key ON cache_events (project_id, key);
CREATE TABLE image_tags (
    project_id INTEGER NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL DEFAULT '',
    total_size INTEGER, created_at TEXT, location TEXT, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (repository, tag, digest)
);
CREATE INDEX image_tags_project ON image_tags (project_id, repository);
CREATE TABLE file_checksums (
    project_id INTEGER NOT NULL, sha TEXT NOT NULL, path TEXT NOT NULL, blob_id TEXT, last_commit_id TEXT,
    content_sha256 TEXT, PRIMARY KEY (project_id, sha, path)
);
CREATE TABLE ci_configs (
    project_id INTEGER NOT NULL, sha TEXT NOT NULL, path TEXT NOT NULL, ref TEXT, content TEXT,
    fetched_at TEXT NOT NULL, PRIMARY KEY (project_id, sha, path)
);
CREATE TABLE resource_groups (
    project_id INTEGER NOT NULL, key TEXT NOT NULL, process_mode TEXT NOT NULL, seen_at TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE TABLE sync_state (
    project_id INTEGER NOT NULL, kind TEXT NOT NULL, cursor TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, kind)
);
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project_id INTEGER NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    pipelines INTEGER NOT NULL DEFAULT 0, jobs INTEGER NOT NULL DEFAULT 0, logs INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX sync_runs_project ON sync_runs (project_id, started_at);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, project TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, request TEXT NOT NULL, result TEXT NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0, extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit (at);
"""

# Indexes for the sync's once-per-refresh questions, so an idle refresh costs what changed, not the history.
_V2 = """
CREATE INDEX jobs_logs_due ON jobs (project_id, id) WHERE log_state IS NULL AND finished_at IS NOT NULL;
CREATE INDEX pipelines_jobs_due ON pipelines (project_id)
    WHERE jobs_synced_for IS NULL OR jobs_synced_for != updated_at;
CREATE INDEX pipelines_project_status ON pipelines (project_id, status);
"""

_V3 = """
CREATE TABLE sync_leases (
    project_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE TABLE sync_deferred (
    project_id INTEGER NOT NULL, kind TEXT NOT NULL, item_id INTEGER NOT NULL, reason TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (project_id, kind, item_id)
);
ALTER TABLE sync_runs ADD COLUMN warnings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0
"""

#: The GitLab version each project's instance reported (``GET /version``; NULL: the token may not read it).
_V4 = """
CREATE TABLE instance_versions (
    project_id INTEGER PRIMARY KEY, version TEXT, revision TEXT, checked_at TEXT NOT NULL
);
"""

# Running totals for the exported counters (see cidash.export.update_running_totals): a counter only ever grows,
# across prune (pruning never touches these tables) and restarts. ``metric_counted`` remembers which pipelines and
# jobs were already added, so each is counted exactly once.
_V5 = """
CREATE TABLE metric_totals (
    project_id INTEGER NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (project_id, name, labels)
);
CREATE TABLE metric_counted (
    project_id INTEGER NOT NULL, kind TEXT NOT NULL, item_id INTEGER NOT NULL, PRIMARY KEY (kind, item_id)
)
"""

# Which finished pipelines, finished jobs and parsed logs the running totals have not counted yet, without reading
# the whole history on every ``serve`` sync: ``counted`` is set when an item is added to ``metric_counted`` (the
# record that survives prune and re-sync), and the partial indexes hold only the rows still to count.
_V6 = """
ALTER TABLE pipelines ADD COLUMN counted INTEGER;
ALTER TABLE jobs ADD COLUMN counted INTEGER;
ALTER TABLE job_facts ADD COLUMN counted INTEGER;
UPDATE pipelines SET counted = 1 WHERE id IN (SELECT item_id FROM metric_counted WHERE kind = 'pipeline');
UPDATE jobs SET counted = 1 WHERE id IN (SELECT item_id FROM metric_counted WHERE kind = 'job');
UPDATE job_facts SET counted = 1 WHERE job_id IN (SELECT item_id FROM metric_counted WHERE kind = 'log');
CREATE INDEX pipelines_uncounted ON pipelines (project_id, id) WHERE counted IS NULL AND finished_at IS NOT NULL;
CREATE INDEX jobs_uncounted ON jobs (project_id, id) WHERE counted IS NULL AND finished_at IS NOT NULL;
CREATE INDEX job_facts_uncounted ON job_facts (project_id, job_id) WHERE counted IS NULL
"""

# The CI images the jobs' logs named, by project: which images and digests a project's history holds, read from
# the index alone (cidash.queries.image_history's first pass read every job of the history for them: ~0.45 s of
# a ``check`` at 50,000 pipelines, ~0.05 s from this index).
_V7 = """
CREATE INDEX job_facts_image ON job_facts (project_id, image_name, image_digest)
"""

# Each parsed log's job as the CI image's history reads it, kept beside its facts (the store writes them with the
# facts, the job and the pipeline: FactsMixin._copy_job_columns): the job's pipeline ref, its start, and when it
# entered the history (the latest of its pipeline's creation, its own creation and its end: a job is in the history
# as of T, its log facts with it, when visible_at <= T). The covering index lists a ref's CI-image jobs in start
# order, so cidash.queries.image_history finds the digest changes in one ordered pass over the index, without
# joining every job of the history to its pipeline and sorting them (the LAG window: ~0.7 s of a check at 50,000
# pipelines).
_V8 = """
ALTER TABLE job_facts ADD COLUMN pipeline_ref TEXT;
ALTER TABLE job_facts ADD COLUMN job_started_at TEXT;
ALTER TABLE job_facts ADD COLUMN visible_at TEXT;
UPDATE job_facts SET (pipeline_ref, job_started_at, visible_at) = (SELECT p.ref, j.started_at, CASE
    WHEN j.finished_at IS NOT NULL AND j.finished_at > p.created_at AND j.finished_at > j.created_at THEN j.finished_at
    WHEN p.created_at > j.created_at THEN p.created_at ELSE j.created_at END
    FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = job_facts.job_id);
CREATE INDEX job_facts_image_order ON job_facts
    (project_id, pipeline_ref, job_started_at, job_id, image_name, image_digest, visible_at)
    WHERE image_name IS NOT NULL AND image_digest IS NOT NULL AND job_started_at IS NOT NULL
"""

# Each parsed log's start-up phases summed from its stored sections (cidash.store.phases): a window of 100,000
# jobs reads four columns per job instead of ~300,000 section rows (compare, export, the dashboard's Start-up tab).
# The columns are filled by a step in Python after the SQL (MIGRATION_STEPS): SQL's SUM does not add floats left
# to right in log order (SQLite compensates), and the stored sums must equal the ones computed from the sections.
_V9 = """
ALTER TABLE job_facts ADD COLUMN phases_summed INTEGER;
ALTER TABLE job_facts ADD COLUMN startup_prepare REAL;
ALTER TABLE job_facts ADD COLUMN startup_sources REAL;
ALTER TABLE job_facts ADD COLUMN startup_cache REAL;
ALTER TABLE job_facts ADD COLUMN startup_artifacts REAL
"""

# Each parsed log's cache events as one JSON text beside its facts (cidash.store.eventstext): a window's reader
# decodes one text per job instead of building it with a subquery per job (~0.28 s of SQLite's time for the
# 100,000 jobs of a 50,000-pipeline store's window). Filled by a step in Python after the SQL (MIGRATION_STEPS),
# with the function the writer uses, so the same events always give the same text.
_V10 = """
ALTER TABLE job_facts ADD COLUMN cache_events TEXT NOT NULL DEFAULT '[]'
"""

# Each CI image name and raw digest's jobs by ref, in start order, so cidash.queries.image_history finds each
# digest's first and last job of a ref by two seeks (cidash.queries._digest_runs) instead of walking every CI-image
# job of the ref between two changes (60-100 ms of every check and export at 50,000 pipelines on SQLite). It
# replaces job_facts_image, whose columns it starts with (Store.image_names_and_digests' skip scan reads it the
# same way): ~30 MB more than that index at 50,000 pipelines, where a second index would have been ~90 MB.
_V11 = """
CREATE INDEX job_facts_image_runs ON job_facts
    (project_id, image_name, image_digest, pipeline_ref, job_started_at, job_id, visible_at);
DROP INDEX job_facts_image
"""

#: (version, description, SQL). Append new migrations; never edit an applied one.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema", _V1),
    (2, "indexes for the sync's due jobs, due pipelines and active pipelines", _V2),
    (3, "sync leases, deferred records, sync_runs warnings/deferred", _V3),
    (4, "instance version per project (GET /version)", _V4),
    (5, "running totals of the exported counters", _V5),
    (6, "counted flags and partial indexes of the items the running totals have not counted", _V6),
    (7, "an index of the CI images and digests the logs named, by project", _V7),
    (
        8,
        "each parsed log's pipeline ref, job start and entry in the history; an index of the CI images in start order",
        _V8,
    ),
    (9, "each parsed log's start-up phases summed from its sections", _V9),
    (10, "each parsed log's cache events as one JSON text", _V10),
    (11, "the index of the images the logs named, with each ref's jobs of an image in start order", _V11),
]

#: Steps in Python run after a migration's SQL, in its transaction, given the connection (version -> step).
MIGRATION_STEPS: dict[int, Callable[[Any], None]] = {9: sum_startup_phases, 10: fill_cache_events_text}
