"""Before/after comparison of two slices of CI history (``cidash compare --baseline SPEC --candidate SPEC``).

For every duration metric: baseline and candidate median and p90 (type-7 quantiles), n, the change of the median
in % of the baseline median and its 95 % percentile-bootstrap interval (seeded: same data, same report). Rows
tied to a criterion carry a verdict: PASS / FAIL against the criterion's target, or "not enough data" when either
side has fewer than ``[criteria] min_n`` samples. Value rows (image size, cache hit rate, image-build
first-attempt success, stale-cache events) compare one number per side and judge the candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cidash.config import Config
from cidash.criteria import ci_image_hint, meets
from cidash.metrics import (
    STARTUP_PHASES,
    Dataset,
    Sample,
    ci_image_digest_counts,
    image_build_reliability,
    image_size_history,
    job_queue_times,
    jobs_restoring_a_cache,
    pipeline_durations,
    pipeline_queue_times,
    restore_outcome_counts,
    stale_cache_events,
    startup_sample,
    startup_samples,
    time_to_first_script,
)
from cidash.models import MB
from cidash.specs import Spec
from cidash.stats import (
    CI_METHOD,
    QUANTILE_METHOD,
    Summary,
    bootstrap_median_change,
    pct_change,
    rate,
    summary_of_sorted,
)

Verdict = Literal["PASS", "FAIL", "not enough data"]
NOT_ENOUGH: Verdict = "not enough data"


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One metric, baseline vs candidate.

    ``kind`` "distribution": ``baseline``/``candidate`` are summaries, ``change_pct`` the change of the median
    with ``ci_low_pct``/``ci_high_pct``. ``kind`` "value": ``baseline_value``/``candidate_value`` are single
    numbers (``change_pct`` their relative change, no interval). ``verdict`` is None when no criterion applies.
    """

    id: str
    title: str
    unit: str
    kind: Literal["distribution", "value"]
    n_baseline: int
    n_candidate: int
    baseline: Summary | None = None
    candidate: Summary | None = None
    baseline_value: float | None = None
    candidate_value: float | None = None
    change_pct: float | None = None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    criterion: str | None = None
    verdict: Verdict | None = None
    note: str = ""

    @property
    def change_pts(self) -> float | None:
        """For a metric that is itself a percentage (a rate), the change in percentage points."""
        if self.unit != "%" or self.baseline_value is None or self.candidate_value is None:
            return None
        return self.candidate_value - self.baseline_value

    def change_text(self, decimals: int = 1) -> str:
        """The change as people read it: points for rates (``+4.3 pts``), percent otherwise (``-34.0 %``)."""
        if self.change_pts is not None:
            return f"{self.change_pts:+.{decimals}f} pts"
        return "–" if self.change_pct is None else f"{self.change_pct:+.{decimals}f} %"

    def headline(self) -> str:
        """``start-up -34 % [-41 %, -27 %], n=212/198: PASS``."""
        parts = [self.title]
        if self.change_pct is not None or self.change_pts is not None:
            parts.append(self.change_text(0))
        if self.ci_low_pct is not None and self.ci_high_pct is not None:
            parts.append(f"[{self.ci_low_pct:+.0f} %, {self.ci_high_pct:+.0f} %]")
        text = " ".join(parts) + f", n={self.n_baseline}/{self.n_candidate}"
        return f"{text}: {self.verdict}" if self.verdict else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "kind": self.kind,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "baseline": self.baseline.as_dict() if self.baseline else None,
            "candidate": self.candidate.as_dict() if self.candidate else None,
            "baseline_value": self.baseline_value,
            "candidate_value": self.candidate_value,
            "change_pct": self.change_pct,
            "change_pts": self.change_pts,
            "ci_low_pct": self.ci_low_pct,
            "ci_high_pct": self.ci_high_pct,
            "criterion": self.criterion,
            "verdict": self.verdict,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    project: str
    baseline: Spec
    candidate: Spec
    baseline_pipelines: int
    candidate_pipelines: int
    rows: tuple[ComparisonRow, ...]
    min_n: int
    seed: int
    resamples: int
    confidence: float = 0.95

    @property
    def any_fail(self) -> bool:
        return any(r.verdict == "FAIL" for r in self.rows)

    def methods(self) -> str:
        return (
            f"Quantiles: {QUANTILE_METHOD}. Interval: {int(self.confidence * 100)} % {CI_METHOD} of the change in "
            f"median, {self.resamples} resamples, seed {self.seed}. Retried jobs and manual waits excluded. "
            f"MB = 10^6 bytes. Verdicts need n >= {self.min_n}: start-up on both sides, value rows "
            "(image size, image-build success, stale caches) on the candidate, which they judge alone."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "baseline": {
                "spec": self.baseline.text,
                "describe": self.baseline.describe(),
                "pipelines": self.baseline_pipelines,
            },
            "candidate": {
                "spec": self.candidate.text,
                "describe": self.candidate.describe(),
                "pipelines": self.candidate_pipelines,
            },
            "methods": {
                "quantiles": QUANTILE_METHOD,
                "interval": CI_METHOD,
                "confidence": self.confidence,
                "resamples": self.resamples,
                "seed": self.seed,
                "min_n": self.min_n,
            },
            "ok": not self.any_fail,
            "metrics": [r.as_dict() for r in self.rows],
        }


