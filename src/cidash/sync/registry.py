"""Step 6 (side thread): CI-image registry tags with sizes, and resource groups."""

from __future__ import annotations

from cidash.errors import (
    CidashError,
    NotFound,
    PermissionDenied,
    Unsupported,
)
from cidash.store import to_db_time
from cidash.sync.context import (
    CURSOR_REGISTRY,
    CURSOR_RESOURCE_GROUPS,
    _absorb_wire,
    _Ctx,
    _due,
    _is_fatal,
    _item_deferred,
    _warn,
)


def _sync_registry_and_groups(ctx: _Ctx, *, first_sync: bool) -> None:
    store, pid, http = ctx.store, ctx.project.id, ctx.client.http
    if _due(ctx, CURSOR_REGISTRY, first_sync=first_sync):
        ctx.emit("registry")
        wanted = ctx.options.image_repository or f"{ctx.project.path}/ci"
        try:
            repos = http.registry_repositories(pid)
            repo = next((r for r in repos if r.path == wanted), None)
            complete = True
            if repo is None:
                _warn(ctx, f"registry repository {wanted} not found (set [image] repository)")
            else:
                names = http.registry_tag_names(pid, repo.id)
                tags = []
                for future in ctx.bounded(lambda n: http.registry_tag(pid, repo, n, ctx.wire), names):
                    try:
                        tag = future.result()
                    except CidashError as exc:
                        complete = False  # the registry is read again next sync
                        _item_deferred(ctx, "a registry tag", exc)
                        continue
                    if tag is not None:
                        tags.append(tag)
                store.upsert_image_tags(tags, seen_at=ctx.now)
                ctx.image_tags = len(tags)
                _absorb_wire(ctx)
            if complete:  # else the registry is read again next sync
                store.set_cursor(pid, CURSOR_REGISTRY, to_db_time(ctx.now) or "")
        except (Unsupported, NotFound, PermissionDenied) as exc:
            _warn(ctx, f"registry skipped: {exc.one_line()}")
    if _due(ctx, CURSOR_RESOURCE_GROUPS, first_sync=first_sync):
        try:
            groups = http.resource_groups(pid)
            with store.transaction():
                store.replace_resource_groups(pid, groups)
                store.set_cursor(pid, CURSOR_RESOURCE_GROUPS, to_db_time(ctx.now) or "")
            ctx.resource_groups = len(groups)
        except CidashError as exc:
            if _is_fatal(exc):
                raise
            _warn(ctx, f"resource groups skipped: {exc.one_line()}")
