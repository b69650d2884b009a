"""The instance itself: ``GET /version`` (which GitLab computes the cache keys; gitlab-facts.md §1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cidash.remote.http import HttpClient


@dataclass(frozen=True)
class InstanceVersion:
    version: str | None  # a version that parses (else None: unknown)
    revision: str | None  # a hex revision, else None


def version(http: HttpClient) -> InstanceVersion:
    """The instance's version and revision, kept only when they look like one (the answer is untrusted).

    Raises what :meth:`HttpClient.get_json` raises; a token that may not read it gets
    :class:`~cidash.errors.PermissionDenied`/:class:`~cidash.errors.NotFound`/:class:`~cidash.errors.Unsupported`.
    """
    from cidash.cachekey import GitLabVersion

    data = http.get_json("/version", missing="resource")
    if not isinstance(data, dict):
        return InstanceVersion(None, None)
    raw, rev = data.get("version"), data.get("revision")
    parsed = GitLabVersion.maybe(raw) if isinstance(raw, str) and len(raw) <= 40 else None
    revision = rev if isinstance(rev, str) and re.fullmatch(r"[0-9a-f]{6,40}", rev) else None
    return InstanceVersion(str(parsed) if parsed is not None else None, revision)
