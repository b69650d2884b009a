"""Streaming parser for GitLab job logs (traces): sections, start-up time, the job image and cache events.

Feed it bytes in chunks of any size (:class:`TraceParser`), or use :func:`parse_bytes` / :func:`parse_stream`.
It never keeps the whole log: only the unfinished last line is buffered, and that buffer is capped (see
``max_line``), so one pathological multi-megabyte line costs at most ``max_line`` + one chunk of memory.

How it stays fast: it does not look at every line in Python. Complete lines are scanned in C (``bytes.find``
and compiled regexes) for the few markers that matter, and only lines holding one are decoded and interpreted.
Inside script sections (``step_script``, ``build_script``, ``after_script``, user sections) the only marker that
matters is ``section_``, and every marker the runner writes ends in ``\\r``: the parser jumps from ``\\r`` to
``\\r`` (memchr). Cache and image lines are only read outside script sections, where the runner writes them (a
log with no sections at all is read that way throughout): there a runner line begins a line (after its per-line
timestamp and ANSI codes) or follows a ``\\r``, so the parser searches for "newline + a runner line's first
words" (sre; google-re2's DFA over long spans, :func:`_nl_line_search`), looks at each ``\\r`` (memchr), and
never runs a many-way alternation over every byte. What a runner line says is read once per distinct line
(:func:`_actions`, memoized: the runner writes a small fixed vocabulary) and applied to the parser's state
(``TraceParser._act``); a short log's cost is then mostly its ~20 header and footer lines and building the facts.
Those lines mostly come in two shapes, a section marker at the line's head and a line that begins like a runner
line: such a line is read in one regex match (``TraceParser._lane``), the same reading as the general per-line
path's (``TraceParser._line``), which takes every other line.

Rules and caveats (see ``gitlab-facts.md`` section 2 for the formats):

- It never raises on any byte sequence (``bench/fuzz_logparse.py``): a value it cannot use is unknown. A per-line
  timestamp that names no real instant (month 13, year 0, 25:00, before 1970) leaves its line without a time.
- Section markers count only when followed by the ``\\r\\x1b[0K`` the runner writes (the ``\\r`` is enough),
  so a script that merely echoes ``section_start:1:x`` opens nothing; names over 256 characters are ignored.
  In a saved copy whose ``\\r`` became newlines (browser saves, copy-paste) a marker ends its line instead: such a
  marker counts when only a per-line timestamp and ANSI codes precede it on its line, and only in a log whose
  first marker is of that kind (see ``TraceParser._eol_marker``); such a copy parses exactly like the original.
  ``section_end`` closes the most recent open section of that name; an end without a start is ignored.
  At most :data:`MAX_SECTIONS` sections and :data:`MAX_CACHE_EVENTS` cache events are kept.
- Times: the per-line timestamp (sub-second) of the marker's line when the log has them, else the marker's own
  unix seconds. ``startup_seconds`` = start of ``step_script`` (or ``build_script``) minus the first section's
  start.
- ``truncated``: the log ends inside an open section, or the runner's "Job's log exceeded limit" message appears
  in its last 4 KiB (the runner stores nothing after it; looking only there keeps a script that merely prints
  the sentence from counting, and saves a pass over the whole log).
- Cache: every ``Checking cache for K...`` is one restore attempt for K. A fallback key's attempt has
  ``detail="fallback"`` (:data:`FALLBACK`): the step-runner path says ``(fallback)``; ordinary runners print it
  like the main key, so an attempt right after one that missed or failed in the same ``restore_cache`` is read
  as a fallback, unless the job archives that key (a job archives its caches under their main keys: it is then
  the next cache's main key). :func:`restores` groups attempts into one restore per cache. The first result line
  after an attempt decides its outcome; an attempt whose result never appears stays ``unknown``. ``file does not
  exist`` (a ``WARNING:``, or a ``FATAL:`` on runners up to 14.9 with a distributed cache) + ``Failed to extract
  cache`` is a miss; ``Failed to extract cache`` alone, or after another ``FATAL:``, is ``failed``. Runners
  before 16.10 printed ``Successfully extracted cache`` even for a missing *local* cache: such a restore reads as
  a hit (the log cannot tell).
  ``Cache archive size ... is too big`` is ``failed`` with detail ``"too big"``: the archive is not uploaded to
  the shared cache, so other runners never see it, even if a later ``Created cache`` says it was kept locally.
- Executor: the runner's own name from ``Preparing the "<name>" executor`` (``docker+machine``,
  ``docker-autoscaler``, ``kubernetes``, ``shell``, ...); without that line (runners 10.x-11.x), the lower-cased
  word of ``Using <X> executor`` (``Using Shell (pwsh) executor`` is ``shell``).
- Image: the executor line (``Using Docker executor with image X``) names the job image; ``Pulling docker
  image X`` means pulled, ``Using locally found image version`` before ``Using docker image ... for X`` means
  found locally; otherwise ``pulled`` is None (always for kubernetes, whose log does not say).
- Lines longer than ``max_line`` are cut at their last ``\\r`` (progress bars), so markers in them still
  count; if a line has no ``\\r`` at all, its middle is dropped.
- Runner lines (cache, image, version) count where the runner writes them: at the start of a line (after its
  per-line timestamp) or after a ``\\r``, behind ANSI codes at most; indented or mid-line look-alikes do not, nor
  does a runner line's wording cut by an ANSI code (``Runni\\x1b[0mng with``: the runner never writes that).
- Per-line timestamp continuation lines (``00O+``: the runner flushed part of a line, e.g. a helper
  container's output read in pieces) are joined to the line they continue, so a cache line or a section marker
  split that way still reads whole. One that starts with a section marker (the runner writes
  ``section_end...\n<ts> 00O+section_start...``) stays a line of its own, keeping its own timestamp.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO, Final

try:  # google-re2 (a dependency); without it the same searches run in `re`, only slower
    import re2 as _re2
except ImportError:  # pragma: no cover - the wheel exists for every platform cidash supports
    _re2 = None

from cidash.models import (
    PHASES,
    STARTUP_SECTION_PHASES,
    CacheEvent,
    CacheOp,
    CacheOutcome,
    ImageRef,
    Section,
    TraceFacts,
)

__all__ = [
    "FALLBACK",
    "MAX_CACHE_EVENTS",
    "MAX_SECTIONS",
    "PHASES",
    "SECTION_PHASES",
    "Restore",
    "TraceParser",
    "facts_from_dict",
    "facts_to_dict",
    "parse_bytes",
    "parse_stream",
    "phase_durations",
    "phase_of",
    "restores",
]

MAX_SECTIONS: Final = 10_000
MAX_CACHE_EVENTS: Final = 1_000
#: ``CacheEvent.detail`` of a restore attempt on a fallback key (``cache:fallback_keys`` or ``CACHE_FALLBACK_KEY``).
FALLBACK: Final = "fallback"
DEFAULT_MAX_LINE: Final = 64 * 1024
_MIN_MAX_LINE: Final = 4096
_KEEP: Final = 1024  # bytes kept from a line with no \r that outgrew max_line

#: Runner section name -> start-up phase. :func:`phase_of` also maps ``step_*``, ``archive_cache*`` and
#: ``upload_artifacts_*``; user sections belong to no phase.
SECTION_PHASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **STARTUP_SECTION_PHASES,  # the start-up phases' sections, which the store sums too (schema version 9)
        "step_script": "script",
        "build_script": "script",
        "after_script": "upload",
        "archive_cache": "upload",
        "archive_cache_on_failure": "upload",
        "upload_artifacts": "upload",  # runners 10.x-11.x
        "upload_artifacts_on_success": "upload",
        "upload_artifacts_on_failure": "upload",
        "cleanup_file_variables": "upload",
    }
)

# Sections whose lines are runner lines (cache, image, ...): everything else is script output.
_RUNNER_SECTIONS: Final = frozenset(
    {
        "resolve_secrets",
        "prepare_executor",
        "prepare_script",
        "get_sources",
        "clear_worktree",
        "restore_cache",
        "download_artifacts",
        "cleanup_file_variables",
    }
)
_RUNNER_PREFIXES: Final = ("archive_cache", "upload_artifacts")
_SCRIPT_STARTS: Final = ("step_script", "build_script")

# A marker ends at the \r the runner writes after it, or (in a saved copy whose \r became newlines) at the end of
# its line; the second form needs checking (see TraceParser._eol_marker).
_MARKER: Final = rb"section_(start|end):(\d{1,12}):([A-Za-z0-9_.\-]{1,256})(?:\[[^\]\r\n]{0,256}\])?(?=[\r\n])"
_SECTION_RE: Final = re.compile(_MARKER)
_MARKER_HEADS: Final = (b"section_start:", b"section_end:")
_ANSI_ONLY_RE: Final = re.compile(rb"(?:\x1b\[[0-9;?]*[ -/]*[@-~])*")
_TS_RE: Final = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?Z [0-9a-f]{2}[OE][ +]")
# "\n" + a continuation prefix, unless a section marker follows (that one keeps its own line and timestamp).
_CONT_RE: Final = re.compile(
    rb"\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z [0-9a-f]{2}[OE]\+(?!(?:\x1b\[0K)?section_)"
)
_CONT_HOLD: Final = 48  # bytes after a chunk's last "\n" that decide whether the next line is a continuation
_ANSI_RE: Final = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b")


def _re2_options() -> Any:
    options = _re2.Options()
    options.encoding = _re2.Options.Encoding.LATIN1  # bytes, not UTF-8: any byte is one character
    return options


# Where a runner line (cache, image, version) or a section marker can begin: a part of a line (its start, after its
# per-line timestamp, or after a \r), then ANSI codes (what _text() strips), then a marker the runner writes. Only
# lines holding one are decoded and interpreted (plus lines holding a marker the runner ended with \r, see
# _cr_candidate). Searching for the "\n" (a literal: sre skips to it at C speed) and rejecting most lines on their
# first byte is several times faster than searching every byte for 18 alternatives.
_PART_CODES: Final = rb"(?:\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b)*"
_PART_TOKENS: Final = (
    rb"C(?:hecking cache|reating cache|reated cache|ache archive size)|U(?:sing )|R(?:unning with)"
    rb"|P(?:ulling docker|reparing the )|S(?:uccessfully extracted|kipping cache)|F(?:ailed to |ATAL: )"
    rb"|W(?:ARNING: )|E(?:RROR: )|N(?:ot downloading|ot uploading)|A(?:rchive is up to date)"
)
_TS_SECOND: Final = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"  # a per-line timestamp to the second, its fraction, its stream
_TS_FRACTION: Final = rb"\.\d{1,9}"
_TS_STREAM: Final = rb"Z [0-9a-f]{2}[OE][ +]"
_PART_TS: Final = rb"(?:" + _TS_SECOND + rb"(?:" + _TS_FRACTION + rb")?" + _TS_STREAM + rb")?"
_LINE_HEAD: Final = _PART_TS + _PART_CODES + rb"(?:" + _PART_TOKENS + rb"|section_)"
#: "\n" + a line that begins like a runner line or a marker (the lookahead rejects most lines on one byte)
_NL_LINE_RE: Final = re.compile(rb"\n(?=[0-9\x1bCURPSFWENAs])" + _LINE_HEAD)
_LINE_RE: Final = re.compile(_LINE_HEAD)  # the same at a region's first line
#: The same search in RE2 (no lookahead there; its DFA needs none), for long spans: see _nl_line_search.
_NL_LINE_RE2: Final = None if _re2 is None else _re2.compile(b"\n" + _LINE_HEAD, _re2_options())
_RE2_MIN: Final = 16 * 1024  # shorter spans go to `re` alone: a call into RE2 costs ~3 us, sre's ~0.4 us
_SRE_WINDOW: Final = 2048
_CR_PART_RE: Final = re.compile(_PART_CODES + rb"(?:" + _PART_TOKENS + rb")")  # the part after a \r
_CR_PART_SEARCH_RE: Final = re.compile(rb"\r" + _PART_CODES + rb"(?:" + _PART_TOKENS + rb")")
_SECTION_CR_RE: Final = re.compile(rb"section_(?:start|end):\d{1,12}:[A-Za-z0-9_.\-]{1,256}(?:\[[^\]\r\n]{0,256}\])?\r")
_LIMIT: Final = b"Job's log exceeded limit"
_LAST_BYTES: Final = 4096
_MARKER_MAX: Final = 600  # longest marker the regex accepts, "section_start:" to the end of its options
_CR_MISSES: Final = 32  # \r that end no marker, per region, before scanning script output for "section_"

_RUNNING_RE: Final = re.compile(r"Running with gitlab-(?:ci-multi-)?runner (\S+)")
_EXECUTOR_RE: Final = re.compile(r"Using ([A-Za-z][\w+ ().-]{0,40}?) executor\b(?:.*? with image (\S+))?")
_DOCKER_IMAGE_RE: Final = re.compile(r"Using docker image (\S+) for (\S+?)(?: with digest (\S+?))?(?: \.\.\.)?$")
# Runner 10.x: "Using docker image ruby:2.5 ID=sha256:... for build container..." (or without the ID); the
# helper's "for predefined container" and services' "for service container" lines are not the job image.
_DOCKER_IMAGE_OLD_RE: Final = re.compile(r"Using docker image (\S+) (?:ID=(\S+) )?for build container")
_PULLING_RE: Final = re.compile(r"Pulling docker image (\S+?)(?: for platform \S+)?(?: \.\.\.)?$")
_PREPARING_RE: Final = re.compile(r'Preparing the "([A-Za-z0-9][A-Za-z0-9+_.-]{0,63})" executor')
_LEVELS: Final = ("WARNING: ", "ERROR: ", "FATAL: ")  # runner-line prefixes, stripped before reading the line
_TOO_BIG_RE: Final = re.compile(r"Cache archive size \(\d+\) is too big")

# A whole runner line of the two usual shapes in one match (TraceParser._lane): a section marker (ended by the
# runner's \r, or by the line's end in a saved copy), or a line that begins like a runner line (:data:`_LINE_HEAD`'s
# tokens), each after the line's per-line timestamp and ANSI codes. Groups: 1 the timestamp, 2 its date and time
# to the second, 3 its fraction (as _TS_RE), 4-6 the marker's kind, seconds and name (as _SECTION_RE), 7 the rest
# of the line before its "\n" (from the marker's end).
_LANE_RE: Final = re.compile(
    rb"(("
    + _TS_SECOND
    + rb")("
    + _TS_FRACTION
    + rb")?"
    + _TS_STREAM
    + rb")?"
    # _PART_CODES, bounded: a line with a longer run of codes, or longer codes, is left to the per-line path (which
    # searches long spans with RE2); what the lane does take, it reads as that path would
    + rb"(?:\x1b\[[0-9;?]{0,32}[ -/]{0,4}[@-~]|\x1b[()][0-9A-Za-z]|\x1b){0,16}"
    + rb"(?:"
    + _MARKER
    + rb"|(?="
    + _PART_TOKENS
    + rb"))([^\n]*)\n"
)


def _nl_line_search(buf: bytes, pos: int, end: int) -> int:
    """Index of the first "\\n" in buf[pos:end] that begins a line looking like a runner line or a marker
    (:data:`_NL_LINE_RE`), or -1.

    sre stops at every "\\n" to try the pattern; RE2's DFA does not, and is about 4x faster over long spans, but a
    call costs ~3 us. So the first :data:`_SRE_WINDOW` bytes go to sre (runner lines come in runs: the next is
    usually near), the rest to RE2 when it is installed. Both find the same matches: the pattern has only
    literals, byte classes and bounded repeats (RE2 reads bytes as Latin-1), and a match holds no "\\n" but its
    first byte, so none can straddle the window's end unnoticed."""
    if _NL_LINE_RE2 is None or end - pos < _RE2_MIN:
        m = _NL_LINE_RE.search(buf, pos, end)
        return -1 if m is None else m.start()
    window = pos + _SRE_WINDOW
    m = _NL_LINE_RE.search(buf, pos, window)
    if m is not None:
        return m.start()
    nl = buf.rfind(b"\n", pos, window)  # a match cut by the window's end starts at its last "\n"
    m2 = _NL_LINE_RE2.search(buf, nl if nl >= 0 else window, end)
    return -1 if m2 is None else int(m2.start())


