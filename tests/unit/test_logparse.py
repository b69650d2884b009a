"""Unit tests for the job-log parser: each log format variant on its own, then the fixture logs."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from cidash.logparse import (
    PHASES,
    SECTION_PHASES,
    Restore,
    TraceParser,
    facts_from_dict,
    facts_to_dict,
    parse_bytes,
    parse_stream,
    phase_durations,
    phase_of,
    restores,
)
from cidash.models import CacheEvent, ImageRef, Section, TraceFacts
from paths import DATA

LOGS = DATA / "logs"
S = "\r\x1b[0K"  # what follows every section marker


def log(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def start(ts: int, name: str, opts: str = "") -> str:
    return f"section_start:{ts}:{name}{opts}{S}"


def end(ts: int, name: str) -> str:
    return f"section_end:{ts}:{name}{S}"


def restore(*lines: str) -> bytes:
    return log(start(10, "restore_cache"), *lines, end(12, "restore_cache"))


def archive(*lines: str) -> bytes:
    return log(start(20, "archive_cache"), *lines, end(22, "archive_cache"))


# ---- section markers -----------------------------------------------------------------------------------------


def test_plain_sections_and_durations() -> None:
    facts = parse_bytes(log(start(100, "get_sources"), "Fetching", end(103, "get_sources")))
    assert facts.sections == (Section("get_sources", 100.0, 103.0, 3.0),)
    assert facts.truncated is False


@pytest.mark.parametrize("opts", ["[collapsed=true]", "[hide_duration=true,collapsed=true]"])
def test_section_options_are_not_part_of_the_name(opts: str) -> None:
    facts = parse_bytes(log(start(5, "my_tests", opts) + "$ make test", end(9, "my_tests")))
    assert facts.sections == (Section("my_tests", 5.0, 9.0, 4.0),)


def test_markers_glued_to_each_other_and_to_ansi() -> None:
    data = log(
        "\x1b[0K" + start(1, "prepare_script") + "\x1b[0K\x1b[36;1mPreparing\x1b[0;m",
        end(2, "prepare_script") + "\x1b[0K" + start(2, "get_sources") + "\x1b[32;1mFetching\x1b[0;m",
        "\x1b[0;m" + end(4, "get_sources") + "\x1b[0K" + start(4, "step_script") + end(7, "step_script"),
    )
    facts = parse_bytes(data)
    assert [(s.name, s.start, s.end) for s in facts.sections] == [
        ("prepare_script", 1.0, 2.0),
        ("get_sources", 2.0, 4.0),
        ("step_script", 4.0, 7.0),
    ]
    assert facts.startup_seconds == 3.0


def test_marker_needs_its_terminator() -> None:
    # in a log whose runner markers end in \r, a line that merely prints a marker is script output
    data = b"section_start:2:real\r\x1b[0K\necho section_start:1:fake done\nsection_start:1:echoed\n"
    assert [s.name for s in parse_bytes(data).sections] == ["real"]
    # and mid-line look-alikes never count, whatever the log
    data = b"echo section_start:1:fake done\n$ echo x section_start:1:fake\nsection_start:2:real\n"
    assert [s.name for s in parse_bytes(data).sections] == ["real"]


def test_nested_and_repeated_sections() -> None:
    data = log(
        start(10, "step_script"),
        start(11, "build"),
        end(12, "build"),
        start(12, "build"),
        end(15, "build"),
        end(16, "step_script"),
    )
    facts = parse_bytes(data)
    assert [(s.name, s.start, s.end) for s in facts.sections] == [
        ("step_script", 10.0, 16.0),
        ("build", 11.0, 12.0),
        ("build", 12.0, 15.0),
    ]


def test_end_without_start_is_ignored() -> None:
    facts = parse_bytes(log(end(5, "ghost"), start(6, "a"), end(7, "a")))
    assert facts.sections == (Section("a", 6.0, 7.0, 1.0),)


def test_unclosed_section_means_truncated() -> None:
    facts = parse_bytes(log(start(1, "get_sources"), end(2, "get_sources"), start(2, "step_script"), "$ make"))
    assert facts.truncated is True
    assert facts.sections[-1] == Section("step_script", 2.0, None, None)
    assert facts.startup_seconds == 1.0


def test_runner_output_limit_means_truncated_even_when_sections_closed() -> None:
    data = log(start(1, "a"), end(2, "a"), "Job's log exceeded limit of 4194304 bytes.", "Job execution will continue")
    assert parse_bytes(data).truncated is True


def test_limit_sentence_printed_early_by_a_script_does_not_count() -> None:
    data = log(start(1, "step_script"), 'echo "Job\'s log exceeded limit"', "x" * 5000, end(2, "step_script"))
    assert parse_bytes(data).truncated is False


# ---- per-line timestamps ----------------------------------------------------------------------------------------


def test_per_line_timestamps_give_sub_second_precision() -> None:
    data = log(
        f"2026-09-30T19:38:19.213893Z 00O {start(1790797099, 'get_sources')}Getting source",
        "2026-09-30T19:38:20.000001Z 00E fatal: not a warning",
        f"2026-09-30T19:38:21.500000Z 00O {end(1790797101, 'get_sources')}",
        f"2026-09-30T19:38:21.600000Z 00O+\x1b[0K{start(1790797101, 'step_script')}",
    )
    facts = parse_bytes(data)
    base = datetime.fromisoformat("2026-09-30T19:38:19+00:00").timestamp()
    assert facts.sections[0].start == base + 0.213893
    assert facts.sections[0].end == base + 2 + 0.5
    assert facts.sections[1].start == base + 2 + 0.6
    assert facts.startup_seconds == pytest.approx(2.386107, abs=1e-6)


def test_timestamp_prefix_does_not_hide_runner_lines() -> None:
    data = log(
        "2026-09-30T19:38:19.213893Z 00O Running with gitlab-runner 19.1.0 (5eb085ab)",
        f"2026-09-30T19:38:19.313893Z 00O {start(1790797099, 'restore_cache')}",
        "2026-09-30T19:38:19.413893Z 00O \x1b[32;1mChecking cache for k...\x1b[0;m",
        "2026-09-30T19:38:19.513893Z 00O Successfully extracted cache",
        f"2026-09-30T19:38:19.613893Z 00O {end(1790797099, 'restore_cache')}",
    )
    facts = parse_bytes(data)
    assert facts.runner_version == "19.1.0"
    assert facts.cache == (CacheEvent("restore", "k", "hit"),)


def _split_cache_log() -> bytes:
    t = "2026-09-30T19:38:19.{}Z 00O"
    return log(
        f"{t.format('113893')} Running with gitlab-runner 19.1.0 (5eb085ab)",
        f"{t.format('213893')} {start(1790797099, 'restore_cache')}Restoring cache",
        f"{t.format('313893')} \x1b[32;1mChecking cache for 0-3f2a9c41e0d2-2-prot",
        f"{t.format('413893')}+ected...\x1b[0;m",
        f"{t.format('513893')} WARNING: file does not",
        f"{t.format('523893')}+ exist",
        f"{t.format('533893')} Failed to extract cache",
        f"{t.format('613893')} section_end:1790797099:resto",
        f"{t.format('713893')}+re_cache{S}",
        f"{t.format('813893')}+\x1b[0K{start(1790797100, 'step_script')}",
        f"{t.format('913893')} $ make",
        f"{t.format('923893')} {end(1790797101, 'step_script')}",
    )


def test_timestamp_continuation_lines_join_the_line_they_continue() -> None:
    # gitlab-facts.md section 2: "+" continues the previous line; a cache line or marker split that way is whole.
    facts = parse_bytes(_split_cache_log())
    assert facts.cache == (CacheEvent("restore", "0-3f2a9c41e0d2-2-protected", "miss"),)
    assert [s.name for s in facts.sections] == ["restore_cache", "step_script"]
    base = datetime.fromisoformat("2026-09-30T19:38:19+00:00").timestamp()
    assert facts.sections[0].end == pytest.approx(base + 0.613893)  # the split marker: where it began
    assert facts.sections[1].start == pytest.approx(base + 0.813893)  # a marker continuation keeps its own time
    assert facts.truncated is False
    assert facts.startup_seconds == pytest.approx(0.6, abs=1e-6)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 17, 33, 47, 48, 49, 64, 100])
def test_timestamp_continuations_do_not_depend_on_chunking(size: int) -> None:
    data = _split_cache_log()
    parser = TraceParser()
    for i in range(0, len(data), size):
        parser.feed(data[i : i + size])
    assert parser.finish() == parse_bytes(data)


def test_timestamp_continuation_as_the_last_line() -> None:
    data = log(
        f"2026-09-30T19:38:19.1Z 00O {start(1, 'restore_cache')}",
        "2026-09-30T19:38:19.2Z 00O Checking cache for k",
        "2026-09-30T19:38:19.3Z 00O+ey...",
    ).rstrip(b"\n")
    assert parse_bytes(data).cache == (CacheEvent("restore", "key", "unknown"),)


# ---- runner generations -----------------------------------------------------------------------------------------


def test_old_runner_build_script_is_the_script_start() -> None:
    data = log(
        "Running with gitlab-ci-multi-runner 9.5.0 (413da38)",
        start(100, "prepare_script") + end(101, "prepare_script"),
        start(101, "build_script") + "$ make",
        end(120, "build_script"),
    )
    facts = parse_bytes(data)
    assert facts.runner_version == "9.5.0"
    assert facts.startup_seconds == 1.0
    assert phase_durations(facts) == {"prepare": 1.0, "script": 19.0}


def test_step_release_is_a_script_phase_and_user_sections_count_nowhere() -> None:
    data = log(
        start(0, "prepare_executor"),
        end(2, "prepare_executor"),
        start(2, "step_script"),
        start(3, "section_script_step_0"),
        end(4, "section_script_step_0"),
        end(5, "step_script"),
        start(5, "step_release"),
        end(6, "step_release"),
        start(6, "upload_artifacts_on_failure"),
        end(8, "upload_artifacts_on_failure"),
    )
    assert phase_durations(parse_bytes(data)) == {"prepare": 2.0, "script": 4.0, "upload": 2.0}


def test_phase_mapping() -> None:
    assert SECTION_PHASES["resolve_secrets"] == "prepare"
    assert SECTION_PHASES["clear_worktree"] == "sources"
    assert SECTION_PHASES["restore_cache"] == "cache"
    assert SECTION_PHASES["download_artifacts"] == "artifacts"
    assert SECTION_PHASES["cleanup_file_variables"] == "upload"
    assert phase_of("step_deploy") == "script"
    assert phase_of("archive_cache_on_failure") == "upload"
    assert phase_of("upload_artifacts_on_success") == "upload"
    assert phase_of("section_script_step_3") is None
    assert set(SECTION_PHASES.values()) == set(PHASES)


# ---- image ------------------------------------------------------------------------------------------------------

_EXEC = "Using Docker executor with image ruby:3.3 ..."
_USING = "Using docker image sha256:aa11 for ruby:3.3 with digest ruby@sha256:bb22 ..."


def _prep(*lines: str) -> bytes:
    return log(start(1, "prepare_executor"), *lines, end(3, "prepare_executor"))


def test_image_pulled() -> None:
    facts = parse_bytes(_prep(_EXEC, "Pulling docker image ruby:3.3 ...", _USING))
    assert facts.executor == "docker"
    assert facts.image == ImageRef("ruby:3.3", "sha256:aa11", "sha256:bb22", True)


@pytest.mark.parametrize(
    "local",
    [
        'Using locally found image version due to "if-not-present" pull policy',
        "Using locally found image version due to if-not-present pull policy",
    ],
)
def test_image_found_locally(local: str) -> None:
    facts = parse_bytes(_prep(_EXEC, local, _USING))
    assert facts.image == ImageRef("ruby:3.3", "sha256:aa11", "sha256:bb22", False)


def test_image_pull_not_reported() -> None:
    assert parse_bytes(_prep(_EXEC, _USING)).image == ImageRef("ruby:3.3", "sha256:aa11", "sha256:bb22", None)


def test_service_images_are_not_the_job_image() -> None:
    facts = parse_bytes(
        _prep(
            _EXEC,
            "Starting service postgres:16 ...",
            'Using locally found image version due to "if-not-present" pull policy',
            "Using docker image sha256:cc33 for postgres:16 with digest postgres@sha256:dd44 ...",
            "Pulling docker image ruby:3.3 ...",
            _USING,
        )
    )
    assert facts.image == ImageRef("ruby:3.3", "sha256:aa11", "sha256:bb22", True)


def test_old_id_form_of_the_image_line() -> None:
    facts = parse_bytes(_prep(_EXEC, "Using docker image ruby:3.3 ID=sha256:ee55 for build container..."))
    assert facts.image == ImageRef("ruby:3.3", "sha256:ee55", None, None)


def test_kubernetes_executor_image_pull_unknown() -> None:
    facts = parse_bytes(_prep("Using Kubernetes namespace: ci", "Using Kubernetes executor with image alpine:3.20 ..."))
    assert facts.executor == "kubernetes"
    assert facts.image == ImageRef("alpine:3.20", None, None, None)


def test_shell_executor_has_no_image() -> None:
    facts = parse_bytes(_prep("Using Shell (bash) executor..."))
    assert (facts.executor, facts.image) == ("shell", None)


# ---- cache lines --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Checking cache for k1...", "Successfully extracted cache"], [("k1", "hit", None)]),
        (
            [
                "Checking cache for k1...",
                "WARNING: file does not exist                      ",
                "Failed to extract cache",
            ],
            [("k1", "miss", None)],
        ),
        (
            ["Checking cache for k1...", "WARNING: Cache file does not exist", "Failed to extract cache"],
            [("k1", "miss", None)],
        ),
        (["Checking cache for k1...", "Failed to extract cache"], [("k1", "failed", None)]),
        (["Checking cache for k1...", "Failed to extract cache k1: unexpected EOF"], [("k1", "failed", None)]),
        (["Not downloading cache k1 due to policy"], [("k1", "skipped", None)]),
        (["Skipping cache extraction due to empty cache key"], [("", "empty", "empty key")]),
        (["Checking cache for k1..."], [("k1", "unknown", None)]),
        (
            [
                "Checking cache for k1...",
                "WARNING: file does not exist",
                "Failed to extract cache",
                "Checking cache for k0 (fallback)...",
                "Successfully extracted cache",
            ],
            [("k1", "miss", None), ("k0", "hit", "fallback")],
        ),
        (
            [
                "\x1b[32;1mChecking cache for 0-abc-2-protected...\x1b[0;m",
                "\x1b[32;1mSuccessfully extracted cache\x1b[0;m",
            ],
            [("0-abc-2-protected", "hit", None)],
        ),
    ],
)
def test_restore_lines(lines: list[str], expected: list[tuple[str, str, str | None]]) -> None:
    facts = parse_bytes(restore(*lines))
    assert [(e.key, e.outcome, e.detail) for e in facts.cache] == expected
    assert all(e.op == "restore" for e in facts.cache)


def test_missing_result_is_unknown_never_miss() -> None:
    data = log(start(1, "restore_cache"), "Checking cache for k1...", "WARNING: file does not exist")
    facts = parse_bytes(data)
    assert facts.cache == (CacheEvent("restore", "k1", "unknown"),)
    assert facts.truncated is True


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Creating cache k1...", "Uploading cache.zip to https://x", "Created cache"], [("k1", "created", None)]),
        (["Creating cache k1...", "Failed to create cache"], [("k1", "failed", None)]),
        (["Creating cache k1...", "Archive is up to date!"], [("k1", "up_to_date", None)]),
        (
            ["Creating cache k1...", "WARNING: No files to cache.                       "],
            [("k1", "empty", "no files to cache")],
        ),
        (["Not uploading cache k1 due to policy"], [("k1", "skipped", None)]),
        (
            [
                "Creating cache k1...",
                "WARNING: Cache archive size (2147483648) is too big (Limit is set to 1073741824). Stored locally.",
                "Created cache",
            ],
            [("k1", "failed", "too big")],
        ),
        (["Creating cache k1..."], [("k1", "unknown", None)]),
        (
            ["Creating cache a...", "Created cache", "Creating cache b...", "Archive is up to date!"],
            [("a", "created", None), ("b", "up_to_date", None)],
        ),
    ],
)
def test_archive_lines(lines: list[str], expected: list[tuple[str, str, str | None]]) -> None:
    facts = parse_bytes(archive(*lines))
    assert [(e.key, e.outcome, e.detail) for e in facts.cache] == expected
    assert all(e.op == "archive" for e in facts.cache)


def test_cache_lines_printed_by_the_script_are_ignored() -> None:
    data = log(
        start(1, "step_script"), "Checking cache for fake...", "Successfully extracted cache", end(2, "step_script")
    )
    assert parse_bytes(data).cache == ()


# ---- hostile input ------------------------------------------------------------------------------------------------


def test_invalid_utf8_nul_bytes_and_progress_bars() -> None:
    data = (
        b"\xff\xfe\x00garbage\x00\n"
        + start(1, "restore_cache").encode()
        + b"\n"
        + b"Checking cache for k\xe9y...\n"
        + b"Downloading 1%\rDownloading 50%\rSuccessfully extracted cache\r\n"
        + end(2, "restore_cache").encode()
        + b"\x00\n"
    )
    facts = parse_bytes(data)
    assert facts.cache == (CacheEvent("restore", "k\ufffdy", "hit"),)
    assert facts.sections == (Section("restore_cache", 1.0, 2.0, 1.0),)


def test_crlf_line_endings() -> None:
    data = log(
        start(1, "restore_cache"), "Checking cache for k...", "Successfully extracted cache", end(3, "restore_cache")
    )
    facts = parse_bytes(data.replace(b"\n", b"\r\n"))
    assert facts.cache == (CacheEvent("restore", "k", "hit"),)
    assert facts.sections == (Section("restore_cache", 1.0, 3.0, 2.0),)


def test_ten_thousand_character_lines() -> None:
    data = log(start(1, "step_script"), "x" * 10_000, "y" * 10_000 + end(9, "step_script"))
    assert parse_bytes(data).sections == (Section("step_script", 1.0, 9.0, 8.0),)


def test_ten_megabyte_line_is_not_buffered_whole() -> None:
    parser = TraceParser()
    parser.feed(log(start(1, "step_script")))
    biggest = 0
    for _ in range(160):  # 10 MiB without a newline or \r
        parser.feed(b"z" * 65536)
        biggest = max(biggest, len(parser._tail))
    parser.feed(b"\n" + log(end(5, "step_script"), start(5, "archive_cache"), "Creating cache k...", "Created cache"))
    facts = parser.finish()
    assert biggest <= 64 * 1024 + 65536
    assert facts.sections[0] == Section("step_script", 1.0, 5.0, 4.0)
    assert facts.cache == (CacheEvent("archive", "k", "created"),)
    assert facts.truncated is True  # archive_cache never closed


def test_long_progress_bar_line_keeps_its_markers_whatever_the_chunking() -> None:
    bar = "".join(f"Downloading {i % 100}%\r" for i in range(3000))  # one ~50 KB "line"
    data = log(start(1, "step_script") + bar + end(4, "step_script") + bar + start(4, "after_script") + bar)
    expected = parse_bytes(data)
    assert [(s.name, s.end) for s in expected.sections] == [("step_script", 4.0), ("after_script", None)]
    for chunk in (1, 7, 4096, 5000):
        parser = TraceParser(max_line=4096)
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
        assert parser.finish() == expected
        assert parser.buffered <= 4096 + chunk


# ---- API ----------------------------------------------------------------------------------------------------------


def test_parse_stream_matches_parse_bytes() -> None:
    data = (LOGS / "runner-13-ansi.log").read_bytes()
    assert parse_stream(io.BytesIO(data), chunk_size=3) == parse_bytes(data)


def test_feed_after_finish_is_an_error_and_finish_is_idempotent() -> None:
    parser = TraceParser()
    parser.feed(log(start(1, "a")))
    first = parser.finish()
    assert parser.finish() == first
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


def test_facts_to_dict_shape() -> None:
    facts = parse_bytes((LOGS / "runner-19-timestamps.log").read_bytes())
    d = facts_to_dict(facts)
    assert list(d) == [
        "runner_version",
        "executor",
        "truncated",
        "sections",
        "startup_seconds",
        "image",
        "cache",
        "restores",
    ]
    assert set(d["sections"][0]) == {"name", "start", "end", "duration"}
    assert set(d["image"]) == {"name", "id", "digest", "pulled"}
    assert [set(c) for c in d["cache"]] == [{"op", "key", "outcome", "fallback"}] * 3
    assert [c["fallback"] for c in d["cache"]] == [False, True, False]
    # a miss on the main key, then a hit on a fallback key: one restore that hit
    assert d["restores"] == [
        {
            "key": "0-3f2a9c41e0d2b7a8-2-protected",
            "outcome": "hit",
            "keys": ["0-3f2a9c41e0d2b7a8-2-protected", "0-default-2-protected"],
            "via_fallback_key": "0-default-2-protected",
        }
    ]
    assert json.loads(json.dumps(d)) == d


def test_facts_round_trip_through_dict() -> None:
    for path in sorted(LOGS.glob("*.log")):
        facts = parse_bytes(path.read_bytes())
        assert facts_from_dict(json.loads(json.dumps(facts_to_dict(facts, detail=True)))) == facts
        plain = facts_from_dict(facts_to_dict(facts))  # without details, only "fallback" survives
        fallback = "fallback"
        assert plain.cache == tuple(
            CacheEvent(e.op, e.key, e.outcome, fallback if e.detail == fallback else None) for e in facts.cache
        )


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"runner_version": None, "executor": None, "truncated": False, "sections": [], "startup_seconds": None},
        {
            "runner_version": None,
            "executor": None,
            "truncated": False,
            "sections": [],
            "startup_seconds": None,
            "image": None,
            "cache": [{"op": "restore", "key": "k", "outcome": "maybe"}],
        },
    ],
)
def test_facts_from_dict_rejects_malformed(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        facts_from_dict(bad)


# ---- fixture logs: the exact facts ----------------------------------------------------------------------------------


def _secs(*pairs: tuple[str, int, int]) -> tuple[Section, ...]:
    return tuple(Section(name, float(a), float(b), float(b - a)) for name, a, b in pairs)


def test_fixture_runner_10() -> None:
    facts = parse_bytes((LOGS / "runner-10-docker.log").read_bytes())
    assert facts == TraceFacts(
        runner_version="10.8.0",
        executor="docker",
        truncated=False,
        sections=_secs(
            ("prepare_script", 1529480135, 1529480136),
            ("get_sources", 1529480136, 1529480141),
            ("restore_cache", 1529480141, 1529480143),
            ("download_artifacts", 1529480143, 1529480143),
            ("build_script", 1529480143, 1529480201),
            ("after_script", 1529480201, 1529480201),
            ("archive_cache", 1529480201, 1529480209),
            ("upload_artifacts_on_success", 1529480209, 1529480209),
        ),
        startup_seconds=8.0,
        image=ImageRef("ruby:2.5", "sha256:8a1a6c44be0e", None, True),
        cache=(CacheEvent("restore", "default", "hit"), CacheEvent("archive", "default", "created")),
    )


def test_fixture_runner_13_ansi() -> None:
    facts = parse_bytes((LOGS / "runner-13-ansi.log").read_bytes())
    assert facts == TraceFacts(
        runner_version="13.12.0",
        executor="docker",
        truncated=False,
        sections=_secs(
            ("prepare_executor", 1622548800, 1622548802),
            ("prepare_script", 1622548802, 1622548803),
            ("get_sources", 1622548803, 1622548806),
            ("restore_cache", 1622548806, 1622548809),
            ("step_script", 1622548809, 1622548841),
            ("lint_and_test", 1622548831, 1622548840),
            ("archive_cache", 1622548841, 1622548850),
            ("cleanup_file_variables", 1622548850, 1622548851),
        ),
        startup_seconds=9.0,
        image=ImageRef("node:14-alpine", "sha256:1f2e3d4c5b6a", "sha256:9a8b7c6d5e4f", False),
        cache=(
            CacheEvent("restore", "0-node-modules-protected", "miss"),
            CacheEvent("restore", "1-eslint-protected", "hit"),
            CacheEvent("archive", "0-node-modules-protected", "created"),
            CacheEvent("archive", "1-eslint-protected", "empty", "no files to cache"),
        ),
    )


def _iso_marker_times(path: Path) -> list[tuple[str, str, float]]:
    """(kind, name, line time) for each marker, computed independently of the parser."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stamp = line.split(" ", 1)[0]
        for kind, name in re.findall(r"section_(start|end):\d+:([\w.-]+)", line):
            out.append((kind, name, datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()))
    return out


