"""GitLab's JSON -> cidash's models, range-checked: the one place where a value GitLab sent is believed or not.

Everything GitLab sends is untrusted (see DESIGN.md, "Trust boundary"). The rules, documented for users in
``docs/security.md`` ("What cidash accepts from GitLab"):

- A **record** (one pipeline, job, project, registry tag) that is not a JSON object, or has no usable identity
  (``id`` missing, not an integer, a boolean, < 1 or >= 2^63), or lacks a field cidash cannot do without (a
  pipeline's or job's ``created_at``, a job's pipeline id) is **rejected**: :class:`RejectedRecord` is raised,
  naming the record and the reason. The sync skips it with a warning, and when the record has an id it is
  deferred and fetched again by id on the next sync.
- A rejected **field** of an otherwise usable record becomes unknown (``None``; ``False`` for a flag) and one
  line naming the record, the field and the reason is added to the caller's :class:`WireLog`:

  ============================  =================================================================================
  durations (seconds)           a JSON number (not a boolean, not a string), finite, 0 <= x <= a year
                                (:data:`cidash.models.MAX_DURATION_SECONDS`)
  sizes (``total_size``)        an integer (an integral float is accepted), 0 < x <= 10^13 bytes; ``0``/``null``
                                mean "not known" without a warning (GitLab reports them for multi-arch indexes)
  ids, ``iid``                  an integer, 1 <= x < 2^63
  timestamps                    an ISO 8601 string, 2000-01-01 <= t <= now + 1 day
  text (names, refs, statuses)  a string; anything else is rejected (never ``str()`` of a list or a number)
  flags                         ``true``/``false``; anything else is ``false``
  nested objects                an object or ``null`` (``runner``, ``pipeline``, ``commit``)
  ============================  =================================================================================

Parsing never raises anything but :class:`RejectedRecord` (a :class:`cidash.errors.RemoteError`): one bad record
can not crash a sync, and a bad number never reaches the store, a metric or a criterion.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cidash.errors import RemoteError
from cidash.models import MAX_DURATION_SECONDS, MAX_IMAGE_BYTES, ImageTag, Job, Pipeline, Project, ResourceGroup
from cidash.textsafe import storable

#: Ids are SQLite INTEGERs: at most 2^63 - 1.
MAX_ID = 2**63 - 1
#: No CI record predates this (GitLab CI appeared in 2012); earlier is a broken clock or a broken value.
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
#: How far past "now" a timestamp may be (clock skew between this machine and GitLab).
FUTURE_SLACK = timedelta(days=1)
_MAX_TIME_TEXT = 64  # an ISO timestamp is ~30 characters; longer text is not parsed at all


class RejectedRecord(RemoteError):
    """A record GitLab sent that cidash cannot use. ``kind`` ("pipeline", "job", ...) and ``record_id`` (None
    when the record has no usable id) say which; the message names it and the reason."""

    title = "Rejected record"

    def __init__(self, kind: str, record_id: int | None, reason: str, *, label: str | None = None) -> None:
        self.kind = kind
        self.record_id = record_id
        self.reason = reason
        self.label = label or (f"{kind} {record_id}" if record_id is not None else f"a {kind} without a usable id")
        super().__init__(f"{self.label} rejected: {reason}")


@dataclass
class WireLog:
    """What parsing found wrong, for the caller to report: field-level ``issues`` (the record was kept) and
    ``rejected`` records. ``now`` bounds timestamps from above (None: only the fixed bounds). Thread-safe."""

    now: datetime | None = None
    issues: list[str] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def issue(self, message: str) -> None:
        with self._lock:
            self.issues.append(message)

    def reject(self, error: RejectedRecord) -> None:
        with self._lock:
            self.rejected.append(error)

    def drain(self) -> tuple[list[str], list[RejectedRecord]]:
        """Take (and clear) what was collected so far."""
        with self._lock:
            issues, rejected = self.issues, self.rejected
            self.issues, self.rejected = [], []
        return issues, rejected


def show(value: Any, limit: int = 40) -> str:
    """A short, terminal-safe rendering of an untrusted value for a warning (control characters escaped)."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "..."
        return ascii(text)
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        digits = str(abs(value))  # JSON's parser already refused more than 4,300 digits
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"
    if isinstance(value, (bool, int, float)) or value is None:
        text = "null" if value is None else repr(value)  # no control characters in a number's repr
        return text if len(text) <= limit else text[:limit] + "..."
    return ascii(type(value).__name__)


