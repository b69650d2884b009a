"""cidash.remote.wire: what cidash accepts from GitLab (docs/security.md), and that a bad number never counts."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidash.config import Config
from cidash.criteria import evaluate
from cidash.export import EXPORT_FORMATS, ExportInput, render_export
from cidash.metrics import image_size_history, pipeline_durations
from cidash.models import MAX_DURATION_SECONDS, MAX_IMAGE_BYTES
from cidash.remote.policy import parse_json
from cidash.remote.wire import (
    RejectedRecord,
    WireLog,
    check_seconds,
    check_size,
    check_time,
    image_tag_from_json,
    job_from_json,
    pipeline_from_json,
    project_from_json,
)
from cidash.sim.api.base import _dumps
from cidash.sim.hostile_numbers import JOB_CORRUPTIONS, PIPELINE_CORRUPTIONS, SIZE_CORRUPTIONS, HostileNumbers
from metrics_factories import T0, migration_story

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def job_json(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 9,
        "name": "build",
        "stage": "b",
        "status": "success",
        "created_at": "2026-11-01T10:00:00.000Z",
        "started_at": "2026-11-01T10:00:05.000Z",
        "finished_at": "2026-11-01T10:01:05.000Z",
        "duration": 60.0,
        "queued_duration": 5.0,
        "pipeline": {"id": 5, "ref": "main", "sha": "abc"},
        "runner": {"id": 3, "description": "docker-1"},
        "allow_failure": False,
    }
    return {**base, **over}


def pipeline_json(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 5,
        "iid": 2,
        "ref": "main",
        "sha": "abc",
        "status": "success",
        "created_at": "2026-11-01T10:00:00.000Z",
        "updated_at": "2026-11-01T10:05:00.000Z",
        "duration": 300,
        "queued_duration": 1.5,
    }
    return {**base, **over}


def test_good_records_convert_unchanged() -> None:
    log = WireLog(now=NOW)
    job = job_from_json(1, job_json(), log)
    assert (job.id, job.pipeline_id, job.duration, job.queued_duration, job.runner) == (9, 5, 60.0, 5.0, "docker-1")
    pipeline = pipeline_from_json(1, pipeline_json(), log)
    assert (pipeline.iid, pipeline.duration, pipeline.updated_at) == (
        2,
        300.0,
        datetime(2026, 11, 1, 10, 5, tzinfo=UTC),
    )
    project = project_from_json({"id": 42, "path_with_namespace": "platform/app", "web_url": "u"}, log)
    assert project.path == "platform/app"
    tag = image_tag_from_json(42, "platform/app/ci", "alpine-1", {"name": "alpine-1", "total_size": 214_600_000}, log)
    assert tag.total_size == 214_600_000
    assert log.issues == [] and log.rejected == []


BAD_NUMBERS: list[tuple[Any, str]] = [
    ("12.5", "not a number"),
    (1e308, "longer than a year"),
    (-5.0, "negative"),
    (-0.5, "negative"),
    (math.nan, "not a finite number"),
    (math.inf, "not a finite number"),
    (10**40, "longer than a year"),
    (10**400, "out of range"),
    (True, "not a number"),
    ([1], "not a number"),
    ({"s": 1}, "not a number"),
]


@pytest.mark.parametrize(("value", "why"), BAD_NUMBERS, ids=[repr(v)[:20] for v, _ in BAD_NUMBERS])
def test_a_bad_duration_is_an_unknown_field_with_a_warning_naming_the_job(value: Any, why: str) -> None:
    log = WireLog(now=NOW)
    job = job_from_json(1, job_json(duration=value), log)
    assert job.duration is None and job.id == 9 and job.queued_duration == 5.0
    assert len(log.issues) == 1
    assert log.issues[0].startswith("job 9 'build': duration ") and why in log.issues[0], log.issues[0]


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [
        (214_600_000, 214_600_000, False),
        (214_600_000.0, 214_600_000, False),  # an integral float is a size
        (None, None, False),
        (0, None, False),  # GitLab's "not known" for a multi-arch index
        (-0.0, None, False),
        (-1, None, True),
        (-214_600_000, None, True),
        (10**40, None, True),
        (MAX_IMAGE_BYTES + 1, None, True),
        (1e308, None, True),
        (math.nan, None, True),
        ("215000000", None, True),
        (1.5, None, True),
    ],
)
def test_registry_sizes(value: Any, expected: int | None, warned: bool) -> None:
    log = WireLog(now=NOW)
    tag = image_tag_from_json(42, "platform/app/ci", "alpine-1", {"name": "alpine-1", "total_size": value}, log)
    assert tag.total_size == expected
    assert bool(log.issues) == warned
    if warned:
        assert log.issues[0].startswith("image tag platform/app/ci:'alpine-1': total_size ")


def test_field_level_rejections_keep_the_record() -> None:
    log = WireLog(now=NOW)
    job = job_from_json(
        1,
        job_json(started_at="yesterday", runner="shared-runner-7", allow_failure="false", name="lint", stage=["x"]),
        log,
    )
    assert job.started_at is None and job.runner is None and job.allow_failure is False and job.stage == ""
    assert len(log.issues) == 4 and all(i.startswith("job 9 'lint': ") for i in log.issues)
    assert any("allow_failure 'false' is not true or false; kept as false" in i for i in log.issues)
    pipeline = pipeline_from_json(1, pipeline_json(iid="7", updated_at="2999-01-01T00:00:00Z"), log)
    assert pipeline.iid is None
    assert pipeline.updated_at == pipeline.created_at  # a future updated_at would stall the sync's cursor
    assert any("is in the future" in i for i in log.issues)


@pytest.mark.parametrize(
    ("record", "reason", "record_id"),
    [
        (job_json(id="abc"), "not an integer id", None),
        (job_json(id=None), "not an integer id", None),
        (job_json(id=0), "out of range", None),
        (job_json(id=2**63), "out of range", None),
        (job_json(id=True), "not an integer id", None),
        (job_json(created_at="1970-01-01T00:00:00Z"), "before 2000", 9),
        (job_json(created_at="2026-13-45"), "not a timestamp", 9),
        (job_json(created_at=1764000000), "not a timestamp", 9),
        (job_json(created_at="2999-01-01T00:00:00Z"), "in the future", 9),
        (job_json(pipeline=None), "no usable pipeline id", 9),
        (job_json(pipeline="5"), "no usable pipeline id", 9),
        (None, "is not a JSON object", None),
        ("a job", "is not a JSON object", None),
        ([job_json()], "is not a JSON object", None),
    ],
)
def test_records_without_identity_or_required_fields_are_rejected(
    record: Any, reason: str, record_id: int | None
) -> None:
    with pytest.raises(RejectedRecord) as info:
        job_from_json(1, record, WireLog(now=NOW))
    assert reason in info.value.reason and info.value.record_id == record_id and info.value.kind == "job"
    assert info.value.title == "Rejected record"
    assert ("job 9" in info.value.one_line()) == (record_id == 9)


def test_a_pipeline_without_a_usable_created_at_is_rejected() -> None:
    with pytest.raises(RejectedRecord, match=r"pipeline 5 rejected: created_at 'not a time' is not a timestamp"):
        pipeline_from_json(1, pipeline_json(created_at="not a time"))


def test_warnings_never_carry_control_characters() -> None:
    log = WireLog(now=NOW)
    job_from_json(1, job_json(name="evil\x1b[31m\u202ename", duration="\x1b]0;pwned\x07"), log)
    assert log.issues and all(c.isprintable() for c in log.issues[0]), log.issues


def test_time_bounds() -> None:
    assert check_time("2026-11-30T23:00:00+02:00", NOW)[0] == datetime(2026, 11, 30, 21, tzinfo=UTC)
    assert check_time(None, NOW) == (None, None)
    assert check_time("2026-12-01T23:00:00Z", NOW)[0] is not None  # clock skew within a day
    assert check_time("2026-12-03T00:00:00Z", NOW)[0] is None
    assert check_time("9" * 5000, NOW)[0] is None
    assert check_time("2026-12-03T00:00:00Z", None)[0] is not None  # without a "now": only the fixed bounds


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**50), max_value=10**50),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    st.sampled_from(["id", "duration", "queued_duration", "created_at", "started_at", "runner", "pipeline", "name"]),
)
def test_any_value_in_any_field_gives_a_sane_job_or_a_rejection(value: Any, key: str) -> None:
    try:
        job = job_from_json(1, job_json(**{key: value}), WireLog(now=NOW))
    except RejectedRecord:
        return
    for seconds in (job.duration, job.queued_duration):
        assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_SECONDS)
    assert 1 <= job.id < 2**63 and 1 <= job.pipeline_id < 2**63
    assert isinstance(job.name, str) and isinstance(job.stage, str)
    for t in (job.created_at, job.started_at, job.finished_at):
        assert t is None or t.tzinfo is not None


@given(st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=12), st.booleans()))
def test_sizes_are_none_or_plausible(value: Any) -> None:
    size, _ = check_size(value)
    assert size is None or 0 < size <= MAX_IMAGE_BYTES
    seconds, _ = check_seconds(value)
    assert seconds is None or 0 <= seconds <= MAX_DURATION_SECONDS


def _served(record: dict[str, Any]) -> Any:
    """``record`` as the simulator writes it and the client reads it (``parse_json``: a 5,000-digit integer too)."""
    return parse_json(_dumps(record))[0]


def test_every_hostile_value_the_simulator_serves_is_rejected() -> None:
    """The simulator's hostile-numbers table and the wire agree: no corruption survives as a value."""
    for key, value, whole in JOB_CORRUPTIONS:
        record = _served({**job_json(), key: value})
        log = WireLog(now=NOW)
        if whole:
            with pytest.raises(RejectedRecord):
                job_from_json(1, record, log)
        else:
            job_from_json(1, record, log)
            assert log.issues, (key, value)
    for key, value, whole in PIPELINE_CORRUPTIONS:
        record = _served(pipeline_json(**{key: value}))
        log = WireLog(now=NOW)
        if whole:
            with pytest.raises(RejectedRecord):
                pipeline_from_json(1, record, log)
        else:
            pipeline_from_json(1, record, log)
            assert log.issues, (key, value)
    for size in SIZE_CORRUPTIONS:
        assert check_size(json.loads(json.dumps(size)))[0] is None
    # The simulator hands every variant out in turn, by id.
    hostile = HostileNumbers(every=1)
    served = {hostile.corruption("job", i) for i in range(len(JOB_CORRUPTIONS))}
    assert served == set(JOB_CORRUPTIONS)
    assert hostile.apply("job", job_json(id=3)) != job_json(id=3)
    assert HostileNumbers(every=0).apply("job", job_json(id=3)) == job_json(id=3)