_Action = tuple[Any, ...]  # (what, arguments...): see _action and TraceParser._act


def _actions(raw: bytes) -> tuple[_Action, ...]:
    """What a piece of a line says as runner lines: ANSI codes stripped, split at \\r, trailing blanks and a
    ``WARNING: ``/``ERROR: ``/``FATAL: `` level dropped, indented parts left out (see :data:`_LINE_HEAD`), each
    part read by :func:`_action`. A pure function of ``raw``: memoized in :data:`_ACTIONS`."""
    clean = _ANSI_RE.sub(b"", raw) if b"\x1b" in raw else raw
    out: list[_Action] = []
    for part in clean.split(b"\r"):
        text = part.rstrip()
        if text and text[0] not in b" \t\x0b\x0c":  # indented: not a runner line
            body = text.decode("utf-8", "replace")  # (no surrogates: "replace" makes U+FFFD of what is not UTF-8)
            if b"\x00" in text:  # what no store can hold (cidash.textsafe.storable), as GitLab's strings
                body = body.replace("\x00", "\ufffd")
            if body.startswith(_LEVELS):
                body = body.partition(": ")[2].strip()
            action = _action(body)
            if action is not None:
                out.append(action)
    return tuple(out)


def _action(body: str) -> _Action | None:
    """What one runner line says, whatever came before it (the parser's state decides what it does with it)."""
    first = body[:1]
    if first == "C":
        return _c_action(body)
    if first == "U":
        return _using_action(body)
    if body.startswith("Running with gitlab-"):
        m = _RUNNING_RE.match(body)
        return None if m is None else ("running", m.group(1))
    if body.startswith("Preparing the "):
        m = _PREPARING_RE.match(body)
        return None if m is None else ("preparing", m.group(1))
    if body.startswith("Pulling docker image "):
        m = _PULLING_RE.match(body)
        return None if m is None else ("pulling", m.group(1))
    if body == "Successfully extracted cache":
        return ("hit",)
    if body == "file does not exist":
        return ("missing",)
    if body.startswith("Failed to extract cache"):
        return ("extract_failed",)
    if body.startswith("Failed to create cache"):
        return ("create_failed",)
    if body.startswith("Not downloading cache ") and body.endswith(" due to policy"):
        return ("skip_restore", body[len("Not downloading cache ") : -len(" due to policy")])
    if body.startswith("Not uploading cache ") and body.endswith(" due to policy"):
        return ("skip_archive", body[len("Not uploading cache ") : -len(" due to policy")])
    if body.startswith("Skipping cache extraction due to empty cache key"):
        return ("empty_restore",)
    if body.startswith("Skipping cache archiving due to empty cache key"):
        return ("empty_archive",)
    if body.startswith("Archive is up to date"):
        return ("up_to_date",)
    if body.startswith("No files to cache"):
        return ("no_files",)
    return None