# -- single values ---------------------------------------------------------------------------------------------
# Each returns (value, None) or (None, reason); callers turn the reason into an issue or a rejection.


#: A git object id as GitLab writes one: SHA-1 (40 hex digits) or, in a SHA-256 repository, 64.
_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


#: A decimal number as text from GitLab or a user: ASCII digits only ("²".isdigit() is true, and int() refuses it),
#: at most 19 (an id is below 2^63; more digits would reach Python's limit on turning text into a number).
_DECIMAL = re.compile(r"[0-9]{1,19}")


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a page number or an id written in ASCII digits (see :data:`_DECIMAL`)."""
    return _DECIMAL.fullmatch(text) is not None


def is_object_id(value: Any) -> bool:
    """Whether ``value`` is a git object id (a commit, a blob) as GitLab writes one, lower-case."""
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None


def check_id(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"{show(value)} is not an integer id"
    if not 1 <= value <= MAX_ID:
        return None, f"{show(value)} is out of range"
    return value, None


def check_seconds(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{show(value)} is not a number"
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None, f"{show(value)} is out of range"
    if not math.isfinite(number):
        return None, f"{show(value)} is not a finite number"
    if number < 0:
        return None, f"{show(value)} is negative"
    if number > MAX_DURATION_SECONDS:
        return None, f"{show(value)} is longer than a year"
    return number, None


def check_size(value: Any) -> tuple[int | None, str | None]:
    """Bytes: ``None``/``0`` (and -0.0) are "not known" without a reason; see the module docstring."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{show(value)} is not a number"
    number = value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None, f"{show(value)} is not a whole number of bytes"
        number = int(value)
    if number == 0:
        return None, None
    if number < 0:
        return None, f"{show(value)} is negative"
    if number > MAX_IMAGE_BYTES:
        return None, f"{show(value)} is larger than 10 TB"
    return int(number), None


def check_time(value: Any, now: datetime | None) -> tuple[datetime | None, str | None]:
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        return None, f"{show(value)} is not a timestamp"
    if len(value) > _MAX_TIME_TEXT:
        return None, f"{show(value)} is not a timestamp"
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, f"{show(value)} is not a timestamp"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except (OverflowError, ValueError):
        return None, f"{show(value)} is out of range"
    if dt < MIN_TIME:
        return None, f"{show(value)} is before 2000"
    if now is not None and dt > now + FUTURE_SLACK:
        return None, f"{show(value)} is in the future (this machine's clock says {now:%Y-%m-%d %H:%M} UTC)"
    return dt, None


def parse_time(value: Any) -> datetime | None:
    """A GitLab timestamp (``2026-05-01T12:00:00.000Z`` / ``+02:00``) as an aware UTC datetime; None when
    absent or unusable (see :func:`check_time` for the reason)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return check_time(value, None)[0]


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- records ---------------------------------------------------------------------------------------------------


class _Fields:
    """Reads the fields of one record, reporting rejected ones to a :class:`WireLog` under the record's label."""

    __slots__ = ("d", "label", "log", "now")

    def __init__(self, d: Mapping[str, Any], label: str, log: WireLog | None) -> None:
        self.d = d
        self.label = label
        self.log = log
        self.now = log.now if log is not None else None

    def _bad(self, key: str, reason: str, kept: str = "unknown") -> None:
        if self.log is not None:
            self.log.issue(f"{self.label}: {key} {reason}; kept as {kept}")

    def seconds(self, key: str) -> float | None:
        value, reason = check_seconds(self.d.get(key))
        if reason:
            self._bad(key, reason)
        return value

    def size(self, key: str) -> int | None:
        value, reason = check_size(self.d.get(key))
        if reason:
            self._bad(key, reason)
        return value

    def time(self, key: str) -> datetime | None:
        value, reason = check_time(self.d.get(key), self.now)
        if reason:
            self._bad(key, reason)
        return value

    def text(self, key: str) -> str | None:
        value = self.d.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return storable(value)
        self._bad(key, f"{show(value)} is not text")
        return None

    def opt_id(self, key: str) -> int | None:
        raw = self.d.get(key)
        if raw is None:
            return None
        value, reason = check_id(raw)
        if reason:
            self._bad(key, reason)
        return value

    def flag(self, key: str) -> bool:
        value = self.d.get(key)
        if value is None or isinstance(value, bool):
            return bool(value)
        self._bad(key, f"{show(value)} is not true or false", "false")
        return False

    def obj(self, key: str) -> Mapping[str, Any]:
        value = self.d.get(key)
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return value
        self._bad(key, f"{show(value)} is not an object")
        return {}


