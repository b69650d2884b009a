"""SPECs: how ``cidash compare`` and the start-up criterion name a slice of CI history.

Forms (whitespace around them ignored):

===============================  ==================================================================
``2026-11-01..2026-11-14``       pipelines created on those UTC days, both ends included
``2026-11-01..``/``..2026-11-14``  open-ended date range; ``2026-11-01`` alone is that one day
``#100..#200``                   pipeline ids 100 to 200 included (``pipelines:100..200`` too)
``abc1234..def5678``             pipelines created from the first pipeline of commit ``abc1234`` to the last
                                 of ``def5678`` (SHA prefixes of 7+ hex digits; ``commits:`` prefix optional)
``ref:main``                     pipelines on one branch or tag
``image:sha256:<hex>``           jobs that ran in the CI image with that digest
``image:TAG``                    jobs that ran in the image the registry tag ``TAG`` points to
                                 (or whose image name ends in ``:TAG`` when the tag is unknown)
``2026-11-16..,ref:main``        several of the above joined by commas: history matching all of them
===============================  ==================================================================

Parsing is pure; matching happens in :mod:`cidash.metrics` over a :class:`~cidash.metrics.Dataset`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from cidash.errors import UsageError

SpecKind = Literal["dates", "pipelines", "commits", "ref", "image_digest", "image_tag", "all_of"]

SPEC_HELP = (
    "SPEC is a date range 2026-11-01..2026-11-14 (UTC days, inclusive; either end may be left open), "
    "a pipeline-id range #100..#200 (or pipelines:100..200), a commit range abc1234..def5678, ref:BRANCH, "
    "image:sha256:DIGEST (6+ hex digits) or image:TAG; "
    "join several with commas to intersect them, e.g. 2026-11-16..,ref:main"
)

_DATE = r"\d{4}-\d{2}-\d{2}"
_DATE_RANGE = re.compile(rf"^(?P<start>{_DATE})?\.\.(?P<end>{_DATE})?$")
_ONE_DATE = re.compile(rf"^(?P<day>{_DATE})$")
_PIPELINES = re.compile(r"^(?:#(?P<a>\d+)\.\.#?(?P<b>\d+)|pipelines:(?P<c>\d+)\.\.(?P<d>\d+))$")
_COMMITS = re.compile(r"^(?:commits:)?(?P<a>[0-9a-fA-F]{7,40})\.\.(?P<b>[0-9a-fA-F]{7,40})$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_SHORT_DIGEST = re.compile(r"^sha256:[0-9a-f]{6,63}$")


@dataclass(frozen=True, slots=True)
class Spec:
    """One parsed SPEC. Only the fields of its ``kind`` are set."""

    kind: SpecKind
    text: str
    start: datetime | None = None  # dates: inclusive, UTC
    end: datetime | None = None  # dates: exclusive, UTC
    first_id: int | None = None  # pipelines: inclusive
    last_id: int | None = None  # pipelines: inclusive
    first_sha: str | None = None  # commits: SHA prefix, lower case
    last_sha: str | None = None
    ref: str | None = None
    digest: str | None = None  # image_digest: full or unambiguous prefix "sha256:..."
    tag: str | None = None
    parts: tuple[Spec, ...] = ()  # all_of: every part must match

    def describe(self) -> str:
        """A short human phrase, e.g. ``pipelines #100..#200`` or ``image sha256:1a2b3c4d5e6f``."""
        if self.kind == "all_of":
            return ", ".join(p.describe() for p in self.parts)
        if self.kind == "dates":
            start = self.start.date().isoformat() if self.start else None
            end = (self.end - timedelta(days=1)).date().isoformat() if self.end else None
            if start and end:
                return f"{start}..{end}" if start != end else start
            return f"from {start}" if start else f"until {end}"
        if self.kind == "pipelines":
            return f"pipelines #{self.first_id}..#{self.last_id}"
        if self.kind == "commits":
            return f"commits {self.first_sha}..{self.last_sha}"
        if self.kind == "ref":
            return f"ref {self.ref}"
        if self.kind == "image_digest":
            return f"image {short_digest(self.digest or '')}"
        return f"image tag {self.tag}"

    def contains_time(self, when: datetime) -> bool:
        """For date SPECs: is ``when`` inside the range? (Other kinds: always True.)"""
        if self.kind == "all_of":
            return all(p.contains_time(when) for p in self.parts)
        if self.kind != "dates":
            return True
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when >= self.end)


def short_digest(digest: str, length: int = 12) -> str:
    """``sha256:`` plus the first ``length`` hex digits."""
    if digest.startswith("sha256:"):
        return "sha256:" + digest[7 : 7 + length]
    return digest[:length]