def test_fixture_runner_19_timestamps_with_fallback_key() -> None:
    path = LOGS / "runner-19-timestamps.log"
    facts = parse_bytes(path.read_bytes())
    times = _iso_marker_times(path)
    starts = [(n, t) for k, n, t in times if k == "start"]
    ends = {n: t for k, n, t in times if k == "end"}
    assert [s.name for s in facts.sections] == [n for n, _ in starts]
    for section, (name, t0) in zip(facts.sections, starts, strict=True):
        assert section.start == pytest.approx(t0, abs=1e-6)
        assert section.end == pytest.approx(ends[name], abs=1e-6)
        assert section.start != int(section.start)  # sub-second, not the marker's unix seconds
    assert facts.startup_seconds == pytest.approx(dict(starts)["step_script"] - starts[0][1], abs=1e-6)
    assert (facts.runner_version, facts.executor, facts.truncated) == ("19.1.0", "docker+machine", False)
    assert facts.image == ImageRef(
        "registry.gitlab.com/platform/app/ci:alpine", "sha256:c0ffee1234ab", "sha256:d1ce5eed9876", True
    )
    assert facts.cache == (
        CacheEvent("restore", "0-3f2a9c41e0d2b7a8-2-protected", "miss"),
        CacheEvent("restore", "0-default-2-protected", "hit", "fallback"),
        CacheEvent("archive", "0-3f2a9c41e0d2b7a8-2-protected", "failed", "too big"),
    )