def _record(kind: str, d: Any) -> tuple[Mapping[str, Any], int]:
    if not isinstance(d, Mapping):
        raise RejectedRecord(kind, None, f"{show(d)} is not a JSON object")
    record_id, reason = check_id(d.get("id"))
    if record_id is None:
        raise RejectedRecord(kind, None, f"id {reason or 'is missing'}")
    return d, record_id


def _name_label(kind: str, record_id: int, name: Any) -> str:
    return f"{kind} {record_id} {show(name, 60)}" if isinstance(name, str) and name else f"{kind} {record_id}"


def _required_time(f: _Fields, kind: str, record_id: int, key: str) -> datetime:
    raw = f.d.get(key)
    value, reason = check_time(raw, f.now)
    if value is None:
        raise RejectedRecord(kind, record_id, f"{key} {reason or 'is missing'}", label=f.label)
    return value


def pipeline_from_json(project_id: int, d: Any, log: WireLog | None = None) -> Pipeline:
    """A pipeline from ``GET /projects/:id/pipelines`` (listing or detail). Raises :class:`RejectedRecord`."""
    d, pid = _record("pipeline", d)
    f = _Fields(d, f"pipeline {pid}", log)
    created = _required_time(f, "pipeline", pid, "created_at")
    updated = f.time("updated_at") or created
    return Pipeline(
        project_id=f.opt_id("project_id") or project_id,
        id=pid,
        iid=f.opt_id("iid"),
        ref=f.text("ref") or "",
        sha=f.text("sha") or "",
        status=f.text("status") or "unknown",
        source=f.text("source"),
        created_at=created,
        updated_at=updated,
        started_at=f.time("started_at"),
        finished_at=f.time("finished_at"),
        duration=f.seconds("duration"),
        queued_duration=f.seconds("queued_duration"),
        web_url=f.text("web_url"),
    )


def pipeline_details_from_graphql(listed: Pipeline, node: Any, log: WireLog | None = None) -> Pipeline | None:
    """``listed`` with the details a GraphQL ``pipeline(iid:)`` node gave (``startedAt``, ``finishedAt``,
    ``duration``, ``queuedDuration``: the fields the REST listing omits); None when the node is not this pipeline's
    (no object, another global ID or iid): the caller asks the REST API instead. A field that is not usable is kept
    as unknown and reported to ``log``, as for a REST record."""
    if not isinstance(node, Mapping) or listed.iid is None:
        return None
    if node.get("id") != f"gid://gitlab/Ci::Pipeline/{listed.id}" or str(node.get("iid")) != str(listed.iid):
        return None
    f = _Fields(
        {
            "started_at": node.get("startedAt"),
            "finished_at": node.get("finishedAt"),
            "duration": node.get("duration"),
            "queued_duration": node.get("queuedDuration"),
        },
        f"pipeline {listed.id}",
        log,
    )
    return replace(
        listed,
        started_at=f.time("started_at"),
        finished_at=f.time("finished_at"),
        duration=f.seconds("duration"),
        queued_duration=f.seconds("queued_duration"),
    )


