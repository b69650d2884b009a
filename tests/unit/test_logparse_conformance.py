"""Conformance corpus: one log per runner generation and format, each with a golden JSON written by hand from what
the log says (tests/data/logs/conformance/*.json, never produced by running the parser), compared field by field.

- runner-10.0-cr-stripped: runner 10.0 saved from a browser (every \\r a newline); no prepare_executor,
  build_script, ``upload_artifacts``, FATAL miss, "ID=... for build container".
- runner-11: runner 11.x, original bytes, image found locally (old wording), hit, archive up to date.
- runner-13-docker-machine: ``Preparing the "docker+machine" executor``, FATAL miss, then a fallback key's hit
  printed like the main key.
- runner-14-fatal-miss: two caches: a FATAL miss, then ``FATAL: zip: checksum error`` (a failure); the second key
  is archived, so it is no fallback.
- runner-16-autoscaler: ``docker-autoscaler``, a pull "for platform linux/arm64", cache:fallback_keys, empty keys.
- runner-18-timestamps: per-line timestamps, ``+`` continuations (one splits a cache key), a user section.
- windows-pwsh: CRLF, ``Preparing the "shell" executor`` + ``Using Shell (pwsh) executor``, missing local cache.
- kubernetes-17: kubernetes (the pull is never reported), archive skipped by policy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cidash.logparse import TraceParser, facts_to_dict, parse_bytes
from paths import DATA

CORPUS = DATA / "logs" / "conformance"
NAMES = sorted(p.stem for p in CORPUS.glob("*.log"))
FIELDS = ["runner_version", "executor", "truncated", "sections", "startup_seconds", "image", "cache", "restores"]


def expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / f"{name}.json").read_text())
    return data


def actual(data: bytes) -> dict[str, Any]:
    return facts_to_dict(parse_bytes(data))


def test_the_corpus_covers_every_generation() -> None:
    assert NAMES == [
        "kubernetes-17",
        "runner-10.0-cr-stripped",
        "runner-11",
        "runner-13-docker-machine",
        "runner-14-fatal-miss",
        "runner-16-autoscaler",
        "runner-18-timestamps",
        "windows-pwsh",
    ]
    for name in NAMES:
        assert (CORPUS / f"{name}.json").is_file(), name


def _same_number(got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is want
    return bool(got == pytest.approx(want, abs=1e-6))


def compare(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == FIELDS
    assert list(want) == FIELDS
    for field in ("runner_version", "executor", "truncated", "image", "cache", "restores"):
        assert got[field] == want[field], field
    assert _same_number(got["startup_seconds"], want["startup_seconds"]), (got["startup_seconds"], "startup")
    assert [s["name"] for s in got["sections"]] == [s["name"] for s in want["sections"]]
    for g, w in zip(got["sections"], want["sections"], strict=True):
        for key in ("start", "end", "duration"):
            assert _same_number(g[key], w[key]), (g["name"], key, g[key], w[key])


@pytest.mark.parametrize("name", NAMES)
def test_log_gives_its_golden_facts(name: str) -> None:
    compare(actual((CORPUS / f"{name}.log").read_bytes()), expected(name))


@pytest.mark.parametrize("name", NAMES)
def test_cr_stripped_copy_gives_the_same_facts(name: str) -> None:
    # a browser save or copy-paste of any of them must parse exactly as the original does
    compare(actual((CORPUS / f"{name}.log").read_bytes().replace(b"\r", b"\n")), expected(name))


@pytest.mark.parametrize("name", NAMES)
def test_byte_at_a_time(name: str) -> None:
    data = (CORPUS / f"{name}.log").read_bytes()
    parser = TraceParser()
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
    compare(facts_to_dict(parser.finish()), expected(name))


def test_the_comparison_can_fail() -> None:
    want = expected("runner-11")
    got = actual((CORPUS / "runner-11.log").read_bytes())
    got["sections"][2]["duration"] += 0.5
    with pytest.raises(AssertionError):
        compare(got, want)
