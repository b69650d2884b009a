"""The sync engine: pull a project's CI history from GitLab into the store, incrementally and resumably.

The package, one module per idea (every name stays importable from ``cidash.sync``): :mod:`.engine` runs one
sync (resolve, lease, steps, report) and several projects; the steps :mod:`.pipelines`, :mod:`.jobs`,
:mod:`.logs`, :mod:`.repository` (checksums, CI files), :mod:`.registry` (image tags, resource groups) and
:mod:`.instance` (GitLab version); :mod:`.context` holds the options, progress, report and the per-sync context
they share; :mod:`.lease` keeps one sync per project.

One sync of one project, in order (each step commits before the next; every cursor moves in the same
transaction as the rows it covers, so killing the process at any point and re-running loses and duplicates
nothing):

1. **Pipelines** changed since the ``pipelines_updated_after`` cursor (first sync: since ``--since``), listed
   oldest-update-first 100 per request. Pipelines that are new or changed (status or ``updated_at``) are fetched
   one by one, concurrently, for the fields the listing omits (``started_at``, ``finished_at``, ``duration``).
   Each page is committed with the cursor advanced to its newest ``updated_at``.
2. **Jobs** through the project-wide keyset listing (see :func:`cidash.remote.jobs.jobs_newest_first`
   for why), newest first, down to the oldest pipeline whose jobs are due (``pipelines.jobs_synced_for`` differs
   from its ``updated_at``) or still running, and the oldest job still active. Skipped entirely when nothing
   changed and nothing is running: an unchanged project costs the one pipelines request.
   Retried jobs are flagged (a later job of the same name in the same pipeline).
3. **Logs** of finished jobs whose name matches ``[sync] job_patterns``, each fetched exactly once (``jobs.log_state``),
   streamed chunk by chunk into :class:`cidash.logparse.TraceParser` in the bounded worker pool.
4. **File checksums** of the critical files (``[cache_key] files`` + ``file`` + ``ci_file``) at every pipeline SHA
   not yet seen, one HEAD per file, stored per SHA atomically.
5. **CI file text** at the newest pipeline SHA of each ref.
6. **Registry tags** (with sizes) of the CI image repository and **resource groups**: when something changed,
   on the first sync, or when older than ``[sync] registry_refresh_minutes``.

Before step 1, records deferred by the previous sync (``sync_deferred``: rejected at the wire, or their fetch
failed) are fetched again by id.

Steps 4-6 run on a side thread, overlapping steps 1-3: on a first sync the registry, resource groups and GitLab
version once GitLab answered the first pipelines page (they need no pipeline), the checksums and CI files (and on
a refresh the rest) from the end of step 1. Logs, checksums, pipeline details and registry calls share one worker
pool (:mod:`.pool`: ``[gitlab] concurrency`` workers and a few more), each worker with its own keep-alive
connection (:mod:`cidash.remote.http`); every request passes the shared rate limiter (``[gitlab] max_rps`` and
GitLab's ``RateLimit-*``). Log downloads are bulk work: the pool runs every other task first and the limiter gives
a free slot to any other waiting request first, so on a first sync (whole history, no job stored yet) they start
as the jobs listing names them, beside step 1, and fill the slots nothing else uses. The sync is blocking: run it
in a worker thread from a UI.

**Several projects** (:func:`sync_projects`: a group, or several ``--project``) run up to ``[sync]
project_concurrency`` at once (default 8; 1: one after another), each an ordinary sync of one project with its own
lease and report, all under the one request ceiling (the client's limiter), on one worker pool of ``[gitlab]
concurrency`` threads and one store; see :class:`~cidash.sync.engine._ProjectPool` for the order of reports,
failures, stopping and progress.

**One bad record never blocks the rest.** Every JSON record passes :mod:`cidash.remote.wire` (range checks): a
rejected field becomes unknown with a warning naming the record, a rejected record is skipped with a warning and
deferred (``sync_deferred``) when it has an id. A per-item failure (one log, one pipeline's details, one checksum,
one registry tag) that is not fatal (:func:`_is_fatal`: authentication, the store) defers that item with a warning
and the sync goes on; what was deferred is never marked done (a log keeps ``log_state`` NULL), so the next sync
retries it. :class:`SyncReport` lists ``warnings`` and ``deferred``.

**One sync per project at a time.** A sync takes the project's lease in the store (``sync_leases``) before its
first request and waits while another live sync holds it (reporting phase ``"waiting"``); then it runs as an
incremental sync of what the other one stored, so two syncs never download the same logs. The lease expires
:data:`LEASE_TTL` after its last renewal (renewed every :data:`LEASE_RENEW_SECONDS` while syncing), and a lease of a
process on this host that no longer exists is free at once. On taking the lease, ``running`` rows of
``sync_runs`` left by a killed sync are marked ``interrupted``.

Where the CPU goes matters: a sync is thousands of small requests on a client that may share a busy machine, so
every request (listings too) goes over the worker's own keep-alive connection (:mod:`cidash.remote.conn`: no
httpx pool lock, no ``requests``/python-gitlab, which the sync does not import), parsed logs are written 100 per
transaction with ``executemany``. REST paths and JSON decoding live in :mod:`cidash.remote` (one module per
resource family: :mod:`~cidash.remote.projects`, :mod:`~cidash.remote.pipelines`, :mod:`~cidash.remote.jobs`,
:mod:`~cidash.remote.instance`; repository files and the registry on :class:`~cidash.remote.http.HttpClient`).
"""