def job_from_json(project_id: int, d: Any, log: WireLog | None = None) -> Job:
    """A job from ``GET /projects/:id/jobs`` (and the per-pipeline listing). Raises :class:`RejectedRecord`."""
    d, jid = _record("job", d)
    f = _Fields(d, _name_label("job", jid, d.get("name")), log)
    pipeline = f.obj("pipeline")
    pipeline_id, _ = check_id(pipeline.get("id"))
    if pipeline_id is None:
        pipeline_id, _ = check_id(d.get("pipeline_id"))
    if pipeline_id is None:
        raise RejectedRecord("job", jid, "it names no usable pipeline id", label=f.label)
    created = _required_time(f, "job", jid, "created_at")
    runner = f.obj("runner")
    runner_name = None
    for key in ("description", "name"):
        value = runner.get(key)
        if isinstance(value, str) and value:
            runner_name = storable(value)
            break
    if runner_name is None and runner:
        rid, _ = check_id(runner.get("id"))
        runner_name = str(rid) if rid is not None else None
    commit = f.obj("commit")
    sha = pipeline.get("sha") or commit.get("id")
    ref = d.get("ref") or pipeline.get("ref")
    return Job(
        project_id=project_id,
        id=jid,
        pipeline_id=pipeline_id,
        name=f.text("name") or "",
        stage=f.text("stage") or "",
        status=f.text("status") or "unknown",
        ref=storable(ref) if isinstance(ref, str) else "",
        sha=storable(sha) if isinstance(sha, str) else "",
        created_at=created,
        started_at=f.time("started_at"),
        finished_at=f.time("finished_at"),
        duration=f.seconds("duration"),
        queued_duration=f.seconds("queued_duration"),
        failure_reason=f.text("failure_reason"),
        allow_failure=f.flag("allow_failure"),
        retried=f.flag("retried"),
        runner=runner_name,
        web_url=f.text("web_url"),
    )


def project_from_json(d: Any, log: WireLog | None = None) -> Project:
    """A project from ``GET /projects/:id`` or a group listing. Raises :class:`RejectedRecord`."""
    d, pid = _record("project", d)
    f = _Fields(d, f"project {pid}", log)
    path = f.text("path_with_namespace") or f.text("path") or str(pid)
    return Project(id=pid, path=path, web_url=f.text("web_url") or "", default_branch=f.text("default_branch"))


@dataclass(frozen=True)
class RegistryRepository:
    id: int
    path: str
    location: str | None


def registry_repository_from_json(d: Any) -> RegistryRepository | None:
    """A registry repository from ``GET .../registry/repositories``; None (left out) without an integer id."""
    rid, _ = check_id(d.get("id")) if isinstance(d, Mapping) else (None, None)
    if rid is None:
        return None
    path, location = d.get("path"), d.get("location")
    return RegistryRepository(
        id=rid,
        path=storable(path) if isinstance(path, str) else "",
        location=storable(location) if isinstance(location, str) else None,
    )


def registry_tag_name_from_json(d: Any) -> str | None:
    """A tag's name from ``GET .../registry/repositories/:id/tags``; None (left out) without one."""
    name = d.get("name") if isinstance(d, Mapping) else None
    return storable(name) if isinstance(name, str) and name else None


def resource_group_from_json(project_id: int, d: Any) -> ResourceGroup | None:
    """A resource group from ``GET /projects/:id/resource_groups``; None (left out) without a key, an unknown
    mode read as GitLab's default (``unordered``)."""
    key = d.get("key") if isinstance(d, Mapping) else None
    if not isinstance(key, str) or not key:
        return None
    mode = d.get("process_mode")
    return ResourceGroup(
        project_id=project_id,
        key=storable(key),
        process_mode=storable(mode) if isinstance(mode, str) and mode else "unordered",
    )


def image_tag_from_json(project_id: int, repository: str, name: str, d: Any, log: WireLog | None = None) -> ImageTag:
    """A registry tag from ``GET .../registry/repositories/:id/tags/:name`` (``name`` as listed, the fallback).

    Tags have no numeric id: a body that is not an object is rejected under the tag's name."""
    label = f"image tag {repository}:{show(name, 60)}"
    if not isinstance(d, Mapping):
        raise RejectedRecord("image tag", None, f"{show(d)} is not a JSON object", label=label)
    f = _Fields(d, label, log)
    return ImageTag(
        project_id=project_id,
        repository=repository,
        name=f.text("name") or name,
        digest=f.text("digest"),
        total_size=f.size("total_size"),
        created_at=f.time("created_at"),
        location=f.text("location"),
    )
