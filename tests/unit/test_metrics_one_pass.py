"""The faster paths of the criteria and the export (issue #15, "Core at scale"), each held equal to the
straightforward computation it replaces, on random data (NaN, zeros of both signs and ties included)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cidash.metrics import StartupRecord, startup_seconds
from cidash.stats import bootstrap_median_change, median, sorted_unless_nan
from metrics_factories import T0
from test_metrics_props import RUN, _runs_dataset

#: Start-ups whose sorted order can depend on their order: NaN, zeros of both signs, ties.
ODD_SECONDS = st.one_of(
    st.none(), st.sampled_from([0.0, -0.0, float("nan"), 3.5, 3.5]), st.floats(min_value=0, max_value=600)
)
ODD_RUN = st.one_of(
    st.tuples(RUN, ODD_SECONDS),
    # a counted job (ran, not retried) of a start-up that sorts oddly: most runs of RUN are not counted
    st.tuples(
        st.integers(0, 40).map(lambda m: (m, "success", False, "test", None, None, "docker:27", True)), ODD_SECONDS
    ),
)
RECORD = st.tuples(st.integers(0, 40), st.sampled_from(["test", "build-ci-image"]), ODD_SECONDS, st.booleans())


def _odd_dataset(runs: list[Any], records: list[Any]) -> Any:
    ds = _runs_dataset([(*run[:4], seconds, *run[5:]) for run, seconds in runs])
    made = tuple(
        StartupRecord(9, 1000 + i, name, T0 + timedelta(minutes=start), seconds, retried)
        for i, (start, name, seconds, retried) in enumerate(records)
        if seconds is not None
    )
    return replace(ds, startup_records=made)


@settings(max_examples=300, deadline=None)
@given(st.lists(ODD_RUN, max_size=14), st.lists(RECORD, max_size=4), st.booleans())
def test_startup_values_in_any_order_sort_as_those_oldest_first(
    runs: list[Any], records: list[Any], include_retried: bool
) -> None:
    """startup_seconds(ordered=False) skips the sort by start: its values sorted (sorted_unless_nan) are those
    oldest first sorted, zero signs and NaN included, so the start-up criterion's medians and bootstrap are the
    same; and sorting once before them changes neither."""
    ds = _odd_dataset(runs, records)
    for excluded in ((), ("build-ci-image",)):
        oldest_first = startup_seconds(ds, include_retried=include_retried, exclude_jobs=excluded)
        any_order = startup_seconds(ds, include_retried=include_retried, exclude_jobs=excluded, ordered=False)
        assert repr(sorted_unless_nan(any_order)) == repr(sorted_unless_nan(oldest_first))
        once = sorted_unless_nan(any_order)
        assert repr(median(once)) == repr(median(oldest_first))
        if oldest_first:
            half = oldest_first[::2] or oldest_first
            expected = bootstrap_median_change(half, oldest_first, resamples=30, seed=1)
            got = bootstrap_median_change(sorted_unless_nan(half), once, resamples=30, seed=1)
            assert repr(got) == repr(expected)
