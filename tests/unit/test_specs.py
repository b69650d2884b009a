"""SPEC parsing and selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidash.errors import UsageError
from cidash.specs import parse_spec
from metrics_factories import NEW, OLD, T0, Builder, facts, pipeline, tag


def test_date_range_is_inclusive_of_both_days() -> None:
    s = parse_spec("2026-11-01..2026-11-14")
    assert s.kind == "dates"
    assert s.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert s.end == datetime(2026, 11, 15, tzinfo=UTC)
    assert s.contains_time(datetime(2026, 11, 14, 23, 59, tzinfo=UTC))
    assert not s.contains_time(datetime(2026, 11, 15, tzinfo=UTC))
    assert s.describe() == "2026-11-01..2026-11-14"


def test_open_ended_and_single_day() -> None:
    assert parse_spec("2026-11-01..").end is None
    assert parse_spec("..2026-11-01").start is None
    one = parse_spec(" 2026-11-03 ")
    assert one.end is not None and one.start is not None and one.end - one.start == timedelta(days=1)


@pytest.mark.parametrize("text", ["#100..#200", "#100..200", "pipelines:100..200"])
def test_pipeline_ranges(text: str) -> None:
    s = parse_spec(text)
    assert (s.kind, s.first_id, s.last_id) == ("pipelines", 100, 200)


def test_ref_and_images() -> None:
    assert parse_spec("ref:main").ref == "main"
    d = parse_spec("image:SHA256:" + "AB" * 32)
    assert d.kind == "image_digest" and d.digest == "sha256:" + "ab" * 32
    assert parse_spec("image:sha256:abcdef1").kind == "image_digest"
    t = parse_spec("image:alpine-3.20")
    assert t.kind == "image_tag" and t.tag == "alpine-3.20"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "..",
        "2026-13-01..2026-13-02",
        "2026-11-14..2026-11-01",
        "#200..#100",
        "ref:",
        "image:",
        "image:sha256:xyz",
        "image:bad tag",
        "yesterday",
        "pipelines:1..",
    ],
)
def test_bad_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(text)
    assert "\n" not in info.value.one_line()


@given(st.text(max_size=30))
def test_parse_never_crashes(text: str) -> None:
    try:
        spec = parse_spec(text)
    except UsageError as exc:
        assert "SPEC" in exc.one_line()
    else:
        assert spec.text == text.strip() and spec.describe()


def test_select_by_each_kind() -> None:
    b = Builder()
    p1 = b.add_pipeline(pipeline(101, T0))
    p2 = b.add_pipeline(pipeline(102, T0 + timedelta(days=2), ref="feature"))
    p3 = b.add_pipeline(pipeline(103, T0 + timedelta(days=4)))
    b.add_job(p1, "test", facts(50.0, digest=OLD))
    b.add_job(p2, "test", facts(40.0, digest=OLD))
    b.add_job(p3, "test", facts(20.0, digest=NEW))
    b.tags.append(tag("alpine", NEW, 215_000_000, T0))
    ds = b.dataset()
    assert [p.id for p in ds.select(parse_spec("2026-11-01..2026-11-03")).pipelines] == [101, 102]
    assert [p.id for p in ds.select(parse_spec("#102..#103")).pipelines] == [102, 103]
    assert [p.id for p in ds.select(parse_spec("ref:main")).pipelines] == [101, 103]
    assert [p.id for p in ds.select(parse_spec(f"image:{OLD[:20]}")).pipelines] == [101, 102]
    assert [p.id for p in ds.select(parse_spec("image:alpine")).pipelines] == [103]
    assert [j.pipeline_id for j in ds.select(parse_spec("image:latest")).jobs] == [101, 102, 103]


def test_combined_specs_intersect() -> None:
    s = parse_spec("2026-11-02.., ref:main")
    assert s.kind == "all_of" and [p.kind for p in s.parts] == ["dates", "ref"]
    assert s.describe() == "from 2026-11-02, ref main"
    assert parse_spec("..2026-11-01").describe() == "until 2026-11-01"
    b = Builder()
    b.add_pipeline(pipeline(101, T0))
    b.add_pipeline(pipeline(102, T0 + timedelta(days=2), ref="feature"))
    b.add_pipeline(pipeline(103, T0 + timedelta(days=4)))
    assert [p.id for p in b.dataset().select(s).pipelines] == [103]
    with pytest.raises(UsageError):
        parse_spec("ref:main,")


def test_commit_ranges() -> None:
    s = parse_spec("ABC1234..def5678")
    assert (s.kind, s.first_sha, s.last_sha) == ("commits", "abc1234", "def5678")
    assert parse_spec("commits:abc1234..def5678").kind == "commits"
    assert s.describe() == "commits abc1234..def5678"
    b = Builder()
    ps = [b.add_pipeline(pipeline(100 + i, T0 + timedelta(hours=i), sha=f"{i:x}" * 40)) for i in range(1, 6)]
    ds = b.dataset()
    picked = ds.select(parse_spec(f"{ps[1].sha[:7]}..{ps[3].sha[:9]}"))
    assert [p.id for p in picked.pipelines] == [102, 103, 104]
    assert ds.select(parse_spec("0000000..1111111")).pipelines == ()
