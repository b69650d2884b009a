"""Statistics: type-7 quantiles, summaries and the seeded bootstrap interval."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidash.stats import bootstrap_median_change, median, pct_change, quantile, rate, summarize

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_quantile_type7_hand_computed() -> None:
    data = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert quantile(data, 0.5) == 3.0
    # h = 4 * 0.9 = 3.6 -> 4 + 0.6 * (10 - 4)
    assert quantile(data, 0.9) == pytest.approx(7.6)
    assert quantile(data, 0.0) == 1.0 and quantile(data, 1.0) == 10.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert quantile([], 0.5) is None
    with pytest.raises(ValueError):
        quantile(data, 1.5)


def test_summary() -> None:
    s = summarize([10.0, 20.0, 30.0, float("nan")])
    assert s.n == 3 and s.median == 20.0 and s.mean == 20.0 and s.minimum == 10.0 and s.maximum == 30.0
    assert s.p90 == pytest.approx(28.0)
    assert summarize([]).n == 0 and summarize([]).median is None


def test_pct_change_and_rate() -> None:
    assert pct_change(100.0, 66.0) == pytest.approx(-34.0)
    assert pct_change(0.0, 5.0) is None and pct_change(None, 5.0) is None
    assert rate(99, 100) == 99.0 and rate(0, 0) is None


@given(st.lists(finite, min_size=1, max_size=60), st.floats(min_value=0, max_value=1))
def test_quantile_matches_statistics_inclusive(values: list[float], q: float) -> None:
    # statistics.quantiles(method="inclusive") is the same type-7 definition; compare at its cut points.
    if len(values) >= 2:
        cuts = statistics.quantiles(values, n=10, method="inclusive")
        for i, cut in enumerate(cuts, start=1):
            assert quantile(values, i / 10) == pytest.approx(cut, rel=1e-9, abs=1e-6)
    result = quantile(values, q)
    assert result is not None and min(values) <= result <= max(values)


@given(st.lists(finite, min_size=1, max_size=60), st.floats(min_value=-1e5, max_value=1e5))
def test_shifting_data_shifts_the_median(values: list[float], shift: float) -> None:
    m = median(values)
    shifted = median([v + shift for v in values])
    assert m is not None and shifted is not None
    assert shifted == pytest.approx(m + shift, rel=1e-9, abs=1e-6)


@given(st.lists(st.floats(min_value=0.1, max_value=1e4), min_size=1, max_size=40), st.floats(0.1, 10))
def test_scaling_scales_the_median_and_the_change_is_scale_free(values: list[float], factor: float) -> None:
    m = median(values)
    assert m is not None
    assert median([v * factor for v in values]) == pytest.approx(m * factor, rel=1e-9)
    assert pct_change(m, m * factor) == pytest.approx((factor - 1) * 100, rel=1e-6, abs=1e-6)


def test_bootstrap_is_seeded_and_reproducible() -> None:
    rng = random.Random(1)
    base = [rng.gauss(100, 10) for _ in range(50)]
    cand = [rng.gauss(70, 10) for _ in range(50)]
    a = bootstrap_median_change(base, cand, seed=7, resamples=500)
    b = bootstrap_median_change(base, cand, seed=7, resamples=500)
    c = bootstrap_median_change(base, cand, seed=8, resamples=500)
    assert a == b
    assert (a.low_pct, a.high_pct) != (c.low_pct, c.high_pct)
    assert a.available and a.low_pct is not None and a.high_pct is not None and a.change_pct is not None
    assert a.low_pct <= a.change_pct <= a.high_pct
    assert a.n_baseline == 50 and a.n_candidate == 50


def test_bootstrap_without_data() -> None:
    assert not bootstrap_median_change([], [1.0]).available
    assert not bootstrap_median_change([0.0, 0.0], [1.0]).available
    with pytest.raises(ValueError):
        bootstrap_median_change([1.0], [1.0], confidence=1.0)


def test_bootstrap_interval_covers_the_true_change_at_about_the_nominal_rate() -> None:
    """Synthetic samples whose true change in median is known: the 95 % interval should cover it ~95 % of the time.

    Fixed seeds, 360 trials pooled: a calibration check, not a search (drawn seeds made it flaky: one seed in a
    few hundred covers 120 of 120, past the upper bound)."""
    trials, covered = 0, 0
    true_change = (75.0 - 100.0) / 100.0 * 100.0  # normal distributions: median = mean
    for master_seed in range(3):
        rng = random.Random(master_seed)
        for t in range(120):
            base = [rng.gauss(100.0, 15.0) for _ in range(40)]
            cand = [rng.gauss(75.0, 15.0) for _ in range(40)]
            ci = bootstrap_median_change(base, cand, resamples=300, seed=t)
            assert ci.low_pct is not None and ci.high_pct is not None
            covered += ci.low_pct <= true_change <= ci.high_pct
            trials += 1
    coverage = covered / trials
    # Binomial sd at p=0.95, n=360 is 0.011; the percentile bootstrap of a median runs a little narrow.
    assert 0.88 <= coverage <= 0.99, coverage


def test_resampled_median_matches_brute_force_distribution() -> None:
    """The O(1) draw has the distribution of the median of a real resample (compared on a small sample)."""
    from collections import Counter

    from cidash.stats import resampled_median

    for data in ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3.0, 3.0, 7.0, 10.0]):
        trials = 20000
        fast_rng, slow_rng = random.Random(1), random.Random(2)
        fast = Counter(resampled_median(data, fast_rng) for _ in range(trials))
        slow = Counter(median(slow_rng.choices(data, k=len(data))) for _ in range(trials))
        for value in set(fast) | set(slow):
            # Each probability within 1.5 points: far tighter than the gap a wrong order statistic would give.
            assert abs(fast[value] - slow[value]) / trials < 0.015, (data, value, fast[value], slow[value])