def test_fixture_kubernetes() -> None:
    facts = parse_bytes((LOGS / "kubernetes.log").read_bytes())
    assert facts == TraceFacts(
        runner_version="17.11.0",
        executor="kubernetes",
        truncated=False,
        sections=_secs(
            ("resolve_secrets", 1760000000, 1760000000),
            ("prepare_executor", 1760000000, 1760000001),
            ("prepare_script", 1760000001, 1760000019),
            ("get_sources", 1760000019, 1760000022),
            ("restore_cache", 1760000022, 1760000023),
            ("step_script", 1760000023, 1760000071),
            ("archive_cache", 1760000071, 1760000075),
            ("cleanup_file_variables", 1760000075, 1760000076),
        ),
        startup_seconds=23.0,
        image=ImageRef("python:3.12-slim", None, None, None),
        cache=(
            CacheEvent("restore", "0-pip-non_protected", "skipped"),
            CacheEvent("restore", "", "empty", "empty key"),
            CacheEvent("archive", "0-pip-non_protected", "created"),
            CacheEvent("archive", "1-tools-non_protected", "skipped"),
        ),
    )


def test_fixture_truncated_by_output_limit() -> None:
    facts = parse_bytes((LOGS / "truncated-limit.log").read_bytes())
    assert facts == TraceFacts(
        runner_version="16.11.0",
        executor="docker",
        truncated=True,
        sections=(
            *_secs(
                ("prepare_executor", 1717171700, 1717171701),
                ("prepare_script", 1717171701, 1717171702),
                ("get_sources", 1717171702, 1717171704),
                ("restore_cache", 1717171704, 1717171705),
            ),
            Section("step_script", 1717171705.0, None, None),
        ),
        startup_seconds=5.0,
        image=ImageRef("golang:1.22", "sha256:4b5c6d7e8f90", "sha256:0123abcd4567", False),
        cache=(CacheEvent("restore", "go-mod-protected", "miss"),),
    )