def _distribution(
    rid: str,
    title: str,
    base: Sample,
    cand: Sample,
    *,
    min_n: int,
    seed: int,
    resamples: int,
    criterion: str | None = None,
    judge: Callable[[float], bool] | None = None,
) -> ComparisonRow:
    sorted_base, sorted_cand = _sorted(base), _sorted(cand)  # sorted once: the bootstrap sorts them again
    # (sorted: no NaN, so their summaries need neither the NaN check nor a sort)
    summaries = [
        summary_of_sorted(s.values) if s is not given else s.summary()
        for s, given in ((sorted_base, base), (sorted_cand, cand))
    ]
    base, cand = sorted_base, sorted_cand
    ci = bootstrap_median_change(base.values, cand.values, seed=seed, resamples=resamples)
    enough = base.n >= min_n and cand.n >= min_n
    verdict: Verdict | None = None
    if criterion is not None:
        if not enough or ci.change_pct is None:
            verdict = NOT_ENOUGH
        else:
            verdict = "PASS" if judge is not None and judge(ci.change_pct) else "FAIL"
    return ComparisonRow(
        id=rid,
        title=title,
        unit="s",
        kind="distribution",
        n_baseline=base.n,
        n_candidate=cand.n,
        baseline=summaries[0],
        candidate=summaries[1],
        change_pct=ci.change_pct,
        ci_low_pct=ci.low_pct if enough else None,
        ci_high_pct=ci.high_pct if enough else None,
        criterion=criterion,
        verdict=verdict,
        note="" if enough else f"n < {min_n}",
    )


def _sorted(sample: Sample) -> Sample:
    """``sample`` with its values in ascending order, unless one is NaN (then as given: sorting a list with a NaN
    depends on its order). A summary and the bootstrap read only the sorted values, so they are the same; each
    sorts them again, which costs one pass over sorted values instead of a sort."""
    values = sample.values
    if any(map(math.isnan, values)):
        return sample
    return Sample(sample.name, tuple(sorted(values)))


def _startup_samples(ds: Dataset, *, include_retried: bool, exclude_jobs: tuple[str, ...]) -> dict[str | None, Sample]:
    """:func:`startup_sample` of ``ds`` for the start-up (key None) and each phase, its values in any order
    (:func:`startup_samples`: one pass, no start-up object per job), or in its order when one is NaN (see
    :func:`_sorted`)."""
    samples = startup_samples(ds, include_retried=include_retried, exclude_jobs=exclude_jobs)
    got: dict[str | None, list[float]] = {None: samples.seconds}
    got.update(samples.phases)
    if any(any(map(math.isnan, values)) for values in got.values()):
        return {
            phase: startup_sample(ds, include_retried=include_retried, phase=phase, exclude_jobs=exclude_jobs)
            for phase in (None, *STARTUP_PHASES)
        }
    return {phase: Sample("startup" if phase is None else f"startup_{phase}", tuple(v)) for phase, v in got.items()}


def _image_size(ds: Dataset, hint: str | None, repository: str | None) -> tuple[float | None, int, str]:
    """Size (MB) of the CI image most of the slice's jobs ran, with how many jobs ran it."""
    used = ci_image_digest_counts(ds, hint)
    if not used:
        return None, 0, ""
    digest, count = used.most_common(1)[0]
    sizes = [p for p in image_size_history(ds, repository) if p.digest == digest]
    if not sizes:
        return None, count, digest
    return sizes[-1].size_bytes / MB, count, digest


def _value_row(
    rid: str,
    title: str,
    unit: str,
    base: tuple[float | None, int],
    cand: tuple[float | None, int],
    *,
    criterion: str,
    passes: Callable[[float], bool],
    min_n: int,
    note: str = "",
) -> ComparisonRow:
    verdict: Verdict = NOT_ENOUGH
    if cand[0] is not None and cand[1] >= min_n:
        verdict = "PASS" if passes(cand[0]) else "FAIL"
    return ComparisonRow(
        id=rid,
        title=title,
        unit=unit,
        kind="value",
        n_baseline=base[1],
        n_candidate=cand[1],
        baseline_value=base[0],
        candidate_value=cand[0],
        change_pct=pct_change(base[0], cand[0]),
        criterion=criterion,
        verdict=verdict,
        note=note,
    )


