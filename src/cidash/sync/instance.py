"""Side step: the instance's GitLab version (which GitLab computes the cache keys)."""

from __future__ import annotations

from cidash.errors import (
    AuthError,
    ConnectError,
    NotFound,
    PermissionDenied,
    RemoteError,
    Unsupported,
)
from cidash.remote import instance as remote_instance
from cidash.store import to_db_time
from cidash.sync.context import (
    CURSOR_INSTANCE_VERSION,
    _Ctx,
    _due,
    _warn,
)


def _sync_instance_version(ctx: _Ctx, *, first_sync: bool) -> None:
    """``GET /version``: which GitLab computes this project's cache keys (gitlab-facts.md §1: the rules depend on
    the instance's version). A token that may not read it (403/404) records "unknown"; checked when there is
    something new, and at most once per refresh interval otherwise."""
    if not _due(ctx, CURSOR_INSTANCE_VERSION, first_sync=first_sync):
        return
    try:
        found = remote_instance.version(ctx.client.http)
    except (Unsupported, NotFound, PermissionDenied):
        found = remote_instance.InstanceVersion(None, None)  # the token may not read it: the version is unknown
    except (AuthError, ConnectError):
        raise
    except RemoteError as exc:  # a server error after the retries: keep what was recorded, try again next sync
        _warn(ctx, f"GitLab version not checked: {exc.one_line()}")
        return
    version, revision = found.version, found.revision
    with ctx.store.transaction():
        ctx.store.set_instance_version(ctx.project.id, version, revision, ctx.now)
        ctx.store.set_cursor(ctx.project.id, CURSOR_INSTANCE_VERSION, to_db_time(ctx.now) or "")