def test_fixture_still_running() -> None:
    facts = parse_bytes((LOGS / "running.log").read_bytes())
    assert facts == TraceFacts(
        runner_version="18.4.0",
        executor="docker",
        truncated=True,
        sections=(
            *_secs(("prepare_executor", 1750000000, 1750000030), ("get_sources", 1750000030, 1750000032)),
            Section("restore_cache", 1750000032.0, None, None),
        ),
        startup_seconds=None,
        image=ImageRef("rust:1.80", None, None, True),
        cache=(CacheEvent("restore", "0-cargo-protected", "unknown"),),
    )


def test_fixture_windows_crlf() -> None:
    facts = parse_bytes((LOGS / "windows-crlf.log").read_bytes())
    assert facts == TraceFacts(
        runner_version="16.11.1",
        executor="shell",
        truncated=False,
        sections=_secs(
            ("prepare_executor", 1717000000, 1717000000),
            ("prepare_script", 1717000000, 1717000002),
            ("get_sources", 1717000002, 1717000009),
            ("restore_cache", 1717000009, 1717000011),
            ("step_script", 1717000011, 1717000095),
            ("archive_cache", 1717000095, 1717000097),
            ("cleanup_file_variables", 1717000097, 1717000098),
        ),
        startup_seconds=11.0,
        image=None,
        cache=(
            CacheEvent("restore", "win-deps-non_protected", "hit"),
            CacheEvent("archive", "win-deps-non_protected", "up_to_date"),
        ),
    )
    assert b"\r\n" in (LOGS / "windows-crlf.log").read_bytes()