from __future__ import annotations

from cidash.sync.context import _LOG_COMMIT_BATCH as _LOG_COMMIT_BATCH
from cidash.sync.context import _PREFETCH_PER_WORKER as _PREFETCH_PER_WORKER
from cidash.sync.context import _R as _R
from cidash.sync.context import _SINCE_RE as _SINCE_RE
from cidash.sync.context import _T as _T
from cidash.sync.context import ACTIVE_JOB_STATUSES as ACTIVE_JOB_STATUSES
from cidash.sync.context import ACTIVE_PIPELINE_STATUSES as ACTIVE_PIPELINE_STATUSES
from cidash.sync.context import CURSOR_INSTANCE_VERSION as CURSOR_INSTANCE_VERSION
from cidash.sync.context import CURSOR_LAST_SYNC as CURSOR_LAST_SYNC
from cidash.sync.context import CURSOR_PIPELINES as CURSOR_PIPELINES
from cidash.sync.context import CURSOR_REGISTRY as CURSOR_REGISTRY
from cidash.sync.context import CURSOR_RESOURCE_GROUPS as CURSOR_RESOURCE_GROUPS
from cidash.sync.context import FINISHED_JOB_STATUSES as FINISHED_JOB_STATUSES
from cidash.sync.context import MAX_WARNINGS as MAX_WARNINGS
from cidash.sync.context import SyncOptions as SyncOptions
from cidash.sync.context import SyncProgress as SyncProgress
from cidash.sync.context import SyncReport as SyncReport
from cidash.sync.context import _absorb_wire as _absorb_wire
from cidash.sync.context import _Ctx as _Ctx
from cidash.sync.context import _due as _due
from cidash.sync.context import _human_bytes as _human_bytes
from cidash.sync.context import _is_fatal as _is_fatal
from cidash.sync.context import _item_deferred as _item_deferred
from cidash.sync.context import _LogResult as _LogResult
from cidash.sync.context import _step_deferred_on_failure as _step_deferred_on_failure
from cidash.sync.context import _warn as _warn
from cidash.sync.context import _wire_now as _wire_now
from cidash.sync.context import parse_since as parse_since
from cidash.sync.engine import _Baseline as _Baseline
from cidash.sync.engine import _failed_report as _failed_report
from cidash.sync.engine import _refetch as _refetch
from cidash.sync.engine import _retry_deferred as _retry_deferred
from cidash.sync.engine import _SideSteps as _SideSteps
from cidash.sync.engine import _sync_leased as _sync_leased
from cidash.sync.engine import project_client as project_client
from cidash.sync.engine import resolve_project as resolve_project
from cidash.sync.engine import sync_project as sync_project
from cidash.sync.engine import sync_projects as sync_projects
from cidash.sync.instance import _sync_instance_version as _sync_instance_version
from cidash.sync.jobs import _sync_jobs as _sync_jobs
from cidash.sync.lease import _HOST as _HOST
from cidash.sync.lease import _LEASE_POLL_SECONDS as _LEASE_POLL_SECONDS
from cidash.sync.lease import LEASE_RENEW_SECONDS as LEASE_RENEW_SECONDS
from cidash.sync.lease import LEASE_TTL as LEASE_TTL
from cidash.sync.lease import _describe_holder as _describe_holder
from cidash.sync.lease import _holder_is_dead as _holder_is_dead
from cidash.sync.lease import _Lease as _Lease
from cidash.sync.lease import _pid_alive as _pid_alive
from cidash.sync.logs import _fetch_log as _fetch_log
from cidash.sync.logs import _job_label as _job_label
from cidash.sync.logs import _log_wanted as _log_wanted
from cidash.sync.logs import _LogFailed as _LogFailed
from cidash.sync.logs import _LogSink as _LogSink
from cidash.sync.logs import _prefetch_logs as _prefetch_logs
from cidash.sync.logs import _sync_logs as _sync_logs
from cidash.sync.logs import _wanted as _wanted
from cidash.sync.pipelines import _pipeline_detail as _pipeline_detail
from cidash.sync.pipelines import _read_ahead as _read_ahead
from cidash.sync.pipelines import _sync_pipelines as _sync_pipelines
from cidash.sync.registry import _sync_registry_and_groups as _sync_registry_and_groups
from cidash.sync.repository import _checksums_from_compare as _checksums_from_compare
from cidash.sync.repository import _checksums_from_history as _checksums_from_history
from cidash.sync.repository import _checksums_per_sha as _checksums_per_sha
from cidash.sync.repository import _save_whole_shas as _save_whole_shas
from cidash.sync.repository import _shas_by_ref as _shas_by_ref
from cidash.sync.repository import _sync_checksums as _sync_checksums
from cidash.sync.repository import _sync_ci_configs as _sync_ci_configs
