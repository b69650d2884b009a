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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from cidash.criteria import (
    REGISTRY,
    CriteriaReport,
    DailyPoint,
    DayContext,
    EvalContext,
    EvidenceTable,
    Periods,
    choose_periods,
    criteria_ref,
    criterion_daily_series,
    evaluate,
)
from cidash.dataset import Span, gc_paused, load_dataset, merge_spans, resolve_project
from cidash.errors import CidashError
from cidash.metrics import Dataset, ImageHistory, image_size_history
from cidash.queries import image_history
from cidash.specs import parse_migration

if TYPE_CHECKING:
    from cidash.compare import Comparison
    from cidash.config import Config
    from cidash.export import ExportInput
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
    #: The pipeline creation spans ``dataset`` holds (:func:`judged_spans`); None: the whole history.
    spans: tuple[Span, ...] | None = None
    #: Spans of ``dataset`` read for their start-ups only, on the criteria ref only (the baseline of ``check``
    #: and ``export``): see :class:`Window`.
    startup_only: tuple[Span, ...] = ()
    #: False: the dataset's log facts lack the start-up phases' sections (``check``'s load, see build_snapshot).
    phases: bool = True
    #: False: the dataset's log facts lack the cache-upload sections (``compare``'s load): the criteria, their
    #: evidence and the exports, which read the writers' upload windows, are refused.
    uploads: bool = True
    #: True: the jobs lack the columns no metric, criterion, evidence table or dashboard view reads (stage, SHA,
    #: runner, URL, ...; ``compare``'s and ``export``'s loads, see build_snapshot, and :meth:`widened`): the tests
    #: hold what each of those gives equal to a load with every column.
    narrow: bool = False
    #: Set when ``dataset`` holds only this ref's pipelines of ``spans`` (the criteria ref: build_snapshot's
    #: ``ref_only``); None: every ref's.
    ref: str | None = None
    as_of: bool = True
    #: The store the dataset came from, for a slice outside ``spans`` asked later (compare, export --since).
    store: Store | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:  # the dataclass repr would print every pipeline and job (Textual logs reprs)
        return f"Snapshot({self.project.path!r}, now={self.now.isoformat()}, {len(self.dataset.jobs)} jobs)"

    @cached_property
    def periods(self) -> Periods:
        """Baseline and candidate (raises UsageError for a malformed configured SPEC)."""
        return choose_periods(self.dataset, self.config, self.now)

    @cached_property
    def report(self) -> CriteriaReport:
        """The criteria, evaluated once per snapshot: every output reads this one report."""
        self._need_uploads("the criteria")
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

    def _need_uploads(self, what: str) -> None:
        if not self.uploads:
            raise RuntimeError(f"{what} need the cache-upload sections: build_snapshot(uploads=True)")

    @property
    def context(self) -> EvalContext:
        self._need_uploads("the criteria's evidence")
        return EvalContext(self.dataset, self.config, self.periods, self.include_retried, self.seed)

    def baseline(self, criterion_id: str) -> float | None:
        """A criterion's measure over the baseline period (None without one). Not on a ``check`` window, which
        holds only the baseline's start-ups (``build_snapshot(since="health")`` or ``None`` give the rest)."""
        if self.startup_only:
            raise RuntimeError('Snapshot.baseline needs build_snapshot(since="health") or since=None')
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

        if not self.phases and self.store is None:
            raise RuntimeError("Snapshot.compare needs the start-up phases: build_snapshot(phases=True)")
        ds = self.dataset
        if self.spans is not None and self.store is not None:
            if not self.phases or (self.ref is not None and not _on_ref(self.ref, (baseline, candidate))):
                ds = self.whole_history()  # the window lacks the phases or the other refs a comparison shows
            for spec in (baseline, candidate):
                wanted = _spec_spans(spec)
                if wanted is None or not all(_within(self.spans, w) for w in wanted):
                    ds = self.whole_history()  # a slice outside the window loaded (build_snapshot(specs=...))
                    break
        with gc_paused():  # (the slices' jobs are alive meanwhile: a full collection would walk them all)
            return compare(
                ds,
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

        if not self.phases:
            raise RuntimeError("Snapshot.export_input needs the start-up phases: build_snapshot(phases=True)")
        self._need_uploads("exports")
        ds = self.dataset
        if self.spans is not None and (self.ref is not None or not _covers(self.spans, since)):
            # export --since reaches before the window loaded (or other refs): load what it asks for
            ds = self._load(since, narrow=self.narrow)
        return ExportInput(
            ds=ds.between(since, None).on_ref(ref),
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

    @property
    def _as_of_time(self) -> datetime | None:
        return self.now if self.as_of else None

    def widened(self) -> Snapshot:
        """This snapshot over the whole history (itself when it holds it already): what the dashboard's other
        tabs read once the Health table, made from the window, is on screen. Same periods and verdicts. Its jobs
        are read narrow (:attr:`narrow`: ~30 % less memory and time at 10,000 pipelines) unless this snapshot
        loaded the whole history with every column already (a comparison outside the window did)."""
        if self.spans is None:
            return self
        whole = self.__dict__.get("_whole")
        out = replace(
            self,
            dataset=whole if whole is not None else self._load(None, narrow=True),
            spans=None,
            startup_only=(),
            phases=True,
            uploads=True,
            narrow=whole is None or self.narrow,
            ref=None,
        )
        # chosen and evaluated once: the window's verdicts are the history's; its periods too, unless they are
        # slices of a window without the start-up phases or the other refs (the Start-up tab shows the phases), or
        # with a baseline read for its start-up values only (export's window)
        kept = ("periods", "report") if self.phases and self.ref is None and not self.startup_only else ("report",)
        for evaluated in kept:
            if evaluated in self.__dict__:
                out.__dict__[evaluated] = self.__dict__[evaluated]
        return out

    @cached_property
    def _whole(self) -> Dataset:
        return self._load(None, narrow=self.narrow)

    def whole_history(self, since: datetime | None = None) -> Dataset:
        """The dataset with every pipeline created since ``since`` (None: all, loaded once), loaded again from the
        store when the snapshot holds only the window judged (on one ref, without the start-up phases, or from
        later than ``since``); read as narrow as the window."""
        if self.spans is None or (self.ref is None and self.phases and _covers(self.spans, since)):
            return self.dataset
        return self._whole if since is None else self._load(since, narrow=self.narrow)

    def _load(self, since: datetime | None, *, narrow: bool = False) -> Dataset:
        assert self.store is not None
        return load_history(
            self.store,
            self.project,
            self.config,
            since=since,
            as_of=self._as_of_time,
            history=self.dataset.image_history,
            narrow=narrow,
        )

    def daily_series(self, criterion_id: str, *, days: int = 30) -> list[DailyPoint]:
        """One point per UTC day (oldest first) of the measure behind a criterion, up to ``now``: what
        :func:`cidash.criteria.criterion_daily_series` gives, the last 30 days sliced once for every criterion."""
        if days == 30:
            criterion = REGISTRY.get(criterion_id)
            if criterion is None:
                raise ValueError(f"unknown criterion {criterion_id!r}")
            return [DailyPoint(c.start.date(), *criterion.day_value(c)) for c in self._last_30_days]
        ds = self.recent if days <= 30 else self.dataset
        return criterion_daily_series(ds, self.config, criterion_id, days=days, now=self.now)

    @cached_property
    def _last_30_days(self) -> list[DayContext]:
        """The criteria ref's last 30 UTC days, one slice each, as :func:`~cidash.criteria.criterion_daily_series`
        cuts them (the Health table's seven sparklines cut them once)."""
        ds, config = self.recent, self.config
        on_ref = ds.on_ref(criteria_ref(ds, config))
        first = self.now.astimezone(UTC).date() - timedelta(days=29)
        starts = [datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=i) for i in range(30)]
        days = on_ref.split([*starts, starts[-1] + timedelta(days=1)])
        sizes = image_size_history(ds, config.image.repository)
        return [DayContext(ds, day, start, config, sizes) for day, start in zip(days, starts, strict=True)]


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
    since: datetime | Literal["window", "health"] | None = None,
    specs: Sequence[Spec] = (),
    phases: bool = True,
    ref_only: bool = False,
    uploads: bool = True,
    narrow: bool = False,
) -> Snapshot:
    """Load ``project``'s dataset from ``store`` and (unless ``evaluate_now`` is false) evaluate the criteria.

    ``as_of``: only what existed at ``now`` is loaded (pipelines created, jobs finished, tags created by then);
    false for a comparison of two named slices, which does not depend on the time.

    Only the pipelines the criteria judge are loaded (the baseline and candidate periods, and the last 30 days
    the daily series show), chosen from the whole history's CI-image digest changes found in the database
    (:func:`cidash.queries.image_history`) when ``since`` is ``"window"`` (or a time: the dataset also holds
    every pipeline created since then): memory follows the window judged, not the store's history. ``since``
    None (the default: the dashboard's tabs, ``export --since all``): the whole history.
    ``specs``: the slices a comparison reads (their dates, else the whole history). Configured baseline and
    candidate SPECs, or a migration named by digest, load the whole history. ``phases`` false (``check``): a
    window leaves out the start-up phases' runner sections, which no criterion reads (the snapshot then refuses
    :meth:`Snapshot.export_input`, and :meth:`Snapshot.compare` loads the history it shows). ``ref_only``: a window
    holds only the criteria ref's pipelines (every criterion, its baseline and its daily series judge that ref; the
    other refs' jobs are read by the dashboard's other tabs and by exports, which load them when asked): what the
    dashboard's Health screen loads. ``uploads`` false (``compare``): a window leaves out the cache-upload sections,
    which only the writers' criterion and the exports read (the snapshot then refuses its criteria and exports).
    ``narrow`` (``check``, ``compare``; ``export`` in JSON, CSV, Markdown): the jobs without the columns no
    metric, criterion, evidence table or such export reads (stage, SHA, runner, URL, ...:
    :func:`cidash.dataset._read_narrow_jobs`), in a window and in what is loaded beyond it (the whole history
    when the SPECs or the migration ask for it, an export's wider ``--since``)."""
    with gc_paused():
        spans = judged_spans(store, config, project, now, as_of=as_of, since=since, specs=specs)
        if spans is None:
            ds = load_history(store, project, config, since=None, as_of=now if as_of else None, narrow=narrow)
        else:
            ds = load_dataset(
                store,
                project,
                config_ref=config.criteria.ref,
                as_of=now if as_of else None,
                spans=spans.spans,
                startup_only=spans.startup_only,
                phases=phases,
                image_history=spans.history,
                ref=_load_ref(spans, ref_only),
                startup_ref=spans.ref,  # the baseline's start-ups are judged on the criteria ref only
                uploads=uploads,
                narrow=narrow,
            )
        snap = Snapshot(
            project,
            now,
            config,
            ds,
            store.last_sync(project.id),
            include_retried=include_retried,
            seed=seed,
            only=only,
            spans=None if spans is None else tuple(merge_spans(spans.spans)),
            startup_only=() if spans is None else spans.startup_only,
            phases=phases or spans is None,
            uploads=uploads or spans is None,
            narrow=narrow,
            ref=None if spans is None else _load_ref(spans, ref_only),
            as_of=as_of,
            store=store,
        )
        if evaluate_now:
            _ = snap.report
    return snap


