"""CI health metrics: pure functions over a :class:`Dataset` of cidash models, each result with its ``n``.

Nothing here reads the clock, the store or the network: :mod:`cidash.dataset` loads a :class:`Dataset` from the
store, and callers pass ``now`` where time matters. The TUI, ``cidash check``, ``compare`` and ``export`` all
read these functions.

Conventions shared by every metric:

- **Retried jobs** (a later attempt exists in the same pipeline) are excluded unless ``include_retried=True``;
  the image-build reliability metric looks at attempts explicitly instead.
- **Manual waits** are excluded: jobs whose status is ``manual``/``scheduled``/``created``/``skipped``
  never count, and time to first script only looks at jobs that actually started.
- Quantiles are type 7 (see :mod:`cidash.stats`). Sizes are bytes; MB in reports means 10^6 bytes.

The package, one module per idea: :mod:`~cidash.metrics.model` (the :class:`Dataset` and the conventions above:
counted jobs, plausible values, digests), :mod:`~cidash.metrics.pipelines` (durations and queue times),
:mod:`~cidash.metrics.startup` (job start-up and its phases), :mod:`~cidash.metrics.caches` (restores, stale
caches, cache writers), :mod:`~cidash.metrics.images` (the CI image: sizes, digests and their changes),
:mod:`~cidash.metrics.jobs` (image-build reliability, job outcomes). Every name stays importable from
``cidash.metrics``.
"""

from __future__ import annotations

from cidash.metrics.caches import (
    ARCHIVE_SECTIONS,
    DEFAULT_KEY,
    NEVER_HIT_MIN_RESTORES,
    RESTORE_OUTCOMES,
    GroupBy,
    OutcomeRate,
    StaleCacheEvent,
    UnserialisedWriters,
    WriterOverlap,
    cache_restore_rates,
    cache_writers,
    jobs_restoring_a_cache,
    main_restore_keys,
    never_hit_keys,
    overlapping_writers,
    restore_outcome_counts,
    restore_outcome_totals,
    restores_a_cache,
    stale_cache_events,
    unserialised_config_writers,
    write_window,
)
from cidash.metrics.images import (
    DigestSize,
    ImageSizePoint,
    ci_image_digest_counts,
    ci_image_jobs,
    digest_sizes,
    image_digest_changes,
    image_last_used,
    image_repository_of,
    image_size_history,
    image_tag_of,
    last_ci_image_digest,
    size_of_digest,
    tag_sizes,
)
from cidash.metrics.jobs import (
    INFRASTRUCTURE_FAILURES,
    SCRIPT_FAILURES,
    BuildReliability,
    JobOutcomes,
    failure_kind,
    image_build_reliability,
    job_outcomes,
)
from cidash.metrics.model import (
    FINISHED_STATUSES,
    Dataset,
    DigestChange,
    ImageHistory,
    JobCacheConfig,
    Sample,
    StartupRecord,
    by_identity,
    counted_jobs,
    fast_constructor,
    job_image_digest,
    normalize_digest,
    plausible_seconds,
    plausible_size,
)
from cidash.metrics.pipelines import job_queue_times, pipeline_durations, pipeline_queue_times
from cidash.metrics.startup import (
    STARTUP_PHASES,
    FirstScript,
    JobStartup,
    PhaseSums,
    PhaseTuple,
    StartupSamples,
    job_startups,
    phase_tuple,
    section_phases,
    startup_phase_sums,
    startup_phases,
    startup_sample,
    startup_samples,
    startup_seconds,
    time_to_first_script,
)
from cidash.models import NOT_RUN_STATUSES

__all__ = [
    "ARCHIVE_SECTIONS",
    "DEFAULT_KEY",
    "FINISHED_STATUSES",
    "INFRASTRUCTURE_FAILURES",
    "NEVER_HIT_MIN_RESTORES",
    "NOT_RUN_STATUSES",
    "RESTORE_OUTCOMES",
    "SCRIPT_FAILURES",
    "STARTUP_PHASES",
    "BuildReliability",
    "Dataset",
    "DigestChange",
    "DigestSize",
    "FirstScript",
    "GroupBy",
    "ImageHistory",
    "ImageSizePoint",
    "JobCacheConfig",
    "JobOutcomes",
    "JobStartup",
    "OutcomeRate",
    "PhaseSums",
    "PhaseTuple",
    "Sample",
    "StaleCacheEvent",
    "StartupRecord",
    "StartupSamples",
    "UnserialisedWriters",
    "WriterOverlap",
    "by_identity",
    "cache_restore_rates",
    "cache_writers",
    "ci_image_digest_counts",
    "ci_image_jobs",
    "counted_jobs",
    "digest_sizes",
    "failure_kind",
    "fast_constructor",
    "image_build_reliability",
    "image_digest_changes",
    "image_last_used",
    "image_repository_of",
    "image_size_history",
    "image_tag_of",
    "job_image_digest",
    "job_outcomes",
    "job_queue_times",
    "job_startups",
    "jobs_restoring_a_cache",
    "last_ci_image_digest",
    "main_restore_keys",
    "never_hit_keys",
    "normalize_digest",
    "overlapping_writers",
    "phase_tuple",
    "pipeline_durations",
    "pipeline_queue_times",
    "plausible_seconds",
    "plausible_size",
    "restore_outcome_counts",
    "restore_outcome_totals",
    "restores_a_cache",
    "section_phases",
    "size_of_digest",
    "stale_cache_events",
    "startup_phase_sums",
    "startup_phases",
    "startup_sample",
    "startup_samples",
    "startup_seconds",
    "tag_sizes",
    "time_to_first_script",
    "unserialised_config_writers",
    "write_window",
]