def _c_action(body: str) -> _Action | None:
    if body.startswith("Checking cache for "):
        key = body[len("Checking cache for ") :]
        if key.endswith("..."):
            key = key[:-3]
        said_fallback = key.endswith(" (fallback)")
        if said_fallback:
            key = key[: -len(" (fallback)")]
        return ("check", key, said_fallback)
    if body.startswith("Creating cache "):
        key = body[len("Creating cache ") :]
        if key.endswith("..."):
            key = key[:-3]
        return ("create", key)
    if body.startswith("Created cache"):
        return ("created",)
    if body.startswith("Cache archive size") and _TOO_BIG_RE.match(body):
        return ("too_big",)
    if body == "Cache file does not exist":
        return ("missing",)
    return None


def _using_action(body: str) -> _Action | None:
    if body.startswith("Using docker image "):
        m = _DOCKER_IMAGE_RE.match(body)
        if m is not None:
            return ("image", m.group(2), m.group(1), m.group(3), False)
        old = _DOCKER_IMAGE_OLD_RE.match(body)
        if old is None:
            return None
        name, image_id = old.group(1), old.group(2)
        if name.startswith("sha256:") and image_id is None:  # "Using docker image sha256:... for build"
            return None
        return ("image", name, image_id, None, True)
    if body.startswith("Using locally found image version"):
        return ("local",)
    m = _EXECUTOR_RE.match(body)
    if m is None:
        return None
    # "Using Shell (pwsh) executor...": the executor is "shell"
    kind = re.sub(r"\s*\(.*?\)", "", m.group(1)).strip().lower()
    return ("executor", kind.replace(" ", "-") or None, m.group(2) or None)