def test_marker_after_a_cut_long_line_keeps_the_line_timestamp() -> None:
    stamp = "2026-09-30T19:38:19.250000Z 00O "
    first = (stamp + "y" * 5000 + "\r").encode()
    rest = f"x{start(1790797099, 'step_script')}\n".encode()
    expected = datetime.fromisoformat("2026-09-30T19:38:19.250000+00:00").timestamp()
    for cuts in ([len(first)], [len(first) - 1], [10, len(first), len(first) + 3]):
        parser = TraceParser(max_line=4096)
        data, prev = first + rest, 0
        for cut in [*cuts, len(data)]:
            parser.feed(data[prev:cut])
            prev = cut
        facts = parser.finish()
        assert [(s.name, s.start) for s in facts.sections] == [("step_script", expected)], cuts


def test_many_unclosed_and_out_of_order_sections_stay_fast() -> None:
    lines = [start(i, f"user_{i}") for i in range(20_000)]
    lines += [end(20_000 + i, f"user_{i}") for i in range(0, 20_000, 2)]  # oldest first: out of order
    facts = parse_bytes(log(*lines))
    assert len(facts.sections) == 10_000  # MAX_SECTIONS
    assert facts.sections[0] == Section("user_0", 0.0, 20_000.0, 20_000.0)
    assert facts.sections[1].end is None
    assert facts.truncated is True


