"""The job-log parser fed the way the property and fuzz tests feed it (tests/unit/test_logparse_props.py,
tests/unit/test_logparse_fuzz.py): in chunks cut anywhere, and with its fast lane closed."""

from __future__ import annotations

from cidash.logparse import TraceParser
from cidash.models import TraceFacts


class NoLane(TraceParser):
    """The parser with its fast lane (``TraceParser._lane``) closed: every runner line read by ``_line``."""

    def _lane(self, buf: bytes, pos: int, end: int) -> int:
        return pos


def parse_chunked(
    data: bytes, cuts: list[int], max_line: int | None = None, parser: TraceParser | None = None
) -> TraceFacts:
    """``data`` fed in pieces cut at ``cuts`` (any integers: taken modulo the length, sorted, deduplicated)."""
    if parser is None:
        parser = TraceParser() if max_line is None else TraceParser(max_line=max_line)
    prev = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        parser.feed(data[prev:cut])
        prev = cut
    parser.feed(data[prev:])
    return parser.finish()


def parse_without_lane(data: bytes, cuts: list[int] | None = None) -> TraceFacts:
    """``data`` read by the per-line path alone (:class:`NoLane`), fed as :func:`parse_chunked` feeds it."""
    return parse_chunked(data, cuts or [], parser=NoLane())