def _day(text: str, spec: str) -> datetime:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"invalid date {text!r} in SPEC {spec!r}", hint="use YYYY-MM-DD") from None
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def parse_spec(text: str) -> Spec:
    """Parse a SPEC; raise :class:`~cidash.errors.UsageError` naming the accepted forms when it is malformed."""
    raw = text.strip()
    if "," in raw:
        parts = tuple(_parse_one(part) for part in raw.split(","))
        return Spec("all_of", raw, parts=parts)
    return _parse_one(raw)


def _parse_one(text: str) -> Spec:
    raw = text.strip()
    if not raw:
        raise UsageError("empty SPEC", hint=SPEC_HELP)
    if m := _DATE_RANGE.match(raw):
        if not m["start"] and not m["end"]:
            raise UsageError(f"SPEC {raw!r} has neither a start nor an end date", hint=SPEC_HELP)
        start = _day(m["start"], raw) if m["start"] else None
        end = _day(m["end"], raw) + timedelta(days=1) if m["end"] else None
        if start is not None and end is not None and end <= start:
            raise UsageError(f"SPEC {raw!r}: the end date is before the start date")
        return Spec("dates", raw, start=start, end=end)
    if m := _ONE_DATE.match(raw):
        start = _day(m["day"], raw)
        return Spec("dates", raw, start=start, end=start + timedelta(days=1))
    if m := _PIPELINES.match(raw):
        first = int(m["a"] or m["c"])
        last = int(m["b"] or m["d"])
        if last < first:
            raise UsageError(f"SPEC {raw!r}: the last pipeline id is smaller than the first")
        return Spec("pipelines", raw, first_id=first, last_id=last)
    if m := _COMMITS.match(raw):
        return Spec("commits", raw, first_sha=m["a"].lower(), last_sha=m["b"].lower())
    if raw.startswith("ref:"):
        ref = raw[4:].strip()
        if not ref:
            raise UsageError(f"SPEC {raw!r} names no ref", hint="e.g. ref:main")
        return Spec("ref", raw, ref=ref)
    if raw.startswith("image:"):
        value = raw[6:].strip()
        if not value:
            raise UsageError(f"SPEC {raw!r} names no image", hint="use image:sha256:DIGEST or image:TAG")
        if value.lower().startswith("sha256:"):
            value = value.lower()
            if not (_DIGEST.match(value) or _SHORT_DIGEST.match(value)):
                raise UsageError(
                    f"SPEC {raw!r}: not a sha256 digest", hint="sha256: followed by 6 to 64 hexadecimal digits"
                )
            return Spec("image_digest", raw, digest=value)
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", value):
            raise UsageError(f"SPEC {raw!r}: {value!r} is not a valid image tag")
        return Spec("image_tag", raw, tag=value)
    raise UsageError(f"cannot understand SPEC {raw!r}", hint=SPEC_HELP)


@dataclass(frozen=True, slots=True)
class MigrationSpec:
    """``[criteria] migration``: the CI-image migration named by hand, a UTC time or an image digest (prefix)."""

    text: str
    at: datetime | None = None
    digest: str | None = None

    def describe(self) -> str:
        if self.digest is not None:
            return f"the first job on image {short_digest(self.digest)}"
        assert self.at is not None
        return self.at.strftime("%Y-%m-%d %H:%M UTC") if self.at.hour or self.at.minute else _iso_day(self.at)


def _iso_day(at: datetime) -> str:
    return at.date().isoformat()


def parse_migration(text: str) -> MigrationSpec:
    """``2026-11-11``, ``2026-11-11T09:30:00Z`` (UTC when no offset) or ``sha256:<6-64 hex>``; else UsageError."""
    raw = text.strip()
    if raw.lower().startswith("sha256:"):
        value = raw.lower()
        if not (_DIGEST.match(value) or _SHORT_DIGEST.match(value)):
            raise UsageError(f"{raw!r} is not a sha256 digest", hint="sha256: followed by 6 to 64 hexadecimal digits")
        return MigrationSpec(raw, digest=value)
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00")) if "T" in raw else None
        if at is None:
            d = date.fromisoformat(raw)
            at = datetime(d.year, d.month, d.day, tzinfo=UTC)
    except ValueError:
        raise UsageError(
            f"{raw!r} is neither a date, a time nor an image digest",
            hint="e.g. 2026-11-11, 2026-11-11T09:30:00Z or sha256:1a2b3c4d",
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return MigrationSpec(raw, at=at.astimezone(UTC))