def test_byte_at_a_time_feeding_of_a_long_line_is_linear() -> None:
    data = log(start(1, "step_script"), "z" * 60_000 + end(2, "step_script"))
    parser = TraceParser()
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
    assert parser.finish() == parse_bytes(data)


def test_indented_or_mid_line_keywords_are_not_runner_lines() -> None:
    data = restore(
        "  Checking cache for indented...",
        " ---> Using cache",
        "echo Checking cache for inline...",
        "\x1b[32;1mChecking cache for real...\x1b[0;m",
        "Successfully extracted cache",
    )
    assert parse_bytes(data).cache == (CacheEvent("restore", "real", "hit"),)


# ---- issue 12: no byte sequence raises; an impossible timestamp is unknown ------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-13-01T10:00:00.000000Z",  # month 13
        "0000-01-01T10:00:00.000000Z",  # year 0
        "2026-00-10T10:00:00.000000Z",  # month 0
        "2026-02-30T10:00:00.000000Z",  # no such day
        "2026-01-01T24:00:00.000000Z",  # hour 24
        "2026-01-01T10:60:00.000000Z",  # minute 60
        "2026-01-01T10:00:61.000000Z",  # second 61
        "1969-12-31T23:59:59.000000Z",  # before unix time
    ],
)
def test_impossible_timestamp_is_unknown_not_an_exception(stamp: str) -> None:
    good = "2026-01-01T10:00:05.500000Z"
    data = log(
        f"{stamp} 00O " + start(1767261600, "get_sources"),  # this line's time is unknown: the marker's own seconds
        f"{good} 00O " + end(1767261605, "get_sources"),
    )
    facts = parse_bytes(data)
    assert facts.sections == (Section("get_sources", 1767261600.0, 1767261605.5, 5.5),)


def test_leap_second_and_last_valid_instant_parse() -> None:
    data = log(
        "2016-12-31T23:59:60.250000Z 00O " + start(1, "a"),
        "9999-12-31T23:59:59.000000Z 00O " + end(2, "a"),
    )
    facts = parse_bytes(data)
    assert facts.sections[0].start == 1483228800.25
    assert facts.sections[0].end == 253402300799.0


def test_bad_timestamps_in_every_later_sync_do_not_stop_the_parser() -> None:
    # the failure issue 12 describes: one bad line used to raise for every later parse of that log
    data = log("2026-13-45T99:99:99.999999Z 00O " + start(5, "step_script"), "x", end(9, "step_script"))
    for _ in range(3):
        assert parse_bytes(data).sections == (Section("step_script", 5.0, 9.0, 4.0),)


# ---- issue 13: saved copies whose \r became newlines --------------------------------------------------------------


def strip_cr(data: bytes) -> bytes:
    """What a browser save or a copy-paste makes of a raw log: every \\r a newline."""
    return data.replace(b"\r", b"\n")


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.log")))
def test_cr_stripped_copy_parses_like_the_original(name: str) -> None:
    original = (LOGS / name).read_bytes()
    assert parse_bytes(strip_cr(original)) == parse_bytes(original)


def test_cr_stripped_markers_need_their_own_line() -> None:
    data = strip_cr(
        log(
            "\x1b[0K" + start(1, "get_sources") + "\x1b[0K\x1b[36;1mGetting source\x1b[0;m",
            end(3, "get_sources") + "\x1b[0K" + start(3, "step_script"),
            "$ echo section_start:5:fake",
            "echo section_end:6:step_script done",
            end(9, "step_script"),
        )
    )
    facts = parse_bytes(data)
    assert facts.sections == (Section("get_sources", 1.0, 3.0, 2.0), Section("step_script", 3.0, 9.0, 6.0))
    assert facts.startup_seconds == 2.0


def test_cr_stripped_timestamped_copy_keeps_sub_second_times() -> None:
    data = strip_cr(
        log(
            "2026-01-01T10:00:00.250000Z 00O " + start(1767261600, "prepare_executor"),
            "2026-01-01T10:00:02.000000Z 00O " + end(1767261602, "prepare_executor"),
            "2026-01-01T10:00:02.125000Z 00O+\x1b[0K" + start(1767261602, "step_script"),
            "2026-01-01T10:00:04.000000Z 00O " + end(1767261604, "step_script"),
        )
    )
    facts = parse_bytes(data)
    assert [(s.name, s.start, s.end) for s in facts.sections] == [
        ("prepare_executor", 1767261600.25, 1767261602.0),
        ("step_script", 1767261602.125, 1767261604.0),
    ]
    assert facts.startup_seconds == 1.875


def test_cr_stripped_copy_chunked_anyhow() -> None:
    data = strip_cr((LOGS / "runner-13-ansi.log").read_bytes())
    whole = parse_bytes(data)
    parser = TraceParser()
    for i in range(0, len(data), 7):
        parser.feed(data[i : i + 7])
    assert parser.finish() == whole
    assert len(whole.sections) == 8