# The runner writes a small vocabulary of fixed lines ("Created cache", "Using Docker executor with image X ...",
# the text after a marker): each piece is read once (a dict look-up costs ~0.05 us, reading it 1-8 us).
_ACTIONS: dict[bytes, tuple[_Action, ...]] = {}
_ACTIONS_MAX: Final = 4096  # entries; cleared when full (a dict's get/set are atomic: threads may share it)
_ACTIONS_KEY_MAX: Final = 512  # longer pieces are not kept (memory stays under ~3 MiB)


_MIN_YEAR: Final = 1970  # earlier per-line timestamps are not a runner's (and unix time cannot hold them usefully)
_MINUTES: dict[bytes, int | None] = {}  # "YYYY-MM-DDTHH:MM" -> unix time, None if no such minute


def _minute(text: bytes) -> int | None:
    """Unix time of a timestamp's minute ("YYYY-MM-DDTHH:MM", digits where the regexes put them), or None if there
    is no such minute (month 13, year 0, 25:00, before 1970). Memoized: a job's lines fall in a few minutes."""
    t = _MINUTES.get(text, -1)
    if t == -1:
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
        hour, minute = int(text[11:13]), int(text[14:16])
        real = year >= _MIN_YEAR and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
        real = real and hour <= 23 and minute <= 59
        t = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)) if real else None
        if len(_MINUTES) >= 4096:
            _MINUTES.clear()
        _MINUTES[text] = t
    return t


def _ts_value(second: bytes, frac: bytes | None) -> float | None:
    """A per-line timestamp's unix time from its "YYYY-MM-DDTHH:MM:SS" and fraction, or None if it names no real
    instant: such a line then has no usable timestamp, like a log without them."""
    base = _minute(second[:16])
    sec = int(second[17:19])
    if base is None or sec > 60:  # 60: a leap second
        return None
    t = base + sec
    return t + float(frac) if frac else float(t)


def _parse_ts(m: re.Match[bytes]) -> float | None:
    """:func:`_ts_value` of a :data:`_TS_RE` match."""
    return _ts_value(m[0][:19], m[7])


def _join_continuations(buf: bytes) -> bytes:
    """buf without the "\\n" + prefix of its per-line timestamp continuation lines (see :data:`_CONT_RE`).

    A continuation prefix ends in "+", rare in logs: memchr-speed finds of "+" keep this off the profile."""
    plus = buf.find(b"+")
    if plus < 0:
        return buf
    pieces: list[bytes] = []
    last = 0
    while plus >= 0:
        # "...Z 00O+": a cheap look at the bytes before the "+" first, the regex only for real candidates
        if plus >= 5 and buf[plus - 1] in b"OE" and buf[plus - 4] == 32 and buf[plus - 5] == 90:
            nl = buf.rfind(b"\n", max(last, plus - 40), plus)
            m = _CONT_RE.match(buf, nl) if nl >= 0 else None
            if m is not None and m.end() == plus + 1:
                pieces.append(buf[last:nl])
                last = plus + 1
        plus = buf.find(b"+", plus + 1)
    if not pieces:
        return buf
    pieces.append(buf[last:])
    return b"".join(pieces)


def _is_script(name: str) -> bool:
    return name not in _RUNNER_SECTIONS and not name.startswith(_RUNNER_PREFIXES)


# A section name's bytes -> (its text, whether it is script output): the same few names come back in every log.
_NAMES: dict[bytes, tuple[str, bool]] = {}


def _name_facts(raw: bytes) -> tuple[str, bool]:
    name = raw.decode("ascii")
    facts = (name, _is_script(name))
    if len(_NAMES) >= 4096:
        _NAMES.clear()
    _NAMES[raw] = facts
    return facts


def phase_of(section_name: str) -> str | None:
    """The start-up phase a runner section belongs to, or None for user sections."""
    phase = SECTION_PHASES.get(section_name)
    if phase is not None:
        return phase
    if section_name.startswith("step_"):
        return "script"
    if section_name.startswith(_RUNNER_PREFIXES):
        return "upload"
    return None


def phase_durations(facts: TraceFacts) -> dict[str, float]:
    """Seconds spent per phase (:data:`PHASES` order), summing closed runner sections; user sections and
    sections never closed are left out, and so are phases with no closed section."""
    totals: dict[str, float] = {}
    for section in facts.sections:
        phase = phase_of(section.name)
        if phase is None or section.duration is None:
            continue
        totals[phase] = totals.get(phase, 0.0) + section.duration
    return {phase: totals[phase] for phase in PHASES if phase in totals}


class _Event:
    __slots__ = ("detail", "inferred", "key", "op", "outcome", "saw_missing")

    def __init__(self, op: CacheOp, key: str, outcome: CacheOutcome = "unknown", detail: str | None = None) -> None:
        self.op: CacheOp = op
        self.key = key
        self.outcome: CacheOutcome = outcome
        self.detail = detail
        self.saw_missing = False
        self.inferred = False  # a fallback attempt told by its place, not by "(fallback)"