def load_history(
    store: Store,
    project: Project,
    config: Config,
    *,
    since: datetime | None,
    as_of: datetime | None,
    history: ImageHistory | None = None,
    narrow: bool = False,
) -> Dataset:
    """Every pipeline created since ``since`` (None: all), read the way a window is (one span from ``since`` on):
    each job's start-up phases summed (:attr:`~cidash.metrics.Dataset.phases_by_job`) and only the cache-upload
    sections kept, instead of every runner section of every log as :func:`~cidash.dataset.load_dataset` without
    spans keeps them. Every metric reads the two alike (``tests/integration/test_health_window.py`` and
    ``test_core_window.py`` hold them equal); this one takes a third of the memory (the dashboard's other tabs at
    50,000 pipelines: 1.8 GB -> 0.65 GB, bench/README.md "TUI"). ``history``: the CI image's changes when
    known (from the database), else found in the loaded jobs. ``narrow``: the jobs without the columns nothing
    but a job's own screen reads (:attr:`Snapshot.narrow`; the dashboard's other tabs)."""
    with gc_paused():
        return load_dataset(
            store,
            project,
            config_ref=config.criteria.ref,
            as_of=as_of,
            spans=[(since, None)],
            image_history=history,
            narrow=narrow,
        )


@dataclass(frozen=True)
class Window:
    """What :func:`build_snapshot` loads of the history: every fact of the pipelines created in ``spans``, the
    start-ups only of those in ``startup_only`` (the baseline), and the whole history's CI-image changes."""

    spans: tuple[Span, ...]
    startup_only: tuple[Span, ...]
    history: ImageHistory | None
    #: The criteria ref (None: no periods were chosen, e.g. two named slices of ``compare``).
    ref: str | None = None
    #: Set when only this ref's pipelines are read whatever ``ref_only`` says: the one ref both slices of a
    #: ``compare`` name (``--baseline 2026-08-29..2026-09-27,ref:main``), all they can select.
    only_ref: str | None = None