# ---- issue 13: cache lines of older runners, fallbacks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (  # runners <= 14.9 with a distributed cache
            [
                "Checking cache for k1...",
                "\x1b[31;1mFATAL: file does not exist                        \x1b[0;m ",
                "Failed to extract cache",
            ],
            [("k1", "miss", None)],
        ),
        (
            ["Checking cache for k1...", "FATAL: zip: checksum error", "WARNING: Failed to extract cache"],
            [("k1", "failed", None)],
        ),
        (
            [
                "Checking cache for k1...",
                "FATAL: open ../cache/k1/cache.zip: permission denied",
                "Failed to extract cache",
            ],
            [("k1", "failed", None)],
        ),
        (  # an ordinary runner prints a fallback attempt like the main key's
            [
                "Checking cache for main-key...",
                "WARNING: file does not exist",
                "Failed to extract cache",
                "Checking cache for fallback-key...",
                "Successfully extracted cache",
            ],
            [("main-key", "miss", None), ("fallback-key", "hit", "fallback")],
        ),
        (  # a chain: cache:fallback_keys, then CACHE_FALLBACK_KEY
            [
                "Checking cache for a...",
                "FATAL: file does not exist",
                "Failed to extract cache",
                "Checking cache for b...",
                "Failed to extract cache",
                "Checking cache for c...",
                "Successfully extracted cache",
            ],
            [("a", "miss", None), ("b", "failed", "fallback"), ("c", "hit", "fallback")],
        ),
        (  # after a hit, the next attempt is another cache's main key
            [
                "Checking cache for a...",
                "Successfully extracted cache",
                "Checking cache for b...",
                "Failed to extract cache",
            ],
            [("a", "hit", None), ("b", "failed", None)],
        ),
        (  # after a result that never came, too
            ["Checking cache for a...", "Checking cache for b...", "Successfully extracted cache"],
            [("a", "unknown", None), ("b", "hit", None)],
        ),
        (  # a policy skip ends a restore
            [
                "Checking cache for a...",
                "Failed to extract cache",
                "Not downloading cache b due to policy",
                "Checking cache for c...",
            ],
            [("a", "failed", None), ("b", "skipped", None), ("c", "unknown", None)],
        ),
    ],
)
def test_restore_lines_of_every_generation(lines: list[str], expected: list[tuple[str, str, str | None]]) -> None:
    facts = parse_bytes(restore(*lines))
    assert [(e.key, e.outcome, e.detail) for e in facts.cache] == expected


def test_a_key_the_job_archives_is_a_cache_of_its_own_not_a_fallback() -> None:
    data = restore(
        "Checking cache for 0_package-protected...",
        "WARNING: file does not exist",
        "Failed to extract cache",
        "Checking cache for 1_tools-protected...",
        "Successfully extracted cache",
    ) + archive(
        "Creating cache 0_package-protected...",
        "Created cache",
        "Not uploading cache 1_tools-protected due to policy",
    )
    facts = parse_bytes(data)
    assert [(e.key, e.detail) for e in facts.cache if e.op == "restore"] == [
        ("0_package-protected", None),
        ("1_tools-protected", None),
    ]
    assert [r.key for r in restores(facts)] == ["0_package-protected", "1_tools-protected"]


def test_a_new_restore_cache_section_starts_a_new_restore() -> None:
    data = restore("Checking cache for a...", "Failed to extract cache") + restore("Checking cache for b...")
    assert [e.detail for e in parse_bytes(data).cache] == [None, None]


def test_restores_group_fallback_attempts() -> None:
    facts = parse_bytes(
        restore(
            "Checking cache for a...",
            "WARNING: file does not exist",
            "Failed to extract cache",
            "Checking cache for a-fallback...",
            "Successfully extracted cache",
            "Checking cache for b...",
            "WARNING: file does not exist",
            "Failed to extract cache",
            "Checking cache for b-fallback...",
            "WARNING: file does not exist",
            "Failed to extract cache",
            "Not downloading cache c due to policy",
        )
    )
    assert restores(facts) == (
        Restore("a", "hit", ("a", "a-fallback"), "a-fallback"),
        Restore("b", "miss", ("b", "b-fallback"), None),
        Restore("c", "skipped", ("c",), None),
    )


def test_step_runner_fallback_label_still_reads() -> None:
    facts = parse_bytes(
        restore("Checking cache for a...", "Failed to extract cache", "Checking cache for z (fallback)...")
    )
    assert [(e.key, e.detail) for e in facts.cache] == [("a", None), ("z", "fallback")]


def test_empty_key_archive_is_misconfigured() -> None:
    facts = parse_bytes(archive("\x1b[0;33mWARNING: Skipping cache archiving due to empty cache key\x1b[0;m"))
    assert facts.cache == (CacheEvent("archive", "", "empty", "empty key"),)


# ---- issue 13: executor, image and section names of every generation --------------------------------------------


@pytest.mark.parametrize(
    "name", ["docker+machine", "docker-autoscaler", "docker-windows", "kubernetes", "shell", "instance", "custom"]
)
def test_executor_is_the_runners_own_name(name: str) -> None:
    data = log(
        start(1, "prepare_executor") + f'\x1b[0K\x1b[0K\x1b[36;1mPreparing the "{name}" executor\x1b[0;m',
        "\x1b[0KUsing Docker executor with image ruby:3.3 ...\x1b[0;m",
        end(3, "prepare_executor"),
    )
    facts = parse_bytes(data)
    assert facts.executor == name
    assert facts.image is not None and facts.image.name == "ruby:3.3"


def test_executor_from_the_using_line_when_not_prepared() -> None:
    assert parse_bytes(_prep("Using Shell (pwsh) executor...")).executor == "shell"
    assert parse_bytes(log("Using Docker executor with image ruby:2.5 ...")).executor == "docker"


def test_pull_for_a_platform() -> None:
    facts = parse_bytes(_prep(_EXEC, "Pulling docker image ruby:3.3 for platform linux/arm64 ...", _USING))
    assert facts.image == ImageRef("ruby:3.3", "sha256:aa11", "sha256:bb22", True)