class TraceParser:
    """Incremental job-log parser: ``feed()`` chunks of any size, then ``finish()`` once."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max(max_line, _MIN_MAX_LINE)
        self._tail = bytearray()  # the unfinished last line (a bytearray: tiny chunks append in O(1))
        self._cont = False  # the first line of the next region continues a line cut by the line cap
        self._carry_ts: float | None = None  # per-line timestamp of that cut line
        self._held = b""  # the last "\n" fed and what follows it, until the next line is known not to continue
        self._finished = False
        self._bulk = False  # inside a script section: only section markers matter
        # the log is a saved copy whose \r became newlines: None until the first marker says (see _eol_marker)
        self._stripped: bool | None = None
        self._cr_misses = 0  # \r in this region outside script output that began no runner line (_cr_candidate)
        self._executor_named = False  # the executor came from 'Preparing the "X" executor' (it outranks "Using")
        self._limit_hit = False
        self._last = b""  # the last _LAST_BYTES bytes fed, where the runner's limit message would be
        self._runner_version: str | None = None
        self._executor: str | None = None
        self._sections: list[list[Any]] = []  # [name, start, end, script output?]
        self._open: list[int] = []  # indexes into _sections, innermost last; closed ones below the top linger
        self._n_open = 0
        self._open_by_name: dict[str, list[int]] = {}
        self._first_start: float | None = None
        self._script_start: float | None = None
        self._image_name: str | None = None
        self._image_id: str | None = None
        self._image_digest: str | None = None
        self._image_pulled: bool | None = None
        self._local_pending = False
        self._events: list[_Event] = []
        self._restore: _Event | None = None
        self._archive: _Event | None = None

    # -- bytes in ---------------------------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes held for a line not complete yet: at most ``max_line`` plus the last chunk fed, so a log's memory
        does not grow with a line that never ends (a progress bar, a binary dump)."""
        return len(self._tail)

    def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the log. Never raises on malformed input."""
        if self._finished:
            raise RuntimeError("TraceParser.feed() after finish()")
        if not chunk:
            return
        if len(chunk) >= _LAST_BYTES:
            self._last = chunk[-_LAST_BYTES:]
        else:
            self._last = (self._last + chunk)[-_LAST_BYTES:]
        chunk = chunk if type(chunk) is bytes else bytes(chunk)
        if self._held:
            chunk = self._held + chunk
        nl = chunk.rfind(b"\n")
        if nl >= 0 and len(chunk) - nl <= _CONT_HOLD:  # too little seen after it to tell
            self._held = chunk[nl:]
            chunk = chunk[:nl]
        else:
            self._held = b""
        self._feed(_join_continuations(chunk))

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        last_nl = chunk.rfind(b"\n")
        if last_nl < 0:
            self._tail += chunk
        else:
            begin = 0
            if self._tail or self._cont:  # finish the line left open, without copying the whole chunk
                begin = chunk.find(b"\n") + 1
                head = bytes(self._tail) + chunk[:begin]
                self._region(head, 0, len(head))
            self._cont = False
            self._region(chunk, begin, last_nl + 1)
            self._tail = bytearray(chunk[last_nl + 1 :])
        if len(self._tail) > self._max_line:
            self._overflow()

    def finish(self) -> TraceFacts:
        """Parse what is left and return the facts. The parser cannot be fed afterwards."""
        if not self._finished:
            if _LIMIT in self._last:
                self._limit_hit = True
            if self._held:
                held, self._held = self._held, b""
                self._feed(_join_continuations(held))
            if self._tail:
                last = bytes(self._tail) + b"\n"
                self._tail = bytearray()
                self._region(last, 0, len(last))
            self._finished = True
        return self._facts()

    def _overflow(self) -> None:
        tail = bytes(self._tail)
        if not self._cont:
            m = _TS_RE.match(tail)
            self._carry_ts = _parse_ts(m) if m else None
        cr = tail.rfind(b"\r")
        if cr >= 0:
            self._region(tail, 0, cr + 1)
            self._cont = True
            tail = tail[cr + 1 :]
        if len(tail) > self._max_line:
            cut = len(tail) - _KEEP
            tail = tail[cut:]
            self._cont = True
        self._tail = bytearray(tail)

    def _region(self, buf: bytes, start: int, end: int) -> None:
        """Interpret buf[start:end]: whole lines, except that the last may be a piece cut at a \\r."""
        pos = start
        self._cr_misses = 0
        nl_search = _NL_LINE_RE.search
        find = buf.find
        nl_hit = -2  # the next line start that looks like a runner line: -2 not searched yet, -1 none left
        next_cr = -2  # the next \r at or after pos - 1: -2 not searched yet, end if none
        while pos < end:
            if self._bulk:  # script output: only section markers matter
                pos = self._scan_script(buf, start, pos, end)
                continue
            low = pos - 1 if pos > 0 else 0
            if (pos == 0 or buf[low] != 10) and _LINE_RE.match(buf, pos, end) is not None:
                hit = line_start = pos  # a region's first line, or what follows a marker that ended script output
            else:
                if nl_hit < pos and nl_hit != -1:
                    if end - low < _RE2_MIN:  # _nl_line_search's short case inlined: the common one, per line
                        m = nl_search(buf, low, end)
                        nl_hit = -1 if m is None else m.start() + 1
                    else:
                        nl_hit = _nl_line_search(buf, low, end)
                        if nl_hit >= 0:
                            nl_hit += 1
                hit = line_start = end if nl_hit < 0 else nl_hit
                if next_cr < low:
                    next_cr = find(b"\r", low, end)
                    if next_cr < 0:
                        next_cr = end
                if next_cr < hit:  # a \r before that line (the \r in that line itself never need a look)
                    cr_hit = self._cr_candidate(buf, pos, hit, next_cr)
                    if cr_hit >= 0:
                        hit = cr_hit
                        nl = buf.rfind(b"\n", pos, hit)
                        line_start = nl + 1 if nl >= 0 else pos
                if hit >= end:
                    return
            if hit == line_start and (buf[hit - 1] == 10 if hit > start else not self._cont):
                lane_end = self._lane(buf, hit, end)
                if lane_end > hit:
                    pos = lane_end
                    continue
            nl = find(b"\n", hit, end)
            line_end = end if nl < 0 else nl + 1
            self._line(buf, start, line_start, line_end)
            pos = line_end

    def _cr_candidate(self, buf: bytes, pos: int, end: int, cr: int) -> int:
        """Where the first \\r at or after pos (but the one at pos - 1 too) starts a runner part or ends a section
        marker: the \\r's index, or the marker's; -1 if none. \\r is rare outside CRLF logs and progress bars:
        each is looked at (memchr speed); a region full of them is searched with two regexes instead."""
        find = buf.find
        low = cr
        if self._cr_misses < _CR_MISSES:
            part = _CR_PART_RE.match
            marker = _SECTION_CR_RE.match
            rfind = buf.rfind
            while cr >= 0:
                if part(buf, cr + 1, end) is not None:
                    return cr
                back = cr - _MARKER_MAX if cr - _MARKER_MAX > pos else pos
                at = rfind(b"section_", back, cr)
                while at >= 0:
                    sm = marker(buf, at, cr + 1)
                    if sm is not None and sm.end() == cr + 1:
                        return at
                    at = rfind(b"section_", back, at)
                self._cr_misses += 1
                if self._cr_misses >= _CR_MISSES:
                    break
                cr = find(b"\r", cr + 1, end)
            else:
                return -1
            low = cr
        m = _CR_PART_SEARCH_RE.search(buf, low, end)
        sm = _SECTION_CR_RE.search(buf, pos, end)
        if m is None:
            return -1 if sm is None else sm.start()
        return m.start() if sm is None or m.start() < sm.start() else sm.start()

    def _scan_script(self, buf: bytes, start: int, pos: int, end: int) -> int:
        """Handle the section markers in buf[pos:end] while in script output; return where the script output
        ends (a marker switched to runner lines) or ``end``.

        Every marker is followed by ``\\r``, which is rare in script output: jumping from ``\\r`` to ``\\r``
        (memchr speed) and looking back for the marker is several times faster than searching for
        ``section_``. Output full of ``\\r`` (CRLF, progress bars) falls back to searching for ``section_``
        after a few misses. Both find exactly the same markers."""
        find = buf.find
        rfind = buf.rfind
        match = _SECTION_RE.match
        misses = _CR_MISSES if self._stripped else 0  # a saved copy has no \r: search for "section_" at once
        while misses < _CR_MISSES:
            cr = find(b"\r", pos, end)
            if cr < 0:
                return end
            low = cr - _MARKER_MAX if cr - _MARKER_MAX > pos else pos
            at = rfind(b"section_", low, cr)
            while at >= 0:
                sm = match(buf, at, cr + 1)
                if sm is not None and sm.end() == cr:
                    self._section(sm[1], sm[2], sm[3], self._line_ts(buf, start, at))
                    break
                at = rfind(b"section_", low, at)
            pos = cr + 1
            if at < 0:
                misses += 1
            elif not self._bulk:
                return pos
        while True:
            at = find(b"section_", pos, end)
            if at < 0:
                return end
            # "my_section_name" in script output (rejected before the regex), or an unterminated look-alike
            sm = (
                match(buf, at, at + _MARKER_MAX if at + _MARKER_MAX < end else end)  # bounded: faster
                if buf.startswith(_MARKER_HEADS, at)
                else None
            )
            if sm is None:
                pos = at + 8
                continue
            after = sm.end()
            if after < len(buf) and buf[after] == 13:  # ended by the runner's \r (see _accept)
                if self._stripped is None:
                    self._stripped = False
                ts = self._line_ts(buf, start, at)
            else:  # ends its line: _eol_marker's rule, and the line's time from the same look at it
                accepted, ts = self._eol_marker_ts(buf, start, at)
                if not accepted:
                    pos = at + 8
                    continue
            self._section(sm[1], sm[2], sm[3], ts)
            pos = after
            if not self._bulk:
                return pos

    def _line_ts(self, buf: bytes, start: int, pos: int) -> float | None:
        """The per-line timestamp of the line holding buf[pos] (None if the log has none)."""
        nl = buf.rfind(b"\n", start, pos)
        if nl < 0 and self._cont:
            return self._carry_ts
        m = _TS_RE.match(buf, nl + 1 if nl >= 0 else start)
        return _parse_ts(m) if m is not None else None

    # -- one interesting line ---------------------------------------------------------------------------------

    def _lane(self, buf: bytes, pos: int, end: int) -> int:
        """Interpret the runner lines from buf[pos] (a line's start) while each has one of the two usual shapes
        (:data:`_LANE_RE`) and no other ``section_`` in it, one match a line, exactly as :meth:`_line` would;
        return where it stopped: the first line left to :meth:`_line` (``pos`` if none was taken), the start of
        a line that does not look like a runner line, or the end of a marker that began script output."""
        match = _LANE_RE.match
        find = buf.find
        while pos < end:
            m = match(buf, pos, end)
            if m is None:
                return pos
            line_end = m.end()
            ts_text, second, frac, kind, secs, raw_name, rest = m.groups()
            if kind is None:  # a runner line: what follows its timestamp is read as runner text
                body = pos if ts_text is None else pos + len(ts_text)
                if find(b"section_", body, line_end) >= 0:
                    return pos
                self._text(buf[body:line_end])
            else:  # a marker at the line's head, the rest of its line after it
                after = line_end - len(rest) - 1
                if find(b"section_", after, line_end) >= 0:
                    return pos
                if buf[after] == 13:  # ended by the runner's \r: the log is an original
                    if self._stripped is None:
                        self._stripped = False
                elif self._stripped is False:  # ends its line in an original log: not a marker (_eol_marker), and
                    pos = line_end  # a line of nothing but it says nothing as a runner line either
                    continue
                else:  # a saved copy's marker: only a timestamp and ANSI codes before it (_eol_marker's rule)
                    body = pos if ts_text is None else pos + len(ts_text)
                    at = m.start(4) - 8  # "section_"
                    if at > body:
                        codes = _ANSI_ONLY_RE.match(buf, body, at)
                        if codes is None or codes.end() != at:
                            return pos
                    self._stripped = True
                ts = None if second is None else _ts_value(second, frac)
                self._section(kind, secs, raw_name, ts)
                if self._bulk:
                    return line_end
                self._text(buf[after:line_end])
            pos = line_end
        return pos

    def _line(self, buf: bytes, start: int, pos: int, end: int) -> None:
        """Interpret buf[pos:end], the rest of a line that begins at or before pos (and not before start)."""
        # at the line's start: right after a "\n", or at the region's start unless that continues a cut line
        at_start = buf[pos - 1] == 10 if pos > start else not self._cont
        m = None
        if at_start and pos < end and 48 <= buf[pos] <= 57:  # a per-line timestamp begins with a digit
            m = _TS_RE.match(buf, pos, end)
            if m is not None:
                pos = m.end()
        last = pos
        if buf.find(b"section_", pos, end) >= 0:
            # the line's time, worked out at its first marker (most runner lines have none)
            ts: float | None = None
            timed = False
            for sm in _SECTION_RE.finditer(buf, pos, end):
                at, after = sm.span()
                if after < len(buf) and buf[after] == 13:  # ended by the runner's \r: _accept's rule, inlined
                    if self._stripped is None:
                        self._stripped = False
                elif not self._eol_marker(buf, start, at):
                    continue
                if not self._bulk and at > last:
                    self._text(buf[last:at])
                if not timed:
                    if not at_start:
                        ts = self._line_ts(buf, start, pos)
                    elif m is not None:
                        ts = _parse_ts(m)
                    timed = True
                self._section(sm[1], sm[2], sm[3], ts)
                last = after
        if not self._bulk and last < end:
            self._text(buf[last:end])

    def _accept(self, buf: bytes, start: int, sm: re.Match[bytes]) -> bool:
        """Whether a marker match counts: one the runner terminated with \\r always does (and tells that the log
        is an original); one that ends its line counts only by :meth:`_eol_marker`'s rule."""
        end = sm.end()
        if end < len(buf) and buf[end] == 13:  # \r
            if self._stripped is None:
                self._stripped = False
            return True
        return self._eol_marker(buf, start, sm.start())

    def _eol_marker(self, buf: bytes, start: int, at: int) -> bool:
        """A marker at buf[at] that ends its line (a saved copy turned the runner's \\r into a newline) counts when
        nothing but a per-line timestamp and ANSI codes precede it on its line (a script's echoed look-alike sits
        mid-line), and only in a log whose first marker was of this kind: in an original log every runner marker
        ends in \\r, so a line that merely prints ``section_start:...`` there stays script output."""
        return self._eol_marker_ts(buf, start, at, want_ts=False)[0]

    def _eol_marker_ts(self, buf: bytes, start: int, at: int, *, want_ts: bool = True) -> tuple[bool, float | None]:
        """:meth:`_eol_marker` and, if the marker counts and ``want_ts``, :meth:`_line_ts` of its line, from one
        look at it."""
        if self._stripped is False:
            return False, None
        # the usual places first: the line's start, or right after the runner's "\x1b[0K" at its start: no
        # per-line timestamp before the marker then
        if at > start and buf[at - 1] == 10:
            self._stripped = True
            return True, None
        if at - 5 >= start and buf[at - 5] == 10 and buf.startswith(b"\x1b[0K", at - 4):
            self._stripped = True
            return True, None
        nl = buf.rfind(b"\n", start, at)
        if nl < 0 and self._cont:  # the line began in an earlier piece (cut at a \\r): not at its start
            return False, None
        line_start = nl + 1 if nl >= 0 else start
        ts = None
        if line_start < at:
            m = _TS_RE.match(buf, line_start, at)
            if m is not None:
                line_start = m.end()
            codes = _ANSI_ONLY_RE.match(buf, line_start, at)
            if codes is None or codes.end() != at:
                return False, None
            if m is not None and want_ts:
                ts = _parse_ts(m)
        self._stripped = True
        return True, ts

    def _section(self, kind: bytes, secs: bytes, raw_name: bytes, ts: float | None) -> None:
        """Open or close a section (a marker's kind, unix seconds and name; ``ts``: its line's per-line time)."""
        named = _NAMES.get(raw_name)
        if named is None:
            named = _name_facts(raw_name)
        name = named[0]
        t = ts if ts is not None else float(secs)
        sections = self._sections
        if kind == b"start":
            index = len(sections)
            if index >= MAX_SECTIONS:
                return
            self._open.append(index)
            self._n_open += 1
            same = self._open_by_name.get(name)
            if same is None:
                self._open_by_name[name] = [index]
            else:
                same.append(index)
            sections.append([name, t, None, named[1]])
            if self._first_start is None:
                self._first_start = t
            if self._script_start is None and name in _SCRIPT_STARTS:
                self._script_start = t
            if name == "restore_cache":  # a new restore stage: its first attempt is no fallback
                self._restore = None
            self._bulk = named[1]  # the innermost open section is this one
        else:
            same = self._open_by_name.get(name)
            if not same:
                return
            index = same.pop()
            sections[index][2] = t
            self._n_open -= 1
            stack = self._open
            while stack and sections[stack[-1]][2] is not None:  # closed out of order: dropped lazily
                stack.pop()
            self._bulk = bool(stack) and sections[stack[-1]][3]

    def _text(self, raw: bytes) -> None:
        actions = _ACTIONS.get(raw)
        if actions is None:
            actions = _actions(raw)
            if len(raw) <= _ACTIONS_KEY_MAX:
                if len(_ACTIONS) >= _ACTIONS_MAX:
                    _ACTIONS.clear()
                _ACTIONS[raw] = actions
        for action in actions:
            self._act(action)

    def _act(self, action: _Action) -> None:
        """Apply what one runner line says (:func:`_action`) to the parser's state."""
        what = action[0]
        if what == "check":
            self._checking(action[1], action[2])
        elif what == "missing":
            if self._restore is not None:
                self._restore.saw_missing = True
        elif what == "extract_failed":
            current = self._restore
            self._restore_result("miss" if current is not None and current.saw_missing else "failed")
        elif what == "hit":
            self._restore_result("hit")
        elif what == "create":
            self._archive = _Event("archive", action[1])
            self._add(self._archive)
        elif what == "created":
            self._archive_result("created")
        elif what == "image":
            self._docker_image(action[1], action[2], action[3], action[4])
        elif what == "executor":
            if self._executor is None or self._image_name is None:
                if self._executor is None:
                    self._executor = action[1]
                if action[2] is not None and self._image_name is None:
                    self._image_name = action[2]
        elif what == "pulling":
            if self._image_name is not None and action[1] == self._image_name:
                self._image_pulled = True
                self._local_pending = False
        elif what == "local":
            self._local_pending = True
        elif what == "running":
            if self._runner_version is None:
                self._runner_version = action[1]
        elif what == "preparing":
            if not self._executor_named:  # the runner's own name outranks a "Using" line
                self._executor = action[1]
                self._executor_named = True
        elif what == "too_big":
            self._archive_result("failed", "too big")
        elif what == "create_failed":
            self._archive_result("failed")
        elif what == "skip_restore":
            self._add(_Event("restore", action[1], "skipped"))
            self._restore = None
        elif what == "skip_archive":
            self._add(_Event("archive", action[1], "skipped"))
            self._archive = None
        elif what == "empty_restore":
            self._add(_Event("restore", "", "empty", "empty key"))
            self._restore = None
        elif what == "empty_archive":
            self._add(_Event("archive", "", "empty", "empty key"))
            self._archive = None
        elif what == "up_to_date":
            self._archive_result("up_to_date")
        elif what == "no_files":
            self._archive_result("empty", "no files to cache")

    def _checking(self, key: str, said_fallback: bool) -> None:
        detail = None
        inferred = False
        if said_fallback:  # only the step-runner path (FF_CONCRETE) says so
            detail = FALLBACK
        elif self._restore is not None and self._restore.outcome in ("miss", "failed"):
            # ordinary runners print a fallback key's attempt exactly like the main key's: it is the next
            # attempt of the same restore after one that did not hit
            detail = FALLBACK
            inferred = True
        self._restore = _Event("restore", key, "unknown", detail)
        self._restore.inferred = inferred
        self._add(self._restore)

    def _docker_image(self, name: str, image_id: str | None, digest: str | None, old_form: bool) -> None:
        """``Using docker image <id> for <name> ...`` (``old_form``: runner 10.x, whose id may be missing)."""
        if old_form and image_id is None:
            image_id = self._image_id
        if self._image_name is None or name != self._image_name:
            return
        self._image_id = image_id
        if digest is not None:
            self._image_digest = digest.rpartition("@")[2]
        if self._local_pending:
            self._image_pulled = False
        self._local_pending = False

    def _add(self, event: _Event) -> None:
        if len(self._events) < MAX_CACHE_EVENTS:
            self._events.append(event)

    def _restore_result(self, outcome: CacheOutcome) -> None:
        event = self._restore
        if event is not None and event.outcome == "unknown":
            event.outcome = outcome

    def _archive_result(self, outcome: CacheOutcome, detail: str | None = None) -> None:
        event = self._archive
        if event is not None and event.outcome == "unknown":
            event.outcome = outcome
            if detail is not None:
                event.detail = detail

    # -- facts out --------------------------------------------------------------------------------------------

    def _facts(self) -> TraceFacts:
        # A difference of two ~1.8e9 s clock readings carries binary noise near 1e-7 s; the clock is at best
        # microseconds (section markers whole seconds, per-line timestamps microseconds): round to that.
        sections = tuple(
            [
                Section(name, start, end, None if end is None else round(end - start, 6))
                for name, start, end, _ in self._sections
            ]
        )
        image = None
        if self._image_name is not None:
            image = ImageRef(self._image_name, self._image_id, self._image_digest, self._image_pulled)
        startup = None
        if self._first_start is not None and self._script_start is not None:
            startup = round(self._script_start - self._first_start, 6)
        events = self._events
        if any(e.inferred for e in events):
            # A job archives each of its caches under its main key and never under a fallback key: an attempt that
            # follows a miss but whose key the job archives is the next cache entry's main key, not a fallback.
            archived = {e.key for e in events if e.op == "archive"}
            for e in events:
                if e.inferred and e.key in archived:
                    e.detail = None
                    e.inferred = False
        return TraceFacts(
            runner_version=self._runner_version,
            executor=self._executor,
            truncated=self._limit_hit or self._n_open > 0,
            sections=sections,
            startup_seconds=startup,
            image=image,
            cache=tuple([CacheEvent(e.op, e.key, e.outcome, e.detail) for e in events]),
        )


@dataclass(frozen=True, slots=True)
class Restore:
    """One restore of one of the job's caches: the attempt on its main key and the fallback attempts after it.

    ``outcome`` is ``hit`` if an attempt hit, else the last attempt's (a miss followed by a fallback hit is one
    restore that hit, with ``via_fallback_key`` naming the key that hit). ``keys`` are the keys tried, in order."""

    key: str
    outcome: CacheOutcome
    keys: tuple[str, ...]
    via_fallback_key: str | None = None


def restores(facts: TraceFacts) -> tuple[Restore, ...]:
    """The job's cache restores (see :class:`Restore`), from its restore attempts in log order."""
    groups: list[list[CacheEvent]] = []
    for event in facts.cache:
        if event.op != "restore":
            continue
        if event.detail == FALLBACK and groups and groups[-1][-1].detail != "empty key":
            groups[-1].append(event)
        else:
            groups.append([event])
    out: list[Restore] = []
    for group in groups:
        hit = next((e for e in group if e.outcome == "hit"), None)
        outcome: CacheOutcome = "hit" if hit is not None else group[-1].outcome
        via = hit.key if hit is not None and hit is not group[0] else None
        out.append(Restore(group[0].key, outcome, tuple(e.key for e in group), via))
    return tuple(out)


def parse_bytes(data: bytes) -> TraceFacts:
    """Parse a whole log held in memory."""
    parser = TraceParser()
    parser.feed(data)
    return parser.finish()


def parse_stream(stream: BinaryIO, chunk_size: int = 1 << 16) -> TraceFacts:
    """Parse a binary stream chunk by chunk (memory stays bounded whatever the log's size)."""
    parser = TraceParser()
    read = stream.read
    while chunk := read(chunk_size):
        parser.feed(chunk)
    return parser.finish()


# -- JSON ----------------------------------------------------------------------------------------------------

_OPS: Final = ("restore", "archive")
_OUTCOMES: Final = ("hit", "miss", "failed", "skipped", "created", "up_to_date", "empty", "unknown")


def facts_to_dict(facts: TraceFacts, *, detail: bool = False) -> dict[str, Any]:
    """The ``cidash trace --json`` object (DESIGN.md, docs/commands.md; ``fallback`` and ``restores`` were added
    later). ``detail=True`` adds each cache event's ``detail`` (not part of the stable contract; with it,
    :func:`facts_from_dict` gives back equal facts)."""
    cache: list[dict[str, Any]] = []
    for event in facts.cache:
        item: dict[str, Any] = {
            "op": event.op,
            "key": event.key,
            "outcome": event.outcome,
            "fallback": event.detail == FALLBACK,
        }
        if detail:
            item["detail"] = event.detail
        cache.append(item)
    image = facts.image
    return {
        "runner_version": facts.runner_version,
        "executor": facts.executor,
        "truncated": facts.truncated,
        "sections": [{"name": s.name, "start": s.start, "end": s.end, "duration": s.duration} for s in facts.sections],
        "startup_seconds": facts.startup_seconds,
        "image": None
        if image is None
        else {"name": image.name, "id": image.id, "digest": image.digest, "pulled": image.pulled},
        "cache": cache,
        "restores": [
            {"key": r.key, "outcome": r.outcome, "keys": list(r.keys), "via_fallback_key": r.via_fallback_key}
            for r in restores(facts)
        ],
    }


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def facts_from_dict(d: Mapping[str, Any]) -> TraceFacts:
    """Inverse of :func:`facts_to_dict`. Raises ``ValueError`` on a malformed object."""
    try:
        cache: list[CacheEvent] = []
        for item in d["cache"]:
            op, outcome = item["op"], item["outcome"]
            if op not in _OPS or outcome not in _OUTCOMES:
                raise ValueError(f"bad cache event {op!r}/{outcome!r}")
            event_detail = _opt_str(item.get("detail"))
            if event_detail is None and item.get("fallback") is True:
                event_detail = FALLBACK
            cache.append(CacheEvent(op, str(item["key"]), outcome, event_detail))
        raw_image = d["image"]
        image = None
        if raw_image is not None:
            pulled = raw_image["pulled"]
            if pulled is not None and not isinstance(pulled, bool):
                raise ValueError("image.pulled must be true, false or null")
            image = ImageRef(str(raw_image["name"]), _opt_str(raw_image["id"]), _opt_str(raw_image["digest"]), pulled)
        return TraceFacts(
            runner_version=_opt_str(d["runner_version"]),
            executor=_opt_str(d["executor"]),
            truncated=bool(d["truncated"]),
            sections=tuple(
                Section(str(s["name"]), float(s["start"]), _opt_float(s["end"]), _opt_float(s["duration"]))
                for s in d["sections"]
            ),
            startup_seconds=_opt_float(d["startup_seconds"]),
            image=image,
            cache=tuple(cache),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a trace-facts object: {exc}") from exc
