"""cidash's typed exception hierarchy.

Every error a user can cause or meet (bad config, unreachable GitLab, a refused token, a corrupt store) is a
:class:`CidashError`. The CLI turns one into a one-line message on stderr and exit code 2; the TUI turns one
into a titled notification. Messages never contain a token: build them from URLs, project paths and status
codes only (see :func:`redact`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cidash.models import HttpCall


class CidashError(Exception):
    """Base of every error cidash reports to a user. ``title`` heads a TUI notification."""

    title = "cidash error"
    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(redact(message))
        self.hint = redact(hint) if hint else None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def one_line(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())


class UsageError(CidashError):
    title = "Usage"


class ConfigError(CidashError):
    title = "Configuration"


class StoreOriginError(ConfigError):
    """The store holds the history of another GitLab instance than the configured one (cidash.sync.origin)."""

    title = "Store of another GitLab"


class InputError(CidashError):
    """A file the user pointed at is missing, unreadable or malformed."""

    title = "Input"


class GitError(CidashError):
    title = "Git"


class StoreError(CidashError):
    title = "Store"


class ProjectBusy(CidashError):
    """Another live process holds the project's sync lease, and the caller asked not to wait (``cidash serve``:
    several processes on one store split the projects instead of syncing one twice)."""


class RemoteError(CidashError):
    """Anything that went wrong talking to GitLab."""

    title = "GitLab"

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ConnectError(RemoteError):
    """No usable answer from GitLab: unreachable, reset, timed out, or (subclasses) an answer cut short or garbled.

    Transient: the request was retried a few times before this was raised; the same request may work later.
    """

    title = "Connection"


class TruncatedBody(ConnectError):
    """The body ended before its framing (``Content-Length``, chunked end, gzip end) said it would, or the framing
    contradicted itself. Never stored as complete."""

    title = "Incomplete answer"


class BadPayload(ConnectError):
    """A 2xx answer whose body is not what the endpoint returns (a proxy's HTML page, an empty or truncated JSON
    body)."""

    title = "Unexpected answer"


class PaginationError(RemoteError):
    """A listing whose next-page link points back to a page already read, whose keyset cursor does not advance,
    or that runs past the page cap."""

    title = "Pagination"


class RedirectRefused(RemoteError):
    """GitLab redirected a request somewhere cidash will not follow (another origin for an API call, too many
    hops)."""

    title = "Redirect"


class TLSError(ConnectError):
    title = "TLS"


class AuthError(RemoteError):
    title = "Authentication"


class PermissionDenied(RemoteError):
    title = "Permission"


class NotFound(RemoteError):
    title = "Not found"


class RateLimited(RemoteError):
    title = "Rate limited"

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, status=429, hint=hint)
        self.retry_after = retry_after


class Unsupported(RemoteError):
    """The instance is too old (or too new) for an endpoint cidash needs."""

    title = "Unsupported"


class ActionHttpError(RemoteError):
    """A mutating call GitLab answered with an error status: the status, GitLab's own message, and the call."""

    def __init__(self, message: str, *, status: int, call: HttpCall, server_message: str = "") -> None:
        super().__init__(message, status=status)
        self.call = call
        self.server_message = redact(server_message)


class ActionRefused(CidashError):
    """A guarded action refused to run (duplicate rebuild, read-only mode, no terminal to confirm)."""

    title = "Refused"


_TOKEN_PATTERNS = [
    re.compile(r"glpat-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\b((?:private|job|access)?[-_]?token\s*[=:]\s*)([^\s&'\"]+)"),
    re.compile(r"(?i)\b(bearer\s+)([^\s'\"]+)"),
]

_registered_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret value so :func:`redact` removes it wherever it appears."""
    if secret and len(secret) >= 4:
        _registered_secrets.add(secret)


def redact(text: str) -> str:
    """Remove tokens from text bound for a user, a log or a file."""
    for secret in _registered_secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    text = _TOKEN_PATTERNS[0].sub("[REDACTED]", text)
    for pattern in _TOKEN_PATTERNS[1:]:
        text = pattern.sub(lambda m: f"{m.group(1)}[REDACTED]", text)
    return text
