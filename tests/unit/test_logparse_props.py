"""Property tests for the job-log parser: chunking never matters, nothing raises, generated logs round-trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidash.logparse import TraceParser, parse_bytes
from cidash.models import CacheEvent, CacheOutcome, ImageRef, Section, TraceFacts
from logparse_support import parse_chunked, parse_without_lane
from paths import DATA

LOGS = DATA / "logs"
FIXTURES = {str(p.relative_to(LOGS)): p.read_bytes() for p in sorted(LOGS.rglob("*.log"))}
FIXTURES.update({f"{name} (CR stripped)": data.replace(b"\r", b"\n") for name, data in list(FIXTURES.items())})
S = "\r\x1b[0K"


# ---- chunking invariance ---------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(name=st.sampled_from(sorted(FIXTURES)), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_fixture_logs_chunked_anyhow_give_the_same_facts(name: str, cuts: list[int]) -> None:
    data = FIXTURES[name]
    assert parse_chunked(data, cuts) == parse_bytes(data)


@settings(max_examples=60)
@given(name=st.sampled_from(sorted(FIXTURES)), size=st.integers(min_value=1, max_value=64))
def test_fixed_small_chunks_give_the_same_facts(name: str, size: int) -> None:
    data = FIXTURES[name]
    parser = TraceParser()
    for i in range(0, len(data), size):
        parser.feed(data[i : i + size])
    assert parser.finish() == parse_bytes(data)


# Runner lines the parser reads (cache, image, version).
_RUNNER_LINES = [
    "Checking cache for k1...",
    "Checking cache for k2 (fallback)...",
    "WARNING: file does not exist",
    "Failed to extract cache",
    "Successfully extracted cache",
    "Creating cache k1...",
    "Created cache",
    "WARNING: No files to cache.",
    "Archive is up to date!",
    "Cache archive size (9) is too big (Limit is set to 1)",
    "Not uploading cache k3 due to policy",
    "Using Docker executor with image ruby:3 ...",
    "Pulling docker image ruby:3 ...",
    "Using docker image sha256:1 for ruby:3 with digest ruby@sha256:2 ...",
    "Running with gitlab-runner 19.1.0 (5eb085ab)",
]

# Fragments that exercise every code path when glued together at random.
_FRAGMENTS = [
    "section_start:1700000000:step_script",
    "section_start:1700000001:restore_cache",
    "section_end:1700000002:restore_cache",
    "section_start:1700000003:archive_cache[collapsed=true]",
    "section_end:1700000009:step_script",
    "section_end:1700000004:archive_cache",
    S,
    "\x1b[0K",
    "\x1b[32;1m",
    "\x1b[0;m",
    "\r",
    "\n",
    "\r\n",
    "2026-09-30T19:38:19.213893Z 00O ",
    "2026-09-30T19:38:20.5Z 01E+",
    *_RUNNER_LINES,
    "Job's log exceeded limit of 4194304 bytes.",
    "section_",
    "\xe9\x00\ufffd",
    "plain output ",
]


@settings(max_examples=80)
@given(
    parts=st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=8)), max_size=60),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_random_fragment_soup_is_chunking_invariant(parts: list[str], cuts: list[int]) -> None:
    data = "".join(parts).encode("utf-8", "surrogatepass")
    assert parse_chunked(data, cuts) == parse_bytes(data)


@settings(max_examples=40)
@given(
    # at most 25 fragments: whatever follows the last \r stays under the cap, so nothing is dropped
    parts=st.lists(st.sampled_from([*_FRAGMENTS, "\r" + "y" * 2000]), max_size=25),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_long_lines_with_a_small_line_cap_do_not_change_the_facts(parts: list[str], cuts: list[int]) -> None:
    # Lines longer than the cap that contain \r are cut at \r: the facts must not depend on where chunks end.
    data = "".join(parts).encode()
    assert parse_chunked(data, cuts, max_line=4096) == parse_bytes(data)


# ---- never raises ------------------------------------------------------------------------------------------------


@settings(max_examples=100)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    facts = parse_chunked(data, cuts)
    assert isinstance(facts, TraceFacts)


@settings(max_examples=40)
@given(
    parts=st.lists(st.one_of(st.sampled_from([f.encode() for f in _FRAGMENTS]), st.binary(max_size=5000)), max_size=30)
)
def test_arbitrary_bytes_mixed_with_markers_never_raise(parts: list[bytes]) -> None:
    data = b"".join(parts)
    parser = TraceParser(max_line=4096)
    for i in range(0, len(data), 997):
        parser.feed(data[i : i + 997])
    assert isinstance(parser.finish(), TraceFacts)


# ---- generated valid logs round-trip -------------------------------------------------------------------------------

_RESTORE: dict[str, tuple[CacheOutcome, str | None, list[str]]] = {
    "hit": ("hit", None, ["\x1b[32;1mChecking cache for {k}...\x1b[0;m", "Successfully extracted cache"]),
    "miss": (
        "miss",
        None,
        [
            "Checking cache for {k}...",
            "\x1b[0;33mWARNING: file does not exist      \x1b[0;m ",
            "Failed to extract cache",
        ],
    ),
    "failed": ("failed", None, ["Checking cache for {k}...", "Failed to extract cache {k}: unexpected EOF"]),
    "fallback": ("hit", "fallback", ["Checking cache for {k} (fallback)...", "Successfully extracted cache"]),
    "skipped": ("skipped", None, ["Not downloading cache {k} due to policy"]),
    "empty": ("empty", "empty key", ["WARNING: Skipping cache extraction due to empty cache key"]),
}
_ARCHIVE: dict[str, tuple[CacheOutcome, str | None, list[str]]] = {
    "created": (
        "created",
        None,
        ["\x1b[32;1mCreating cache {k}...\x1b[0;m", "x: found 1 matching files", "Created cache"],
    ),
    "failed": ("failed", None, ["Creating cache {k}...", "Failed to create cache"]),
    "up_to_date": ("up_to_date", None, ["Creating cache {k}...", "Archive is up to date!"]),
    "empty": ("empty", "no files to cache", ["Creating cache {k}...", "WARNING: No files to cache.     "]),
    "too_big": (
        "failed",
        "too big",
        ["Creating cache {k}...", "Cache archive size (9) is too big (Limit is set to 1)"],
    ),
    "skipped": ("skipped", None, ["Not uploading cache {k} due to policy"]),
}
_RUNNER_SECTIONS = [
    "resolve_secrets",
    "prepare_executor",
    "prepare_script",
    "get_sources",
    "restore_cache",
    "download_artifacts",
    "step_script",
    "after_script",
    "archive_cache",
    "upload_artifacts_on_success",
    "cleanup_file_variables",
]
_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=30)
_output = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80),
    st.sampled_from(["section_", "my_section_start:1:x", "Checking cache for x...", "Successfully extracted cache"]),
)


@dataclass
class Generated:
    data: bytes
    facts: TraceFacts


@st.composite
def generated_logs(draw: st.DrawFn) -> Generated:
    stamped = draw(st.booleans())
    glue = draw(st.booleans())  # section_end and the next section_start on one line, as runners write them
    micros = draw(st.integers(min_value=1_500_000_000, max_value=2_000_000_000)) * 1_000_000
    lines: list[tuple[int, str]] = []  # (time in microseconds, text)
    sections: list[Section] = []
    cache: list[CacheEvent] = []
    restores: list[tuple[int, str]] = []  # (index into cache, kind)

    def at(us: int) -> float:
        return us // 1_000_000 + (us % 1_000_000) / 1e6 if stamped else float(us // 1_000_000)

    def span(a: int, b: int) -> float:
        """Seconds from a to b as the log's clock tells them: whole microseconds, or whole seconds unstamped
        (computed from the integers, not as a difference of two ~1.5e9 s doubles)."""
        return (b - a) / 1e6 if stamped else float(b // 1_000_000 - a // 1_000_000)

    opened_us: list[int] = []

    image = None
    inner: Section | None = None
    names = [n for n in _RUNNER_SECTIONS if n == "step_script" or draw(st.booleans())]
    for name in names:
        opened = micros
        marker = f"section_start:{opened // 1_000_000}:{name}{S}\x1b[0K\x1b[36;1m{name}\x1b[0;m"
        if glue and lines and lines[-1][1].startswith("section_end:"):
            lines[-1] = (lines[-1][0], lines[-1][1] + "\x1b[0K" + marker)
            opened = lines[-1][0]
        else:
            lines.append((opened, marker))
        body: list[str] = []
        if name == "prepare_executor":
            image_name = draw(st.sampled_from(["ruby:3.3", "registry.example.com/ci:alpine"]))
            pulled = draw(st.sampled_from([True, False, None]))
            body.append(f"Using Docker executor with image {image_name} ...")
            if pulled is True:
                body.append(f"Pulling docker image {image_name} ...")
            if pulled is False:
                body.append('Using locally found image version due to "if-not-present" pull policy')
            body.append(f"Using docker image sha256:abc for {image_name} with digest x@sha256:def ...")
            image = ImageRef(image_name, "sha256:abc", "sha256:def", pulled)
        elif name in ("restore_cache", "archive_cache"):
            table = _RESTORE if name == "restore_cache" else _ARCHIVE
            op = "restore" if name == "restore_cache" else "archive"
            for kind in draw(st.lists(st.sampled_from(sorted(table)), max_size=4)):
                outcome, detail, template = table[kind]
                key = "" if kind == "empty" and op == "restore" else draw(_keys)
                body.extend(t.format(k=key) for t in template)
                cache.append(CacheEvent(op, key, outcome, detail))  # type: ignore[arg-type]
                if op == "restore":
                    restores.append((len(cache) - 1, kind))
        elif name in ("step_script", "after_script"):  # script output: nothing in it may count
            body.extend(draw(st.lists(_output, max_size=5)))
            if name == "step_script" and draw(st.booleans()):
                inner_start = micros + draw(st.integers(min_value=0, max_value=10**6))
                inner_end = inner_start + draw(st.integers(min_value=0, max_value=10**7))
                lines.append((inner_start, f"section_start:{inner_start // 1_000_000}:user_step[collapsed=true]{S}"))
                lines.append((inner_end, f"section_end:{inner_end // 1_000_000}:user_step{S}"))
                micros = inner_end
                inner = Section("user_step", at(inner_start), at(inner_end), span(inner_start, inner_end))
            else:
                inner = None
        else:
            body.append(f"\x1b[32;1mDoing {name}...\x1b[0;m")
        for text in body:
            micros += draw(st.integers(min_value=0, max_value=3 * 10**6))
            lines.append((micros, text))
        micros += draw(st.integers(min_value=0, max_value=10**6))
        lines.append((micros, f"section_end:{micros // 1_000_000}:{name}{S}"))
        sections.append(Section(name, at(opened), at(micros), span(opened, micros)))
        opened_us.append(opened)
        if name == "step_script" and inner is not None:
            sections.append(inner)

    out = []
    for us, text in lines:
        if stamped:
            stamp = datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            text = f"{stamp}.{us % 1_000_000:06d}Z 00O {text}"
        out.append(text)
    data = ("\n".join(out) + "\n").encode()
    # An attempt printed like a main key right after one that missed or failed is a fallback attempt, unless the
    # job archives that key (then it is the main key of its next cache).
    archived = {e.key for e in cache if e.op == "archive"}
    previous: str | None = None
    for i, kind in restores:
        e = cache[i]
        if kind in ("hit", "miss", "failed") and previous in ("miss", "failed") and e.key not in archived:
            cache[i] = CacheEvent(e.op, e.key, e.outcome, "fallback")
        previous = None if kind in ("skipped", "empty") else e.outcome
    runner_names = [s.name for s in sections if s.name != "user_step"]
    script_us = opened_us[runner_names.index("step_script")]
    facts = TraceFacts(
        runner_version=None,
        executor="docker" if image is not None else None,
        truncated=False,
        sections=tuple(sections),
        startup_seconds=span(opened_us[0], script_us),
        image=image,
        cache=tuple(cache),
    )
    return Generated(data, facts)


@settings(max_examples=80)
@given(gen=generated_logs(), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_generated_logs_parse_back_to_their_facts(gen: Generated, cuts: list[int]) -> None:
    assert parse_chunked(gen.data, cuts) == gen.facts


# ---- the fast lane reads runner lines exactly as the per-line path does ------------------------------------------


def test_the_fixture_logs_read_the_same_without_the_lane() -> None:
    differ = [name for name, data in FIXTURES.items() if parse_without_lane(data) != parse_bytes(data)]
    assert differ == []


@settings(max_examples=150)
@given(
    parts=st.lists(
        st.one_of(
            st.sampled_from([*_FRAGMENTS, "\n", "\n", "\x1b[0Ksection_start:1700000005:get_sources" + S, "  indented"]),
            st.text(max_size=8),
        ),
        max_size=80,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_the_lane_reads_what_the_per_line_path_reads(parts: list[str], cuts: list[int]) -> None:
    data = "".join(parts).encode("utf-8", "surrogatepass")
    assert parse_chunked(data, cuts) == parse_without_lane(data, cuts)


# Lines built the way the lane reads them: a per-line timestamp (valid or not), ANSI codes, then one or more pieces.
_LANE_STAMPS = ["", "", "2026-09-30T19:38:19.213893Z 00O ", "2026-09-30T19:38:19Z 01E+", "2026-13-30T19:38:19Z 00O "]
_LANE_CODES = ["", "", "\x1b[0K", "\x1b[32;1m", "\x1b(B"]
_LANE_PIECES = [
    "section_start:1700000000:step_script" + S,
    "section_start:1700000001:restore_cache" + S,
    "section_end:1700000002:restore_cache" + S,
    "section_start:1700000003:archive_cache[collapsed=true]" + S + "\x1b[0K\x1b[36;1mSaving cache",
    "section_end:1700000009:step_script" + S,
    "section_start:1700000004:user_part" + S,
    "section_end:1700000005:user_part" + S,
    "section_start:1700000006:get_sources",  # ends its line in a saved copy: the per-line path's rule
    *_RUNNER_LINES,
    "  Checking cache for indented...",
    "plain output section_ here",
    "\r",
    "\x1b[0K",
]


@settings(max_examples=200)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(_LANE_STAMPS),
            st.sampled_from(_LANE_CODES),
            st.lists(st.sampled_from(_LANE_PIECES), min_size=1, max_size=3),
        ),
        max_size=30,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=4),
)
def test_the_lane_reads_runner_lines_as_the_per_line_path(
    lines: list[tuple[str, str, list[str]]], cuts: list[int]
) -> None:
    data = "".join(stamp + codes + "".join(pieces) + "\n" for stamp, codes, pieces in lines).encode()
    assert parse_chunked(data, cuts) == parse_without_lane(data, cuts)


@pytest.mark.parametrize(
    "log",
    [
        # two markers on one line: the lane leaves the line to _line
        b"section_start:1:restore_cache\r\x1b[0Ksection_end:2:restore_cache\r\x1b[0K\nsection_start:3:x\r\n",
        # a runner line holding "section_": its marker is not at the line's head
        b"section_start:1:get_sources\r\x1b[0K\nChecking cache for a section_start:2:b\r\x1b[0K\n",
        # an original log (markers ended by \r) with a marker that ends its line: no section, whoever reads it
        b"\x1b[0Ksection_start:1:get_sources\r\x1b[0K\nsection_start:2:restore_cache\nsection_end:3:restore_cache\n",
        # a saved copy (markers end their lines): after a timestamp and CSI codes a marker counts, after others not
        b"section_start:1:get_sources\n\x1b[0Ksection_end:2:get_sources\n"
        b"2026-09-30T19:38:19.5Z 00O \x1b[36;1msection_start:3:restore_cache\n"
        b"\x1b(Bsection_end:4:restore_cache\nsection_end:5:restore_cache\n",
        # a marker that opens script output: the rest of its line is not read as a runner line
        b"section_start:1:step_script\r\x1b[0KChecking cache for k...\nChecking cache for j...\n",
        # a timestamp that names no instant: the marker's own seconds
        b"2026-02-30T10:00:00.5Z 00O section_start:7:get_sources\r\x1b[0K\n"
        b"2026-02-28T10:00:01Z 00O section_end:9:get_sources\r\n",
    ],
)
def test_the_lane_leaves_the_unusual_lines_to_the_per_line_path(log: bytes) -> None:
    assert parse_bytes(log) == parse_without_lane(log)


@pytest.mark.parametrize(
    ("line", "taken"),
    [
        (b"\x1b[0m" * 17 + b"Checking cache for k...\n", False),  # more codes than the lane reads
        (b"\x1b[" + b"1" * 33 + b"mChecking cache for k...\n", False),  # a code longer than the lane reads
        (b"\x1b[0m" * 16 + b"Checking cache for k...\n", True),  # as many as it reads
        (b"\x1b[" + b"1" * 32 + b"mChecking cache for k...\n", True),  # as long a code as it reads
    ],
)
def test_the_lane_reads_a_bounded_run_of_codes_and_leaves_longer_ones(line: bytes, taken: bool) -> None:
    # a line of a megabyte of codes would cost the lane's sre match much more than the per-line path's RE2 search
    parser = TraceParser()
    assert (parser._lane(line, 0, len(line)) == len(line)) == taken
    assert parse_bytes(line) == parse_without_lane(line)
    assert parse_bytes(line).cache == (CacheEvent("restore", "k", "unknown", None),)


# ---- the two engines of the runner-line search agree ----------------------------------------------------------


@settings(max_examples=150)
@given(
    pieces=st.lists(st.sampled_from([*_FRAGMENTS, "x" * 700, "plain line\n" * 40, "\nUsing ", "\n\x1b["]), max_size=80),
    pos=st.integers(min_value=0, max_value=40_000),
)
def test_re2_and_re_find_the_same_runner_lines(pieces: list[str], pos: int) -> None:
    from cidash import logparse

    buf = ("".join(pieces) + "y" * 20_000 + "".join(reversed(pieces))).encode()
    pos = min(pos, len(buf))
    m = logparse._NL_LINE_RE.search(buf, pos, len(buf))
    assert logparse._nl_line_search(buf, pos, len(buf)) == (-1 if m is None else m.start())