def _load_ref(window: Window, ref_only: bool) -> str | None:
    """The ref whose pipelines alone :func:`build_snapshot` loads for ``window`` (None: every ref's)."""
    return window.only_ref if window.only_ref is not None else (window.ref if ref_only else None)


def _spec_ref(spec: Spec) -> str | None:
    """The ref a SPEC of dates and a ref (``2026-08-29..2026-09-27,ref:main``, in any order) keeps its slice to;
    None for any other SPEC (its slice may reach other refs, or depend on them: a commit range is looked up
    among every ref's pipelines)."""
    if spec.kind != "all_of" or not all(p.kind in ("dates", "ref") for p in spec.parts):
        return None
    refs = {p.ref for p in spec.parts if p.kind == "ref"}
    return refs.pop() if len(refs) == 1 else None


def _on_ref(ref: str, specs: Sequence[Spec]) -> bool:
    """True when every SPEC in ``specs`` selects only pipelines of ``ref`` (see :func:`_spec_ref`)."""
    return bool(specs) and all(_spec_ref(spec) == ref for spec in specs)


def _covers(spans: Sequence[Span], since: datetime | None) -> bool:
    """True when the (merged) ``spans`` hold every pipeline created since ``since``."""
    if not spans or spans[-1][1] is not None:
        return False
    start = spans[-1][0]
    return start is None or (since is not None and start <= since)


