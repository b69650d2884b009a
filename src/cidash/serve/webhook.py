"""GitLab webhook deliveries, used only as a trigger: "sync project X now".

GitLab sends ``POST`` with the secret token of the hook in ``X-Gitlab-Token`` and the event name in
``X-Gitlab-Event``. A ``Pipeline Hook`` body has ``object_kind: "pipeline"`` and ``project: {id,
path_with_namespace, ...}`` (GitLab's ``Gitlab::DataBuilder::Pipeline``); a ``Job Hook`` body has
``object_kind: "build"``, ``project_id`` and ``project_name`` and, on current versions, a ``project`` object too
(``Gitlab::DataBuilder::Build``). Nothing else of the body is read, and the body is never stored or logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cidash.remote.policy import parse_json

#: Event header values that trigger a sync (older GitLab versions called job events "Build Hook").
TRIGGER_EVENTS: frozenset[str] = frozenset({"Pipeline Hook", "Job Hook", "Build Hook"})
TRIGGER_KINDS: frozenset[str] = frozenset({"pipeline", "build"})
#: GitLab's own webhook payloads are far smaller; anything bigger is refused before it is read.
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    """What a verified delivery asks for. ``project_id``/``project_path`` may be None when GitLab omitted them."""

    event: str  # "pipeline" | "job" | "other"
    project_id: int | None
    project_path: str | None


class BadDelivery(Exception):
    """A body that is not a GitLab webhook payload (-> 400). The message is safe to log and to answer."""


def token_ok(received: str | None, secret: str) -> bool:
    """Constant-time comparison of the ``X-Gitlab-Token`` header with the configured secret, byte for byte: the
    HTTP server decodes a header as Latin-1, so encoding it back gives the bytes GitLab sent (UTF-8 for a secret
    with non-ASCII characters, which therefore matches the secret's UTF-8)."""
    if received is None or not secret:
        return False
    try:
        got = received.encode("latin-1")
    except UnicodeEncodeError:  # not from the HTTP server's Latin-1 decoding
        got = received.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(got, secret.encode("utf-8"))


def event_label(header: str | None) -> str:
    """A fixed label for the ``X-Gitlab-Event`` header (never the raw, untrusted value)."""
    return {"Pipeline Hook": "pipeline", "Job Hook": "job", "Build Hook": "job"}.get(header or "", "other")


def parse_delivery(event_header: str | None, body: bytes) -> Delivery:
    """Read the project a delivery is about. Raises :class:`BadDelivery` for a body that is not a JSON object."""
    try:
        data, _ = parse_json(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadDelivery("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadDelivery("the body is not a JSON object")
    kind = data.get("object_kind")
    event = event_label(event_header)
    if event == "other" or kind not in TRIGGER_KINDS:
        return Delivery("other", None, None)
    project = data.get("project")
    pid = project.get("id") if isinstance(project, dict) else None
    if pid is None:
        pid = data.get("project_id")
    path = project.get("path_with_namespace") if isinstance(project, dict) else None
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**63):
        raise BadDelivery("project id is not a positive integer")
    if path is not None and (not isinstance(path, str) or not 0 < len(path) <= 1024):
        raise BadDelivery("project path is not a string")
    if pid is None and path is None:
        raise BadDelivery("the body names no project (project.id / project_id)")
    return Delivery(event, pid, path)