def compare(
    ds: Dataset,
    baseline: Spec,
    candidate: Spec,
    config: Config,
    *,
    include_retried: bool = False,
    seed: int = 0,
    resamples: int = 2000,
) -> Comparison:
    """Compare the slices ``baseline`` and ``candidate`` name (see :mod:`cidash.specs`)."""
    b, c = ds.select(baseline), ds.select(candidate)
    crit = config.criteria
    min_n = crit.min_n
    kw: dict[str, Any] = {"min_n": min_n, "seed": seed, "resamples": resamples}
    skip = (config.image.build_job,)  # it runs in the docker image, not the CI image
    startup_b = _startup_samples(b, include_retried=include_retried, exclude_jobs=skip)
    startup_c = _startup_samples(c, include_retried=include_retried, exclude_jobs=skip)
    rows = [
        _distribution(
            "startup",
            "start-up",
            startup_b[None],
            startup_c[None],
            criterion="startup_improvement",
            judge=lambda change: meets("startup_improvement", -change, config),
            **kw,
        )
    ]
    for phase in STARTUP_PHASES:
        rows.append(
            _distribution(
                f"startup_{phase}",
                f"start-up: {phase}",
                startup_b[phase],
                startup_c[phase],
                **kw,
            )
        )

    def first_script(d: Dataset) -> Sample:
        return Sample(
            "first_script", tuple(f.seconds for f in time_to_first_script(d, include_retried=include_retried))
        )

    rows.append(_distribution("time_to_first_script", "time to first script", first_script(b), first_script(c), **kw))
    rows.append(
        _distribution("pipeline_duration", "pipeline duration", pipeline_durations(b), pipeline_durations(c), **kw)
    )
    rows.append(
        _distribution("pipeline_queue", "pipeline queue", pipeline_queue_times(b), pipeline_queue_times(c), **kw)
    )
    rows.append(
        _distribution(
            "job_queue",
            "job queue",
            job_queue_times(b, include_retried=include_retried),
            job_queue_times(c, include_retried=include_retried),
            **kw,
        )
    )
    hint = ci_image_hint(ds, config)
    size_b, size_c = _image_size(b, hint, config.image.repository), _image_size(c, hint, config.image.repository)
    rows.append(
        _value_row(
            "image_size",
            "CI image size",
            "MB",
            size_b[:2],
            size_c[:2],
            criterion="image_size",
            min_n=min_n,
            passes=lambda mb: meets("image_size", mb, config),
            note="n = jobs that ran the image",
        )
    )
    rel_b = image_build_reliability(b, config.image.build_job)
    rel_c = image_build_reliability(c, config.image.build_job)
    rows.append(
        _value_row(
            "image_build_first_attempt",
            "image-build first-attempt success",
            "%",
            (rel_b.first_attempt_rate, rel_b.n),
            (rel_c.first_attempt_rate, rel_c.n),
            criterion="image_build_reliability",
            min_n=min_n,
            passes=lambda pct: meets("image_build_reliability", pct, config),
            note="n = pipelines with the build job",
        )
    )

    def hits(d: Dataset) -> tuple[float | None, int]:
        totals = restore_outcome_counts(d, include_retried=include_retried)  # restore_outcome_totals' counts
        known = sum(totals.get(k, 0) for k in ("hit", "miss", "failed"))
        return rate(totals.get("hit", 0), known), known

    hb, hc = hits(b), hits(c)
    rows.append(
        ComparisonRow(
            id="cache_hit_rate",
            title="cache hit rate",
            unit="%",
            kind="value",
            n_baseline=hb[1],
            n_candidate=hc[1],
            baseline_value=hb[0],
            candidate_value=hc[0],
            change_pct=pct_change(hb[0], hc[0]),
            note="n = restore attempts with a known outcome",
        )
    )

    def stale(d: Dataset) -> tuple[float | None, int]:
        restoring = jobs_restoring_a_cache(d)
        if restoring == 0:
            return None, 0
        return float(len(stale_cache_events(d, config.cache_key.files, include_retried=include_retried))), restoring

    rows.append(
        _value_row(
            "stale_caches",
            "stale-cache events",
            "events",
            stale(b),
            stale(c),
            criterion="stale_caches",
            min_n=min_n,
            passes=lambda v: meets("stale_caches", v, config),
            note="n = jobs that restored a cache",
        )
    )
    return Comparison(
        project=ds.project_path,
        baseline=baseline,
        candidate=candidate,
        baseline_pipelines=len(b.pipelines),
        candidate_pipelines=len(c.pipelines),
        rows=tuple(rows),
        min_n=min_n,
        seed=seed,
        resamples=resamples,
    )
