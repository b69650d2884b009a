"""The one door to the synced data: load a project's dataset and evaluate the criteria once.

``cidash check``, ``compare``, ``export``, the dashboard and the coming ``serve`` all go through
:func:`load_snapshot` (resolve the project, load the :class:`~cidash.metrics.Dataset`, choose the periods,
evaluate the :data:`~cidash.criteria.REGISTRY`), so every output made from one :class:`Snapshot` shows the same
verdicts for the same ``now``. Everything the views read beyond it (paged pipelines, one pipeline's jobs, image
tags, the last key seen in logs) is in :mod:`cidash.queries`.

Layers: this module sits above the store, the dataset, the metrics and the criteria, and below the commands and
the TUI; nothing it imports imports it (``.importlinter``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from cidash.criteria import (
    REGISTRY,
    CriteriaReport,
    DailyPoint,
    EvalContext,
    EvidenceTable,
    Periods,
    choose_periods,
    criterion_daily_series,
    evaluate,
)
from cidash.dataset import gc_paused, load_dataset, resolve_project

if TYPE_CHECKING:
    from cidash.compare import Comparison
    from cidash.config import Config
    from cidash.export import ExportInput
    from cidash.metrics import Dataset
    from cidash.models import Project
    from cidash.specs import Spec
    from cidash.store import Store


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A project's dataset as of ``now`` and everything evaluated from it, computed once (lazily, then cached).

    ``only`` limits the evaluated criteria (``cidash check --criterion``); ``include_retried`` and ``seed`` are
    the evaluation's options."""

    project: Project
    now: datetime
    config: Config
    dataset: Dataset = field(repr=False)
    last_sync: datetime | None = None
    include_retried: bool = False
    seed: int = 0
    only: tuple[str, ...] | None = None

    def __repr__(self) -> str:  # the dataclass repr would print every pipeline and job (Textual logs reprs)
        return f"Snapshot({self.project.path!r}, now={self.now.isoformat()}, {len(self.dataset.jobs)} jobs)"

    @cached_property
    def periods(self) -> Periods:
        """Baseline and candidate (raises UsageError for a malformed configured SPEC)."""
        return choose_periods(self.dataset, self.config, self.now)

    @cached_property
    def report(self) -> CriteriaReport:
        """The criteria, evaluated once per snapshot: every output reads this one report."""
        with gc_paused():
            return evaluate(
                self.dataset,
                self.config,
                self.now,
                include_retried=self.include_retried,
                only=self.only,
                seed=self.seed,
                periods=self.periods,
            )

    @property
    def context(self) -> EvalContext:
        return EvalContext(self.dataset, self.config, self.periods, self.include_retried, self.seed)

    def baseline(self, criterion_id: str) -> float | None:
        """A criterion's measure over the baseline period (None without one)."""
        result = next(r for r in self.report.criteria if r.id == criterion_id)
        return REGISTRY[criterion_id].baseline(self.context, result)

    def evidence(self, criterion_id: str) -> EvidenceTable:
        """The pipelines, jobs or keys behind one criterion, as columns and rows of cells."""
        return REGISTRY[criterion_id].evidence(self.context)

    @cached_property
    def recent(self) -> Dataset:
        """The pipelines created in the last 30 UTC days (what daily series read; sliced once)."""
        first = self.now.astimezone(UTC).date() - timedelta(days=29)
        return self.dataset.between(datetime(first.year, first.month, first.day, tzinfo=UTC), None)

    def compare(self, baseline: Spec, candidate: Spec, *, resamples: int = 2000) -> Comparison:
        """:func:`cidash.compare.compare` of two slices of this snapshot's dataset, with its options."""
        from cidash.compare import compare

        return compare(
            self.dataset,
            baseline,
            candidate,
            self.config,
            include_retried=self.include_retried,
            seed=self.seed,
            resamples=resamples,
        )

    def export_input(self, store: Store, *, since: datetime | None, ref: str | None = None) -> ExportInput:
        """What ``export`` and ``serve``'s ``/metrics`` render: this snapshot's report and its dataset from
        ``since`` (on ``ref``), with the counters' running totals kept in ``store``."""
        from cidash.export import ExportInput, totals_from_store

        return ExportInput(
            ds=self.dataset.between(since, None).on_ref(ref),
            report=self.report,
            generated_at=self.now,
            since=since,
            build_job=self.config.image.build_job,
            critical_files=self.config.cache_key.files,
            image_repository=self.config.image.repository,
            include_retried=self.include_retried,
            totals=totals_from_store(store, self.project.id),
            last_sync=self.last_sync,
        )

    def daily_series(self, criterion_id: str, *, days: int = 30) -> list[DailyPoint]:
        """One point per UTC day (oldest first) of the measure behind a criterion, up to ``now``."""
        ds = self.recent if days <= 30 else self.dataset
        return criterion_daily_series(ds, self.config, criterion_id, days=days, now=self.now)


def build_snapshot(
    store: Store,
    config: Config,
    project: Project,
    now: datetime,
    *,
    include_retried: bool = False,
    seed: int = 0,
    only: tuple[str, ...] | None = None,
    evaluate_now: bool = True,
    as_of: bool = True,
) -> Snapshot:
    """Load ``project``'s dataset from ``store`` and (unless ``evaluate_now`` is false) evaluate the criteria.

    ``as_of``: only what existed at ``now`` is loaded (pipelines created, jobs finished, tags created by then);
    false for a comparison of two named slices, which does not depend on the time."""
    with gc_paused():
        ds = load_dataset(store, project, config_ref=config.criteria.ref, as_of=now if as_of else None)
        snap = Snapshot(
            project,
            now,
            config,
            ds,
            store.last_sync(project.id),
            include_retried=include_retried,
            seed=seed,
            only=only,
        )
        if evaluate_now:
            _ = snap.report
    return snap


def load_snapshot(
    store: Store,
    config: Config,
    now: datetime,
    *,
    project: str | None = None,
    configured: Iterable[str] | None = None,
    include_retried: bool = False,
    seed: int = 0,
    only: tuple[str, ...] | None = None,
    evaluate_now: bool = True,
    as_of: bool = True,
) -> Snapshot:
    """Resolve the project (``project``, else the only one of ``configured`` — default ``[gitlab] projects`` —
    else the only one in the store; UsageError otherwise) and :func:`build_snapshot` it."""
    chosen = resolve_project(store, project, config.gitlab.projects if configured is None else configured)
    return build_snapshot(
        store,
        config,
        chosen,
        now,
        include_retried=include_retried,
        seed=seed,
        only=only,
        evaluate_now=evaluate_now,
        as_of=as_of,
    )
