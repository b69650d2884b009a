"""The simulator's hostile-numbers mode: records whose numbers (and a few other fields) are broken.

``SimulatedGitLab(..., hostile_numbers=HostileNumbers())`` serves, for every ``every``-th job and pipeline (by id)
and for every registry tag, one field GitLab should never send: a string for a number, a negative, a huge or a
non-finite number (written as JSON ``NaN``/``Infinity``, which Python's and Ruby's parsers accept), a null or a
string where an object belongs, an id that is not an integer, a timestamp that does not parse or is absurd. The
choice is a pure function of the record's kind and id, so a listing and a detail request agree, and
:meth:`HostileNumbers.corruption` tells a test what a record got.

What cidash must do with each (reject the field, or the record) is documented in ``docs/security.md`` ("What
cidash accepts from GitLab") and implemented in :mod:`cidash.remote.wire`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: A value whose text goes into the JSON answer verbatim (see :func:`raw_json`; ``api.base._dumps`` writes it).
RAW_JSON_MARK = "\x00cidash-sim-raw-json:"


def raw_json(text: str) -> str:
    """A value the simulator writes into its JSON answer as ``text`` itself, e.g. a number no Python value prints
    as (Python refuses to turn an int of more than 4,300 digits into text, as it refuses the reverse)."""
    return RAW_JSON_MARK + text


#: A JSON integer of 5,000 digits: valid JSON, but Python's json refuses to read it (over 4,300 digits) with an
#: error for the whole text it is in.
HUGE_INTEGER = raw_json("9" * 5000)

#: (field, value, whole record rejected?) for jobs, in the order they are handed out.
JOB_CORRUPTIONS: tuple[tuple[str, Any, bool], ...] = (
    ("duration", "12.5", False),
    ("duration", 1e308, False),
    ("duration", -5.0, False),
    ("duration", math.nan, False),
    ("queued_duration", math.inf, False),
    ("duration", 10**40, False),
    ("started_at", "yesterday", False),
    ("runner", "shared-runner-7", False),
    ("allow_failure", "false", False),
    ("created_at", "1970-01-01T00:00:00Z", True),
    ("pipeline", None, True),  # and no pipeline_id: the job cannot be placed
    ("id", "abc", True),  # no identity: skipped, never deferred
    ("duration", HUGE_INTEGER, False),  # the rest of the page stays readable
)

#: The same for pipelines (``duration``/``queued_duration`` are detail fields; the listing gets them too).
PIPELINE_CORRUPTIONS: tuple[tuple[str, Any, bool], ...] = (
    ("duration", "abc", False),
    ("duration", -1, False),
    ("duration", 1e308, False),
    ("queued_duration", math.nan, False),
    ("queued_duration", 10**40, False),
    ("iid", "7", False),
    ("updated_at", "2999-01-01T00:00:00Z", False),
    ("created_at", "not a time", True),
    ("queued_duration", HUGE_INTEGER, False),
)

#: Registry ``total_size`` values, one per tag (by a hash of its name): none of them is a usable size.
SIZE_CORRUPTIONS: tuple[Any, ...] = (10**40, -1, -0.0, "215000000", math.nan, -214_600_000, 1e308)


def _name_index(name: str) -> int:
    return sum(name.encode()) % len(SIZE_CORRUPTIONS)


@dataclass(frozen=True)
class HostileNumbers:
    """Which records get a hostile value: every ``every``-th job and pipeline by id (0: none) and, with
    ``registry``, every registry tag. ``record_level`` False keeps to corruptions that leave the record usable."""

    every: int = 5
    registry: bool = True
    record_level: bool = True
    #: Every how many pipelines (None: ``every``); small scenarios have few pipelines, 1 hands out every variant.
    pipeline_every: int | None = None

    def corruption(self, kind: str, record_id: int) -> tuple[str, Any, bool] | None:
        """(field, value, whole record rejected?) that ``kind`` ("job"/"pipeline") ``record_id`` is served with."""
        every = self.every if kind == "job" or self.pipeline_every is None else self.pipeline_every
        if every <= 0 or record_id % every:
            return None
        table = JOB_CORRUPTIONS if kind == "job" else PIPELINE_CORRUPTIONS
        if not self.record_level:
            table = tuple(c for c in table if not c[2])
        return table[(record_id // every) % len(table)]

    def size_for(self, tag_name: str) -> Any:
        return SIZE_CORRUPTIONS[_name_index(tag_name)]

    def apply(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``record`` (a job, pipeline or registry tag JSON object) with its hostile value, if any."""
        if kind == "tag":
            if not self.registry:
                return record
            return {**record, "total_size": self.size_for(str(record.get("name")))}
        record_id = record.get("id")
        if not isinstance(record_id, int):
            return record
        chosen = self.corruption(kind, record_id)
        if chosen is None:
            return record
        key, value, _ = chosen
        out = {**record, key: value}
        if kind == "job" and key == "pipeline":
            out.pop("pipeline_id", None)
        return out