# -- a store written before the wire checked (or by hand): metrics, criteria and exports never use a bad number --


def test_image_size_never_passes_on_a_negative_or_absurd_size() -> None:
    ds = migration_story().dataset()
    good = evaluate(ds, Config(), T0 + timedelta(days=20))
    assert next(c for c in good.criteria if c.id == "image_size").status in ("pass", "fail")
    for bad in (-1, -214_600_000, 10**40):
        tags = [dataclasses.replace(t, total_size=bad) for t in ds.image_tags]
        broken = dataclasses.replace(ds, image_tags=tags)
        assert image_size_history(broken) == []
        result = next(c for c in evaluate(broken, Config(), T0 + timedelta(days=20)).criteria if c.id == "image_size")
        assert result.status == "no_data", (bad, result)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_format_survives_1e308_and_nan_durations(fmt: str) -> None:
    ds = migration_story().dataset()
    pipelines = list(ds.pipelines)
    for i, value in enumerate((1e308, 1e308, math.nan, -5.0, math.inf)):
        pipelines[i] = dataclasses.replace(pipelines[i], duration=value, queued_duration=value)
    broken = dataclasses.replace(ds, pipelines=pipelines)
    assert all(math.isfinite(v) and v >= 0 for v in pipeline_durations(broken).values)
    report = evaluate(broken, Config(), T0 + timedelta(days=20))
    inp = ExportInput(
        ds=broken,
        report=report,
        generated_at=T0 + timedelta(days=20),
        since=None,
        build_job="build-ci-image",
        critical_files=("go.sum",),
    )
    text = render_export(inp, fmt)
    assert "1e+308" not in text and "Infinity" not in text and "NaN" not in text
    if fmt == "json":
        json.loads(text)


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**50), max_value=10**50),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.lists(st.integers(), max_size=2),
    ),
    st.sampled_from(["id", "iid", "duration", "queued_duration", "created_at", "updated_at", "ref", "project_id"]),
)
def test_any_value_in_any_field_gives_a_sane_pipeline_or_a_rejection(value: Any, key: str) -> None:
    try:
        pipeline = pipeline_from_json(1, pipeline_json(**{key: value}), WireLog(now=NOW))
    except RejectedRecord as exc:
        assert exc.kind == "pipeline" and key in ("id", "created_at")
        return
    for seconds in (pipeline.duration, pipeline.queued_duration):
        assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_SECONDS)
    assert pipeline.iid is None or 1 <= pipeline.iid < 2**63
    assert 1 <= pipeline.project_id < 2**63 and isinstance(pipeline.ref, str)
    assert datetime(2000, 1, 1, tzinfo=UTC) <= pipeline.updated_at <= NOW + timedelta(days=1)


def test_projects_and_tags_that_cannot_be_used() -> None:
    with pytest.raises(RejectedRecord, match="project without a usable id"):
        project_from_json({"id": "42", "path_with_namespace": "platform/app"})
    assert project_from_json({"id": 42, "path_with_namespace": 7}, WireLog()).path == "42"
    with pytest.raises(RejectedRecord, match=r"image tag platform/app/ci:'latest' rejected"):
        image_tag_from_json(42, "platform/app/ci", "latest", ["not", "an", "object"])
