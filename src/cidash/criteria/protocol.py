"""The :class:`Criterion` protocol, what a criterion is evaluated over (:class:`EvalContext`, one day's
:class:`DayContext`) and :class:`RegisteredCriterion`, a criterion made of functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from cidash.config import Config
from cidash.criteria.periods import Periods
from cidash.criteria.results import CriterionResult
from cidash.metrics import Dataset, ImageSizePoint


@dataclass(frozen=True)
class EvalContext:
    """What a criterion is evaluated over: the whole dataset, the chosen periods and the options."""

    ds: Dataset
    config: Config
    periods: Periods
    include_retried: bool = False
    seed: int = 0

    def on_baseline(self) -> EvalContext | None:
        """This context with the baseline period as the candidate (None without a baseline with pipelines)."""
        p = self.periods
        if p.baseline is None or not p.baseline.pipelines:
            return None
        base = Periods(p.mode, p.ref, None, p.baseline, f"baseline: {p.description}")
        return EvalContext(self.ds, self.config, base, self.include_retried, self.seed)


@dataclass(frozen=True)
class DayContext:
    """One UTC day of a daily series: the whole dataset, the day's slice on the criteria ref, the day's start,
    and the image-size history (computed once per series)."""

    ds: Dataset
    day: Dataset
    start: datetime
    config: Config
    sizes: list[ImageSizePoint]


#: An evidence table: column titles and rows of cells.
EvidenceTable = tuple[tuple[str, ...], Sequence[tuple[str, ...]]]


class Criterion(Protocol):
    """One success criterion. ``unit`` is the unit of its value; ``series_unit`` that of its daily measure;
    ``measure_unit`` that of what its baseline and change are told in (the value's unit when empty);
    ``gitlab_page`` the GitLab page that shows what it measures (a :func:`cidash.tui.links.web_url` kind:
    ``registry`` or ``pipelines``), so the dashboard's ``o`` matches no criterion id itself."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def short_title(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def series_unit(self) -> str: ...
    @property
    def measure_unit(self) -> str: ...
    @property
    def gitlab_page(self) -> str: ...

    def evaluate(self, ctx: EvalContext) -> CriterionResult: ...
    def day_value(self, ctx: DayContext) -> tuple[float | None, int]: ...
    def baseline(self, ctx: EvalContext, result: CriterionResult) -> float | None: ...
    def measure(self, result: CriterionResult) -> float | None: ...
    def evidence(self, ctx: EvalContext) -> EvidenceTable: ...


def _rerun_on_baseline(crit: Criterion, ctx: EvalContext, result: CriterionResult) -> float | None:
    """The criterion's value over the baseline period (the current-state criteria)."""
    base = ctx.on_baseline()
    return crit.evaluate(base).value if base is not None else None


@dataclass(frozen=True)
class RegisteredCriterion:
    """A :class:`Criterion` made of functions (what :data:`REGISTRY` holds)."""

    id: str
    title: str
    short_title: str
    unit: str
    series_unit: str
    evaluator: Callable[[EvalContext], CriterionResult]
    day: Callable[[DayContext], tuple[float | None, int]]
    evidence_table: Callable[[EvalContext], EvidenceTable]
    baseline_of: Callable[[Criterion, EvalContext, CriterionResult], float | None] | None = _rerun_on_baseline
    measure_of: Callable[[CriterionResult], float | None] | None = None
    measure_unit: str = ""
    gitlab_page: str = "pipelines"

    def evaluate(self, ctx: EvalContext) -> CriterionResult:
        result = self.evaluator(ctx)
        return result if result.title == self.title else replace(result, title=self.title)

    def day_value(self, ctx: DayContext) -> tuple[float | None, int]:
        return self.day(ctx)

    def baseline(self, ctx: EvalContext, result: CriterionResult) -> float | None:
        return self.baseline_of(self, ctx, result) if self.baseline_of is not None else None

    def measure(self, result: CriterionResult) -> float | None:
        return self.measure_of(result) if self.measure_of is not None else result.value

    def evidence(self, ctx: EvalContext) -> EvidenceTable:
        return self.evidence_table(ctx)