def _within(spans: Sequence[Span], wanted: Span) -> bool:
    """True when the (merged) ``spans`` hold every pipeline created in ``wanted``."""
    lo, hi = wanted
    return any(
        (a is None or (lo is not None and a <= lo)) and (b is None or (hi is not None and hi <= b)) for a, b in spans
    )


def _spec_spans(spec: Spec) -> list[Span] | None:
    """The creation times a SPEC can select from (None: it can reach anywhere, e.g. pipeline ids or commits)."""
    if spec.kind == "dates":
        return [(spec.start, spec.end)]
    if spec.kind == "all_of":
        for part in spec.parts:  # a conjunction stays inside any one of its date parts
            if (got := _spec_spans(part)) is not None:
                return got
    return None


def judged_spans(
    store: Store,
    config: Config,
    project: Project,
    now: datetime,
    *,
    as_of: bool = True,
    since: datetime | Literal["window", "health"] | None = "window",
    specs: Sequence[Spec] = (),
) -> Window | None:
    """The pipeline creation spans :func:`build_snapshot` loads, and the whole history's CI-image changes that
    chose them; None when the whole history is needed."""
    if since is None:
        return None
    extra: list[Span] = [(since, None)] if isinstance(since, datetime) else []
    if specs:
        for spec in specs:
            got = _spec_spans(spec)
            if got is None:
                return None
            extra.extend(got)
    if not as_of:
        if not specs:
            return None
        refs = {_spec_ref(spec) for spec in specs}
        only = refs.pop() if len(refs) == 1 else None  # both slices on one ref: the others' pipelines stay out
        return Window(tuple(extra), (), None, only_ref=only)
    c = config.criteria
    if c.baseline and c.candidate:
        return None  # configured SPECs may name any slice of the history
    if c.migration:
        try:
            if parse_migration(c.migration).digest is not None:
                return None  # the first job that ran it may be anywhere in the history
        except CidashError:
            return None  # choose_periods says what is wrong with it
    ref = c.ref or project.default_branch or "main"
    hint = config.image.repository or f"{project.path}/ci"
    history = image_history(store, project.id, ref, hint, now)
    # The periods chosen over a dataset with no pipelines but the whole history's changes and the image tags:
    # choose_periods itself says where they lie, so the rule lives in one place.
    probe = Dataset(
        project,
        (),
        (),
        image_tags=tuple(s.tag for s in store.image_tags(project.id)),
        image_history=history,
    )
    periods = choose_periods(probe, config, now)
    window = timedelta(days=c.window_days)
    spans: list[Span] = [(now - window, None)]
    startup_only: list[Span] = []
    if periods.split_at is not None:
        # the baseline is only read for its start-ups (every other criterion judges the candidate), unless the
        # Health table is to show every criterion's baseline value (since="health", the dashboard's first screen)
        baseline = (periods.split_at - window, periods.split_at)
        (spans if since == "health" else startup_only).append(baseline)
        spans.append((max(periods.split_at, now - window), None))
    first = now.astimezone(UTC).date() - timedelta(days=29)  # Snapshot.recent (the daily series)
    spans.append((datetime(first.year, first.month, first.day, tzinfo=UTC), None))
    return Window((*spans, *extra), tuple(startup_only), history, ref)


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
    since: datetime | Literal["window", "health"] | None = None,
    specs: Sequence[Spec] = (),
    phases: bool = True,
    ref_only: bool = False,
    uploads: bool = True,
    narrow: bool = False,
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
        since=since,
        specs=specs,
        phases=phases,
        ref_only=ref_only,
        uploads=uploads,
        narrow=narrow,
    )