def test_runner_10_build_container_line() -> None:
    data = log(
        "Using Docker executor with image ruby:2.3 ...",
        "Using docker image sha256:0f1e ID=sha256:0f1e for predefined container...",
        "Using locally found image version due to if-not-present pull policy",
        "Using docker image ruby:2.3 ID=sha256:7a8b for build container...",
    )
    assert parse_bytes(data).image == ImageRef("ruby:2.3", "sha256:7a8b", None, False)
    data = log(
        "Using Docker executor with image ruby:2.3 ...",
        "Pulling docker image ruby:2.3 ...",
        "Using docker image ruby:2.3 for build container...",
    )
    assert parse_bytes(data).image == ImageRef("ruby:2.3", None, None, True)


def test_upload_artifacts_of_runner_10_is_an_upload_phase() -> None:
    facts = parse_bytes(log(start(1, "upload_artifacts"), "Uploading artifacts...", end(4, "upload_artifacts")))
    assert phase_durations(facts) == {"upload": 3.0}
    assert SECTION_PHASES["upload_artifacts"] == "upload"


# ---- finding runner lines outside script output (line starts, \r parts, markers ended by \r) --------------------


def test_runner_lines_after_a_cr_and_at_line_starts_are_each_read_once() -> None:
    data = log(
        "Running with gitlab-runner 17.0.0 (abc)",
        "progress 1%\rChecking cache for k1...",  # found at its \r, before the next line that looks like one
        "plain output",
        "\x1b[0;33mWARNING: file does not exist                      \x1b[0;m",
        "Failed to extract cache",
        "done 100%\r\x1b[32;1mCreating cache k1...\x1b[0;m",
        "Created cache",
    )
    facts = parse_bytes(data)
    assert facts.runner_version == "17.0.0"
    assert facts.cache == (CacheEvent("restore", "k1", "miss"), CacheEvent("archive", "k1", "created"))


def test_a_marker_ended_by_cr_mid_line_counts_outside_script_output() -> None:
    # a script that printed no final newline: the runner's marker follows its output on the same line
    data = log(
        start(100, "prepare_executor") + "Preparing the docker executor",
        "some output" + end(103, "prepare_executor") + start(103, "get_sources"),
        end(105, "get_sources"),
    )
    facts = parse_bytes(data)
    assert [(s.name, s.start, s.end) for s in facts.sections] == [
        ("prepare_executor", 100.0, 103.0),
        ("get_sources", 103.0, 105.0),
    ]


def test_runner_lines_of_a_long_log_without_markers_are_all_found() -> None:
    # long spans are searched by RE2 past the first 2 KiB: lines near the ends of every span and chunk count
    filler = "".join(f"compiling unit {i} of the project with Using-like words\n" for i in range(3000))
    data = (
        "Running with gitlab-runner 16.0.0 (abc)\n"
        + filler
        + "\x1b[32;1mChecking cache for k...\x1b[0;m\n"
        + filler
        + "Successfully extracted cache\n"
        + filler
        + "Creating cache k...\n"
        + "Archive is up to date!\n"
    ).encode()
    expected = (CacheEvent("restore", "k", "hit"), CacheEvent("archive", "k", "up_to_date"))
    for chunk in (1 << 16, 4096, 997):
        facts = parse_stream(io.BytesIO(data), chunk)
        assert facts.runner_version == "16.0.0"
        assert facts.cache == expected


# ---- what a runner line says is read once (issue 15): the memo never changes the facts -------------------------


def _memo_log(key: str, image: str) -> bytes:
    return log(
        "Running with gitlab-runner 19.1.0 (5eb085ab)",
        start(10, "prepare_executor") + f"\x1b[0KUsing Docker executor with image {image} ...",
        f"\x1b[0KPulling docker image {image} ...",
        end(12, "prepare_executor"),
        start(12, "restore_cache"),
        f"\x1b[32;1mChecking cache for {key}...\x1b[0;m",
        "\x1b[0;33mWARNING: file does not exist                      \x1b[0;m",
        "\x1b[31;1mFailed to extract cache\x1b[0;m",
        end(13, "restore_cache"),
        start(13, "step_script"),
        end(20, "step_script"),
    )


def test_the_same_runner_line_in_another_state_reads_by_that_state() -> None:
    # "Pulling docker image X" only counts for the job's image: the memo keeps what the line says, not what it did
    first = parse_bytes(_memo_log("k1", "alpine:3"))
    assert first.image == ImageRef("alpine:3", None, None, True)
    other = log(
        start(10, "prepare_executor") + "\x1b[0KUsing Docker executor with image ruby:3 ...",
        "\x1b[0KPulling docker image alpine:3 ...",  # the same bytes as above, for another image
        end(12, "prepare_executor"),
    )
    assert parse_bytes(other).image == ImageRef("ruby:3", None, None, None)
    # and a fallback is told by the attempt before it, whatever line was read first
    again = parse_bytes(_memo_log("k1", "alpine:3") + log("\x1b[32;1mChecking cache for k1...\x1b[0;m"))
    assert [e.detail for e in again.cache] == [None, "fallback"]


def test_a_full_memo_is_emptied_and_the_facts_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from cidash import logparse

    monkeypatch.setattr(logparse, "_ACTIONS", {})
    monkeypatch.setattr(logparse, "_ACTIONS_MAX", 3)
    expected = [parse_bytes(_memo_log(f"key-{i}", "alpine:3")) for i in range(6)]
    assert len(logparse._ACTIONS) <= 3  # bounded: cleared when full
    assert [parse_bytes(_memo_log(f"key-{i}", "alpine:3")) for i in range(6)] == expected
    assert expected[5].cache[0] == CacheEvent("restore", "key-5", "miss")


def test_long_pieces_are_read_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from cidash import logparse

    monkeypatch.setattr(logparse, "_ACTIONS", {})
    key = "k" * 2000
    facts = parse_bytes(_memo_log(key, "alpine:3"))
    assert facts.cache[0] == CacheEvent("restore", key, "miss")
    assert all(len(piece) <= logparse._ACTIONS_KEY_MAX for piece in logparse._ACTIONS)
    assert logparse._ACTIONS  # the short pieces are kept


def test_threads_sharing_the_memo_get_the_facts_of_one_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    logs = [p.read_bytes() for p in sorted(LOGS.rglob("*.log"))] * 4
    expected = [parse_bytes(data) for data in logs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(parse_bytes, logs)) == expected
