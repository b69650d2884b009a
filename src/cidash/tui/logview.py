"""Splitting a job log into foldable sections for the job-log view (pure; no Textual).

The section markers are the ones :mod:`cidash.logparse` reads (``section_start:<ts>:<name>[opts]`` and
``section_end:<ts>:<name>``, see ``gitlab-facts.md`` §2). Per-line timestamp prefixes are removed; ANSI colour
is kept for the view to render. Lines outside any section form unnamed blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z [0-9a-f]{2}[OE][ +]")
_MARK = re.compile(r"section_(start|end):(\d{1,12}):([A-Za-z0-9_.\-]{1,256})(\[[^\]]*\])?\r?")


@dataclass
class LogSection:
    name: str  # "" for lines outside any section
    header: str = ""  # the first line printed after section_start (the runner's title)
    lines: list[str] = field(default_factory=list)
    start: int | None = None
    end: int | None = None
    collapsed: bool = False

    @property
    def duration(self) -> int | None:
        return None if self.start is None or self.end is None else self.end - self.start


def split_sections(text: str, *, max_lines: int = 20_000) -> list[LogSection]:
    """The log as a list of top-level sections (nested sections are folded into their parent)."""
    out: list[LogSection] = []
    current = LogSection("")
    depth = 0
    count = 0
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    for raw in raw_lines:
        line = _TS.sub("", raw.rstrip("\r")).replace("\x1b[0K", "")
        pos = 0
        rest = ""
        for m in _MARK.finditer(line):
            kind, ts, name, opts = m.group(1), int(m.group(2)), m.group(3), m.group(4) or ""
            before = line[pos : m.start()]
            if before.strip() and depth:
                current.lines.append(before)
            pos = m.end()
            if kind == "start":
                if depth == 0:
                    if current.lines or current.name:
                        out.append(current)
                    current = LogSection(name, start=ts, collapsed="collapsed=true" in opts)
                depth += 1
            elif depth:
                depth -= 1
                if depth == 0 and name == current.name:
                    current.end = ts
                    out.append(current)
                    current = LogSection("")
        rest = line[pos:]
        if pos and not rest.strip():
            continue
        if current.name and not current.header and not current.lines:
            current.header = rest
            continue
        if count < max_lines:
            current.lines.append(rest)
            count += 1
    if current.name or any(line.strip() for line in current.lines):
        out.append(current)
    return out
