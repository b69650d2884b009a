"""Splitting a job log into foldable sections for the job-log view (pure; no Textual).

The section markers are the ones :mod:`cidash.logparse` reads (``section_start:<ts>:<name>[opts]`` and
``section_end:<ts>:<name>``, see ``gitlab-facts.md`` §2). Per-line timestamp prefixes (the runner's
``2026-01-02T03:04:05.123456Z 00O `` form) are removed from the text and kept per line as ``HH:MM:SS``; every
line keeps its 1-based number in the raw log. ANSI colour is kept for the view to render. Lines outside any
section form unnamed blocks.

The view's model is a list of rows (:func:`visible_rows`): one row per section header (a folded section is that
one row, with its duration) and one per line of an unfolded section. Search (:func:`find`) and the first error
(:func:`first_error`) answer with (section, line) positions the view unfolds and jumps to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TS = re.compile(r"^(\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(?:\.\d{1,9})?Z) [0-9a-f]{2}[OE][ +]")
_MARK = re.compile(r"section_(start|end):(\d{1,12}):([A-Za-z0-9_.\-]{1,256})(\[[^\]]*\])?\r?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: A line that reports an error: the runner's ``ERROR:``/``FATAL:`` lines, and tools' ``error:``/``Error:``.
_ERROR = re.compile(r"(?:^|[\s\[(])(?:ERROR|FATAL|Error|error)(?::|\]|\b(?!s\b))")


@dataclass
class LogSection:
    name: str  # "" for lines outside any section
    header: str = ""  # the first line printed after section_start (the runner's title)
    lines: list[str] = field(default_factory=list)
    start: int | None = None
    end: int | None = None
    collapsed: bool = False
    numbers: list[int] = field(default_factory=list)  # 1-based raw-log line number of each of ``lines``
    stamps: list[str] = field(default_factory=list)  # "HH:MM:SS" of each of ``lines`` ("" when untimed)
    header_number: int = 0
    header_stamp: str = ""

    @property
    def duration(self) -> int | None:
        return None if self.start is None or self.end is None else self.end - self.start

    def add(self, text: str, number: int, stamp: str) -> None:
        self.lines.append(text)
        self.numbers.append(number)
        self.stamps.append(stamp)


def split_sections(text: str, *, max_lines: int = 20_000) -> list[LogSection]:
    """The log as a list of top-level sections (nested sections are folded into their parent)."""
    out: list[LogSection] = []
    current = LogSection("")
    depth = 0
    count = 0
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw.rstrip("\r")
        ts = _TS.match(raw)
        stamp = ts.group(2) if ts else ""
        line = (raw[ts.end() :] if ts else raw).replace("\x1b[0K", "")
        pos = 0
        rest = ""
        for m in _MARK.finditer(line):
            kind, at, name, opts = m.group(1), int(m.group(2)), m.group(3), m.group(4) or ""
            before = line[pos : m.start()]
            if before.strip() and depth:
                current.add(before, number, stamp)
            pos = m.end()
            if kind == "start":
                if depth == 0:
                    if current.lines or current.name:
                        out.append(current)
                    current = LogSection(name, start=at, collapsed="collapsed=true" in opts)
                depth += 1
            elif depth:
                depth -= 1
                if depth == 0 and name == current.name:
                    current.end = at
                    out.append(current)
                    current = LogSection("")
        rest = line[pos:]
        if pos and not rest.strip():
            continue
        if current.name and not current.header and not current.lines:
            current.header, current.header_number, current.header_stamp = rest, number, stamp
            continue
        if count < max_lines:
            current.add(rest, number, stamp)
            count += 1
    if current.name or any(line.strip() for line in current.lines):
        out.append(current)
    return out


def plain(line: str) -> str:
    """A log line without its colour sequences (what search and the error finder read)."""
    return _ANSI.sub("", line)


def has_stamps(sections: list[LogSection]) -> bool:
    return any(s.header_stamp or any(s.stamps) for s in sections)


#: A view row: (section index, line index); line -1 is the section's header row.
Row = tuple[int, int]


def foldable(section: LogSection) -> bool:
    return bool(section.name)


def visible_rows(sections: list[LogSection], folded: set[int]) -> list[Row]:
    """The rows on screen: each named section's header, then its lines unless it is folded; an unnamed block's
    lines only."""
    rows: list[Row] = []
    for si, s in enumerate(sections):
        if foldable(s):
            rows.append((si, -1))
            if si in folded:
                continue
        rows.extend((si, li) for li in range(len(s.lines)))
    return rows


def initially_folded(sections: list[LogSection]) -> set[int]:
    """Runner sections start folded; the script's own output (``step_script``/``build_script``) stays open."""
    return {
        i
        for i, s in enumerate(sections)
        if foldable(s) and (s.collapsed or s.name not in ("step_script", "build_script"))
    }


def find(sections: list[LogSection], needle: str) -> list[Row]:
    """Every line (and section header) holding ``needle``, case-insensitively, in log order."""
    if not needle:
        return []
    low = needle.lower()
    hits: list[Row] = []
    for si, s in enumerate(sections):
        if s.name and (low in s.name.lower() or low in plain(s.header).lower()):
            hits.append((si, -1))
        hits.extend((si, li) for li, line in enumerate(s.lines) if low in plain(line).lower())
    return hits


def first_error(sections: list[LogSection]) -> Row | None:
    """The first line that reports an error (``ERROR:``, ``FATAL:``, ``error:`` ...), or None."""
    for si, s in enumerate(sections):
        for li, line in enumerate(s.lines):
            if _ERROR.search(plain(line)):
                return si, li
    return None


def anchor_index(rows: list[Row], anchor: Row) -> int:
    """Where ``anchor`` is in ``rows`` now, else its section's header (it was folded away), else 0."""
    try:
        return rows.index(anchor)
    except ValueError:
        try:
            return rows.index((anchor[0], -1))
        except ValueError:
            return 0
